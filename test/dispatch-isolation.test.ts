// One provider hanging or failing does not hold up another: each has its own queue, bucket and cap, and claims only
// what it can use. This checks the wiring (two providers, one dispatcher, one claim session, real HTTP); how soon the
// healthy provider delivers is pinned on a fake clock in test/lane-core.test.ts.
import t from 'tap'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'

const slow = await startFakeProvider(t)
const healthy = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' }, email: { provider: 'sendgrid' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: slow.url, accountSid: 'AC1', authToken: 'tok', concurrency: 2, timeoutMs: 60_000,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 1000, baseDelayMs: 20, maxDelayMs: 50 }
    },
    sendgrid: {
      kind: 'sendgrid', baseUrl: healthy.url, apiKey: 'k', concurrency: 4, timeoutMs: 3000,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 }
    }
  }
})
const dispatcher = await fx.startDispatcher({ pollMs: 100 })

t.test('a hanging provider: the other one delivers everything while it hangs', async (t) => {
  slow.respond(() => ({ hold: true })) // answers only when released below, however long the emails take
  const stuck = await fx.insert('sms', 100) // older, so first in line
  const mail = await fx.insert('email', 30)
  dispatcher.wake()
  await fx.waitForStatus(mail, 'sent', 20_000)
  t.equal(slow.inFlight, 2, 'the hanging provider holds only its own 2 slots')
  const smsRows = [...(await fx.rows(stuck)).values()]
  const claimed = smsRows.filter((r) => r.status === 'sending').length
  t.ok(claimed <= 10, `the hanging provider claimed only what it could use soon (${claimed} of 100)`)
  t.equal(smsRows.filter((r) => r.status === 'sent').length, 0, 'all 30 emails went out before any SMS was answered')
  slow.respond(null)
  slow.releaseHeld()
  await fx.waitForStatus(stuck, 'sent', 20_000)
})

t.test('a failing provider retrying hard: the other one delivers meanwhile', async (t) => {
  slow.respond(() => ({ status: 500, body: { message: 'down' } }))
  const before = slow.requests.length
  const failing = await fx.insert('sms', 50)
  const mail = await fx.insert('email', 30)
  dispatcher.wake()
  await fx.waitForStatus(mail, 'sent', 20_000)
  const smsRows = [...(await fx.rows(failing)).values()]
  t.equal(smsRows.filter((r) => r.status === 'sent').length, 0, 'every email delivered while every SMS still fails')
  t.ok(slow.requests.length - before >= 2, `the failing provider was being tried meanwhile (${slow.requests.length - before} requests for 50 messages)`)
  slow.respond(null)
  await fx.waitForStatus(failing, 'sent', 20_000)
})

// One provider hanging or failing does not delay another: each has its own queue, bucket and cap, and claims only what it can use.
import t from 'tap'
import { dispatchFixture, startFakeProvider } from './helpers/fake-provider.js'

const slow = await startFakeProvider(t)
const healthy = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' }, email: { provider: 'sendgrid' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: slow.url, accountSid: 'AC1', authToken: 'tok', concurrency: 2, timeoutMs: 3000,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 1000, baseDelayMs: 20, maxDelayMs: 50 }
    },
    sendgrid: {
      kind: 'sendgrid', baseUrl: healthy.url, apiKey: 'k', concurrency: 4, timeoutMs: 3000,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 }
    }
  }
})
const dispatcher = await fx.startDispatcher({ pollMs: 100 })

t.test('a hanging provider: the other one delivers at full speed meanwhile', async (t) => {
  slow.respond(() => ({ delayMs: 2500 }))
  const stuck = await fx.insert('sms', 100) // older, so first in line
  const mail = await fx.insert('email', 30)
  const started = Date.now()
  dispatcher.wake()
  await fx.waitForStatus(mail, 'sent', 5000)
  const elapsed = Date.now() - started
  t.ok(elapsed < 1500, `30 emails delivered in ${elapsed} ms while SMS hang`)
  t.equal(slow.inFlight, 2, 'the hanging provider holds only its own 2 slots')
  const smsRows = [...(await fx.rows(stuck)).values()]
  const claimed = smsRows.filter((r) => r.status === 'sending').length
  t.ok(claimed <= 10, `the hanging provider claimed only what it could use soon (${claimed} of 100)`)
  t.equal(smsRows.filter((r) => r.status === 'sent').length, 0)
  slow.respond(null)
  await fx.waitForStatus(stuck, 'sent', 20_000)
})

t.test('a failing provider retrying hard: the other one is not slowed', async (t) => {
  slow.respond(() => ({ status: 500, body: { message: 'down' } }))
  const before = slow.requests.length
  const failing = await fx.insert('sms', 50)
  const mail = await fx.insert('email', 30)
  const started = Date.now()
  dispatcher.wake()
  await fx.waitForStatus(mail, 'sent', 5000)
  const elapsed = Date.now() - started
  t.ok(elapsed < 1500, `30 emails delivered in ${elapsed} ms while every SMS fails and retries`)
  t.ok(slow.requests.length - before >= 10, `the failing provider was being retried meanwhile (${slow.requests.length - before} requests for 50 messages)`)
  slow.respond(null)
  await fx.waitForStatus(failing, 'sent', 10_000)
})

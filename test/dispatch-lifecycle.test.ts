// The dispatcher's life: a wake delivers at once (no poll wait), stop() lets sends in flight finish and gives unsent claims back, and a stop that cannot wait gives the stragglers back too.
import t from 'tap'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'

const fake = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 2, timeoutMs: 5000,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 100 }
    }
  }
})

async function until (what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('a wake claims new work at once, without waiting for the poll', async (t) => {
  const dispatcher = await fx.startDispatcher({ pollMs: 60_000 })
  const ids = await fx.insert('sms', 3)
  const started = Date.now()
  dispatcher.wake()
  await fx.waitForStatus(ids, 'sent', 5000)
  t.ok(Date.now() - started < 2000, `delivered ${Date.now() - started} ms after the wake (the poll is a minute away)`)
  await dispatcher.stop()
})

t.test('stop() lets the sends in flight finish, stores them, and gives every unsent claim back', async (t) => {
  fake.respond(() => ({ delayMs: 400 }))
  t.teardown(() => fake.respond(null))
  const dispatcher = await fx.startDispatcher({ pollMs: 60_000 })
  const ids = await fx.insert('sms', 10)
  const before = fake.requests.length
  dispatcher.wake()
  await until('two sends in flight', () => fake.inFlight === 2)
  await dispatcher.stop()
  const rows = [...(await fx.rows(ids)).values()]
  t.equal(rows.filter((r) => r.status === 'sent').length, 2, 'the two in flight finished and were stored')
  const rest = rows.filter((r) => r.status !== 'sent')
  t.equal(rest.length, 8)
  t.ok(rest.every((r) => r.status === 'pending' && r.claimedUntil === null && r.attempts === 0), 'the rest are pending, unclaimed, no attempt counted')
  t.equal(fake.requests.length - before, 2, 'nothing was sent after stop() began')
  fake.respond(null)
  const next = await fx.startDispatcher({ pollMs: 60_000 })
  next.wake()
  await fx.waitForStatus(ids, 'sent')
  await next.stop()
})

t.test('stop() waits at most stopTimeoutMs for a hanging send, then gives its claim back', async (t) => {
  fake.respond(() => ({ delayMs: 4000 }))
  t.teardown(() => fake.respond(null))
  const dispatcher = await fx.startDispatcher({ pollMs: 60_000, stopTimeoutMs: 300 })
  const ids = await fx.insert('sms', 2)
  dispatcher.wake()
  await until('two sends in flight', () => fake.inFlight === 2)
  const started = Date.now()
  await dispatcher.stop()
  t.ok(Date.now() - started < 2000, `stopped in ${Date.now() - started} ms`)
  const rows = [...(await fx.rows(ids)).values()]
  t.ok(rows.every((r) => r.status === 'pending' && r.claimedUntil === null), 'the abandoned sends are pending again (they may be delivered twice: at least once, never lost)')
  await until('the abandoned connections to close', () => fake.inFlight === 0)
})

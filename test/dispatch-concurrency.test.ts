// A provider's concurrency cap holds against a slow provider through real HTTP: never more requests in flight (or
// connections open) than the cap, and the cap is used. How long the rounds take is pinned on a fake clock in
// test/lane-core.test.ts.
import t from 'tap'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'

const fake = await startFakeProvider(t)
fake.respond(() => ({ delayMs: 150 }))
const fx = await dispatchFixture(t, {
  channels: { email: { provider: 'sendgrid' } },
  providers: {
    sendgrid: {
      kind: 'sendgrid', baseUrl: fake.url, apiKey: 'k', concurrency: 4, timeoutMs: 5000,
      rateLimit: { perSecond: 10_000, burst: 10_000 }, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 }
    }
  }
})

t.test('40 messages, 150 ms each, concurrency 4', async (t) => {
  const ids = await fx.insert('email', 40)
  const dispatcher = await fx.startDispatcher()
  dispatcher.wake()
  let peekedSending = 0
  const peek = setInterval(() => { peekedSending = Math.max(peekedSending, dispatcher.snapshot()['sendgrid']!.sending) }, 5)
  t.teardown(() => clearInterval(peek))
  await fx.waitForStatus(ids, 'sent', 30_000)

  t.equal(fake.maxInFlight, 4, 'the provider saw exactly the cap in flight at its busiest')
  t.ok(peekedSending <= 4, `the dispatcher never had more than 4 sends open (saw ${peekedSending})`)
  t.ok(fake.connections <= 4, `keep-alive pool: ${fake.connections} connections for 40 requests`)
  t.equal(fake.requests.length, 40, 'each message sent once')
})

// A provider's rate limit holds at the provider: with perSecond 20 and burst 5, no 1-second window sees more than 25 requests, and every message arrives exactly once.
import t from 'tap'
import { busiestWindow, dispatchFixture, startFakeProvider } from './helpers/fake-provider.js'

const fake = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 16,
      rateLimit: { perSecond: 20, burst: 5 }, retry: { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 100 }
    }
  }
})

t.test('200 messages at 20/s with a burst of 5', async (t) => {
  const ids = await fx.insert('sms', 200)
  const dispatcher = await fx.startDispatcher()
  dispatcher.wake()
  const rows = await fx.waitForStatus(ids, 'sent', 30_000)

  const arrivals = fake.requests.map((r) => r.at).sort((a, b) => a - b)
  const busiest = busiestWindow(arrivals)
  t.ok(busiest <= 25, `the busiest 1-second window held ${busiest} requests (at most burst + perSecond = 25)`)
  t.ok(busiest >= 20, 'and the limit was used, not undershot')
  const span = arrivals.at(-1)! - arrivals[0]!
  t.ok(span >= 9500, `200 sends took ${span} ms (≥ (200 - 5) / 20 s)`)

  t.equal(fake.requests.length, 200, 'exactly 200 requests')
  const recipients = new Set(fake.requests.map((r) => r.to))
  t.equal(recipients.size, 200, 'each message once')
  t.same(new Set([...rows.values()].map((r) => r.attempts)), new Set([1]))
  t.equal(new Set([...rows.values()].map((r) => r.providerMessageId)).size, 200, 'each with its own provider id')
})

// A provider's rate limit holds at the provider, through real HTTP: with perSecond 20 and burst 5, no 1-second window
// of arrivals sees more than 25 requests (jitter on the way can only spread them), and every message arrives exactly
// once. That the limit is used, not undershot, is pinned on a fake clock in test/lane-core.test.ts.
import t from 'tap'
import { busiestWindow, dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'

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

t.test('60 messages at 20/s with a burst of 5', async (t) => {
  const count = 60
  const ids = await fx.insert('sms', count)
  const dispatcher = await fx.startDispatcher()
  dispatcher.wake()
  const rows = await fx.waitForStatus(ids, 'sent', 30_000)

  const arrivals = fake.requests.map((r) => r.at).sort((a, b) => a - b)
  const busiest = busiestWindow(arrivals)
  t.ok(busiest <= 25, `the busiest 1-second window held ${busiest} requests (at most burst + perSecond = 25)`)
  // A lower bound on purpose: however loaded the machine, the bucket cannot let them through faster.
  const span = arrivals.at(-1)! - arrivals[0]!
  t.ok(span >= (count - 5) / 20 * 1000 - 250, `${count} sends took ${span} ms (at least (${count} - 5) / 20 s)`)

  t.equal(fake.requests.length, count, `exactly ${count} requests`)
  const recipients = new Set(fake.requests.map((r) => r.to))
  t.equal(recipients.size, count, 'each message once')
  t.same(new Set([...rows.values()].map((r) => r.attempts)), new Set([1]))
  t.equal(new Set([...rows.values()].map((r) => r.providerMessageId)).size, count, 'each with its own provider id')
})

// A 429 from the provider to one instance pauses that provider for the whole fleet, not just the instance that saw it, for as long as its Retry-After asks.
import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { writeConfigFile } from './helpers/process.js'
import { startFleet, stopAll, waitForEvenShares, waitForInstances } from './helpers/fleet.js'

const perSecond = 50
const burst = 10
const concurrency = 10
const fake = await startFakeProvider(t)
fake.respond(() => ({ delayMs: 40 }))
const twilio = { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency, timeoutMs: 2000, rateLimit: { perSecond, burst }, retry: { maxAttempts: 10, baseDelayMs: 20, maxDelayMs: 200 } }
const fx = await dispatchFixture(t, { channels: { sms: { provider: 'twilio' } }, providers: { twilio } })
const file = writeConfigFile(t.testdir(), {
  database: { url: fx.db.url },
  dispatch: { leaseMs: 4000, pollMs: 100 },
  // pauseMs (the pause of a 429 without Retry-After) far below the Retry-After given: the fleet must hold for the latter.
  fleet: { heartbeatMs: 250, deadAfterMs: 1000, pauseMs: 200 },
  channels: { sms: { provider: 'twilio', secrets: [SECRET] } },
  providers: { twilio }
})


t.test("a 429 to one instance pauses the provider for the whole fleet for the 429's Retry-After", async (t) => {
  const members = await startFleet(t, file, 2)
  await waitForInstances(members, 2)
  await waitForEvenShares(members, 'twilio', perSecond)
  const first = fake.requests.length
  let limitedAt = 0
  fake.respond((request, index) => {
    if (index === first + 20) { limitedAt = request.at; return { status: 429, headers: { 'retry-after': '2' }, body: { code: 20429, message: 'Too Many Requests' } } }
    return { delayMs: 40 }
  })
  t.teardown(() => fake.respond(() => ({ delayMs: 40 })))
  // 20 sends before the 429, then enough queued to go on well past the 2 s pause (60 at 50/s: 1.2 s).
  const ids = await fx.insert('sms', 80)
  await fx.waitForStatus(ids, 'sent', 60_000)
  t.ok(limitedAt > 0, 'the provider answered 429 once')
  const after = fake.requests.slice(first).filter((r) => r.at >= limitedAt + 1900)
  t.ok(after.length > 0, `sends went on after the pause (${after.length} arrived from 1.9 s after the 429)`)
  // The other instance learns of the pause within a check (100 ms) and a heartbeat (250 ms); both hold until 2 s after the 429 (fleet.pauseMs, 0.2 s, would have let it go on).
  const during = fake.requests.slice(first).filter((r) => r.at >= limitedAt + 500 && r.at < limitedAt + 1900)
  const offsets = fake.requests.slice(first).map((r) => r.at - limitedAt).filter((ms) => ms > -200 && ms < 2000)
  t.equal(during.length, 0, `no request reached the provider from 0.5 s to 1.9 s after the 429 (Retry-After: 2 s) (arrivals at ${offsets.join(', ')} ms)`)
  await stopAll(members)
})

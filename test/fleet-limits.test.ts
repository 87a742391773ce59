// A provider's rate limit and concurrency hold across 2 and 3 Hermes processes on one database: at the provider, no 1-second window sees more than burst + perSecond requests and no more than `concurrency` are in flight, while the fleet still reaches 90% of the rate.
import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { busiestWindow, dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { writeConfigFile } from './helpers/process.js'
import { startFleet, stopAll, waitForEvenShares, waitForInstances } from './helpers/fleet.js'

const perSecond = 50
const burst = 10
const concurrency = 10
// Three fleets of processes one after another: more than tap's default file timeout on a loaded machine.
t.setTimeout(300_000)
const fake = await startFakeProvider(t)
fake.respond(() => ({ delayMs: 40 }))
const twilio = { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency, timeoutMs: 2000, rateLimit: { perSecond, burst }, retry: { maxAttempts: 10, baseDelayMs: 20, maxDelayMs: 200 } }
const fx = await dispatchFixture(t, { channels: { sms: { provider: 'twilio' } }, providers: { twilio } })
const file = writeConfigFile(t.testdir(), {
  database: { url: fx.db.url },
  dispatch: { leaseMs: 4000, pollMs: 100 },
  fleet: { heartbeatMs: 250, deadAfterMs: 1000 },
  channels: { sms: { provider: 'twilio', secrets: [SECRET] } },
  providers: { twilio }
})


// One instance first, in the same run, as the reference for what this (shared, often saturated) machine can send.
let alone = perSecond
for (const n of [1, 2, 3]) {
  t.test(n === 1 ? 'one instance alone takes the whole limits (the reference)' : `${n} instances share 50/s (burst 10) and 10 in flight`, async (t) => {
    const members = await startFleet(t, file, n)
    await waitForInstances(members, n)
    await waitForEvenShares(members, 'twilio', perSecond)
    const concurrencies = await Promise.all(members.map(async (m) => await m.metric('hermes_fleet_share_concurrency{provider="twilio"}')))
    t.equal(concurrencies.reduce((a, b) => a + b, 0), concurrency, `concurrency split ${concurrencies.join(' + ')}`)

    const first = fake.requests.length
    const count = 450
    const ids = await fx.insert('sms', count)
    await fx.waitForStatus(ids, 'sent', 60_000)
    const requests = fake.requests.slice(first)
    const arrivals = requests.map((r) => r.at).sort((a, b) => a - b)
    const busiest = busiestWindow(arrivals)
    t.ok(busiest <= burst + perSecond, `the busiest 1-second window held ${busiest} requests (at most burst + perSecond = ${burst + perSecond})`)
    // "While work is queued" in the database: the last 2 s of work at the limit may all sit claimed by
    // one instance (a lane claims what it can send within a second), so the rate is read up to there.
    const queuedUntil = count - 2 * (burst + perSecond)
    const rate = (queuedUntil - burst) / ((arrivals[queuedUntil - 1]! - arrivals[0]!) / 1000)
    if (n === 1) alone = Math.min(perSecond, rate)
    else t.ok(rate >= 0.9 * alone, `the fleet sent ${rate.toFixed(1)}/s while work was queued (at least 90% of ${alone.toFixed(1)}/s, what one instance sent in this run, limit ${perSecond})`)
    t.comment(`${n} instance(s): ${rate.toFixed(1)}/s, busiest second ${busiest}, most in flight ${fake.maxInFlight}`)
    t.ok(fake.maxInFlight <= concurrency, `at most ${fake.maxInFlight} requests in flight at the provider (cap ${concurrency})`)
    t.equal(new Set(requests.map((r) => r.to)).size, count, 'each message sent')
    t.equal(requests.length, count, 'once')
    const readies = await Promise.all(members.map(async (m) => (await fetch(`${m.base}/readyz`)).status))
    t.strictSame(readies, members.map(() => 200), 'every instance is ready')
    await stopAll(members)
  })
}

// A provider's rate limit and concurrency hold across 2 and 3 Hermes processes on one database: at the provider, no 1-second window sees more than burst + perSecond requests and no more than `concurrency` are in flight, while the fleet still reaches 90% of the rate.
import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { busiestWindow, dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { writeConfigFile } from './helpers/process.js'
import { startFleet, stopAll, waitForEvenShares, waitForInstances, type FleetMember } from './helpers/fleet.js'

const perSecond = 50
const burst = 10
const concurrency = 10
// Three rounds of sends at 50/s: more than tap's default file timeout on a loaded machine.
t.setTimeout(300_000)
const fake = await startFakeProvider(t)
fake.respond(() => ({ delayMs: 40 }))
const twilio = { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency, timeoutMs: 2000, rateLimit: { perSecond, burst }, retry: { maxAttempts: 10, baseDelayMs: 20, maxDelayMs: 200 } }
const fx = await dispatchFixture(t, { channels: { sms: { provider: 'twilio' } }, providers: { twilio } })
const file = writeConfigFile(t.testdir(), {
  database: { url: fx.db.url },
  // Dispatch at the HTTP thread's priority (default nice +10): the subject is how the fleet splits the limits, and at
  // nice +10 the suite's other files starve the three dispatch threads (a suite run read 42.7/s for 3; docs/architecture.md).
  dispatch: { leaseMs: 4000, pollMs: 100, nice: 0 },
  fleet: { heartbeatMs: 250, deadAfterMs: 1000 },
  channels: { sms: { provider: 'twilio', secrets: [SECRET] } },
  providers: { twilio }
})


// One instance first, in the same run, as the reference for what this (shared, often saturated) machine can send;
// then a second joins it, then a third (the fleet grows as operators grow it; no process is started twice).
let alone = perSecond
const members: FleetMember[] = []
for (const n of [1, 2, 3]) {
  t.test(n === 1 ? 'one instance alone takes the whole limits (the reference)' : `${n} instances share 50/s (burst 10) and 10 in flight`, async (st) => {
    members.push(...await startFleet(t, file, 1))
    await waitForInstances(members, n)
    await waitForEvenShares(members, 'twilio', perSecond)
    const concurrencies = await Promise.all(members.map(async (m) => await m.metric('hermes_fleet_share_concurrency{provider="twilio"}')))
    st.equal(concurrencies.reduce((a, b) => a + b, 0), concurrency, `concurrency split ${concurrencies.join(' + ')}`)

    const first = fake.requests.length
    // 9 s at the limit: many 1-second windows, a share change at the start of each round, and the rate read over
    // 6 s of it, so that the half second a newly busy instance waits for its larger share weighs as it does in use.
    const count = 450
    const ids = await fx.insert('sms', count)
    await fx.waitForStatus(ids, 'sent', 60_000)
    const requests = fake.requests.slice(first)
    const arrivals = requests.map((r) => r.at).sort((a, b) => a - b)
    const busiest = busiestWindow(arrivals)
    st.ok(busiest <= burst + perSecond, `the busiest 1-second window held ${busiest} requests (at most burst + perSecond = ${burst + perSecond})`)
    // "While work is queued" in the database: the last 2 s of work at the limit may all sit claimed by
    // one instance (a lane claims what it can send within a second), so the rate is read up to there.
    const queuedUntil = count - 2 * (burst + perSecond)
    const rate = (queuedUntil - burst) / ((arrivals[queuedUntil - 1]! - arrivals[0]!) / 1000)
    if (n === 1) alone = Math.min(perSecond, rate)
    else st.ok(rate >= 0.9 * alone, `the fleet sent ${rate.toFixed(1)}/s while work was queued (at least 90% of ${alone.toFixed(1)}/s, what one instance sent in this run, limit ${perSecond})`)
    st.comment(`${n} instance(s): ${rate.toFixed(1)}/s, busiest second ${busiest}, most in flight ${fake.maxInFlight}`)
    st.ok(fake.maxInFlight <= concurrency, `at most ${fake.maxInFlight} requests in flight at the provider (cap ${concurrency})`)
    st.equal(new Set(requests.map((r) => r.to)).size, count, 'each message sent')
    st.equal(requests.length, count, 'once')
    const readies = await Promise.all(members.map(async (m) => (await fetch(`${m.base}/readyz`)).status))
    st.strictSame(readies, members.map(() => 200), 'every instance is ready')
    if (n === 3) await stopAll(members)
  })
}

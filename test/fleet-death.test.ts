// An instance killed with SIGKILL during delivery gives its share back within seconds: messages at 50/s through two instances, one killed 40% of the way, are all delivered within twice the time the limit needs, each once apart from at most `concurrency` repeats.
// The figures (1500 messages, killed after 12 s, all within 60 s) are FLEET_DEATH_MESSAGES=1500; the default scales them down to 600 (killed after 4.8 s, all within 24 s), which keeps every fixed cost of a death (deadAfterMs, two heartbeats, the lease) inside the run.
import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { busiestWindow, dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { writeConfigFile } from './helpers/process.js'
import { startFleet, waitForInstances } from './helpers/fleet.js'

const perSecond = 50
const burst = 10
const concurrency = 8
const count = Number(process.env['FLEET_DEATH_MESSAGES'] ?? 600)
/** The time the limit alone needs for every message, in ms: the kill comes at 40% of it, and all must be sent within twice it. */
const idealMs = count / perSecond * 1000
const fake = await startFakeProvider(t)
fake.respond(() => ({ delayMs: 40 }))
const twilio = { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency, timeoutMs: 1000, rateLimit: { perSecond, burst }, retry: { maxAttempts: 20, baseDelayMs: 50, maxDelayMs: 500 } }
const fx = await dispatchFixture(t, { channels: { sms: { provider: 'twilio' } }, providers: { twilio } })
// leaseMs 1000 with timeoutMs 1000: claims last 3 s (3 × timeoutMs), so the killed instance's messages come due 3 s after its last claim.
const file = writeConfigFile(t.testdir(), {
  database: { url: fx.db.url },
  // Dispatch at the HTTP thread's priority (default nice +10): on a machine saturated by the suite's other files a
  // nicer dispatch thread's requests leave late and bunch at the provider (docs/architecture.md, "Dispatch yields to ingest").
  dispatch: { leaseMs: 1000, pollMs: 100, nice: 0 },
  fleet: { heartbeatMs: 250, deadAfterMs: 1000 },
  channels: { sms: { provider: 'twilio', secrets: [SECRET] } },
  providers: { twilio }
})

t.test('a SIGKILL during delivery: every message delivered, its share back within seconds', async (t) => {
  const members = await startFleet(t, file, 2)
  await waitForInstances(members, 2)
  const [victim, survivor] = members as [typeof members[0], typeof members[0]]
  const started = Date.now()
  const ids = await fx.insert('sms', count)
  await new Promise((resolve) => setTimeout(resolve, 0.4 * idealMs - (Date.now() - started)))
  t.ok(fake.requests.length > 0 && fake.requests.length < count, `${fake.requests.length} delivered when the kill came`)
  victim.run.child.kill('SIGKILL')
  await victim.run.exited
  const killedAt = Date.now()

  // The survivor takes the whole rate back: dead after deadAfterMs (1 s), then two heartbeats.
  const deadline = killedAt + 10_000
  let share = 0
  while (Date.now() < deadline && share < perSecond) {
    share = await survivor.metric('hermes_fleet_share_per_second{provider="twilio"}')
    if (share < perSecond) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const tookBack = Date.now() - killedAt
  t.equal(share, perSecond, `the survivor's share is the whole ${perSecond}/s again after ${tookBack} ms`)
  t.ok(tookBack < 5000, 'within 5 s of the kill')
  t.equal(await survivor.metric('hermes_fleet_instances'), 1, 'it sees itself alone')

  await fx.waitForStatus(ids, 'sent', Math.max(1000, 2 * idealMs - (Date.now() - started)))
  const elapsed = Date.now() - started
  t.ok(elapsed <= 2 * idealMs, `all ${count} delivered ${(elapsed / 1000).toFixed(1)} s after they were queued (at most ${(2 * idealMs / 1000).toFixed(0)} s)`)
  const perRecipient = new Map<string, number>()
  for (const r of fake.requests) perRecipient.set(r.to!, (perRecipient.get(r.to!) ?? 0) + 1)
  t.equal(perRecipient.size, count, 'every message reached the provider')
  const repeats = fake.requests.length - count
  t.ok(repeats <= concurrency, `${repeats} sends repeated (at most concurrency = ${concurrency}: those in flight at the kill)`)
  const busiest = busiestWindow(fake.requests.map((r) => r.at))
  t.ok(busiest <= burst + perSecond, `the busiest 1-second window held ${busiest} (at most ${burst + perSecond})`)
  t.ok(fake.maxInFlight <= concurrency, `at most ${fake.maxInFlight} in flight (cap ${concurrency})`)
})

// The coordinator hands the dispatcher its share: the whole limits when alone, nothing for a newcomer until the others have shrunk theirs, then an even split; a stopped instance's share goes back to the others. A 429 becomes a fleet-wide pause as long as its Retry-After, bounded.
import t from 'tap'
import { resolveConfig } from '../src/config.js'
import { FleetCoordinator, type FleetDispatcher, type ProviderLimits } from '../src/fleet/coordinator.js'
import { createLogger } from '../src/log.js'
import { dispatchFixture } from '../src/harness/fake-provider.js'

const fx = await dispatchFixture(t, { channels: { sms: { provider: 'mock' } }, providers: { mock: { kind: 'mock', rateLimit: { perSecond: 40, burst: 8 }, concurrency: 6 } } })
const config = resolveConfig({ channels: { sms: { provider: 'mock', secrets: ['s'] } }, providers: { mock: { kind: 'mock', rateLimit: { perSecond: 40, burst: 8 }, concurrency: 6 } } }, {})
const heartbeatMs = 100

/**
 * A dispatcher stand-in that records every limit it is given once started
 * (like the real one, which ignores limits for lanes it has not opened yet), and reports no work.
 */
function recorder (): FleetDispatcher & { applied: ProviderLimits[]; started: boolean } {
  const applied: ProviderLimits[] = []
  const r = {
    applied,
    started: false,
    snapshot: () => ({ mock: { queued: 0, sending: 0, sent: 0, retried: 0, failed: 0, rateLimited: 0 } }),
    applyFleetShare: (name: string, limits: ProviderLimits) => { if (name === 'mock' && r.started) applied.push(limits) }
  }
  return r
}

function coordinator (dispatcher: FleetDispatcher, id: string, pause = { pauseMs: 500, maxPauseMs: 60_000 }): FleetCoordinator {
  const c = new FleetCoordinator({ databaseUrl: fx.db.url, providers: Object.values(config.providers), heartbeatMs, deadAfterMs: 300, ...pause, log: createLogger('silent'), instanceId: id }, dispatcher)
  t.teardown(() => c.stop())
  return c
}

async function until (what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('alone, then joined, then alone again', async (t) => {
  const a = recorder()
  const first = coordinator(a, 'a')
  await first.join()
  a.started = true
  first.start()
  t.strictSame(a.applied.at(-1), { rateLimit: { perSecond: 40, burst: 8 }, concurrency: 6 }, 'alone: the whole limits at once')

  const b = recorder()
  const second = coordinator(b, 'b')
  await second.join()
  b.started = true
  second.start()
  t.equal(b.applied[0]?.concurrency, 0, 'a newcomer starts held (concurrency 0) while the other still has the whole limits')
  const joinedAt = Date.now()
  await until('the newcomer to get its half', () => b.applied.at(-1)?.concurrency === 3)
  t.ok(Date.now() - joinedAt >= 2 * heartbeatMs - 20, `it waited two heartbeats (${Date.now() - joinedAt} ms)`)
  t.strictSame(b.applied.at(-1), { rateLimit: { perSecond: 20, burst: 4 }, concurrency: 3 })
  await until('the first to shrink to half', () => a.applied.at(-1)?.concurrency === 3)
  t.equal(first.instances, 2)

  await second.stop()
  await until('the first to take the whole limits back', () => a.applied.at(-1)?.concurrency === 6)
  t.strictSame(a.applied.at(-1), { rateLimit: { perSecond: 40, burst: 8 }, concurrency: 6 }, 'a stopped instance gives its share back')
})

t.test("a 429's Retry-After is the fleet's pause (fleet.pauseMs without one), never longer than fleet.maxPauseMs", async (t) => {
  const stats = { queued: 0, sending: 0, sent: 0, retried: 0, failed: 0, rateLimited: 0, retryAfterMs: null as number | null }
  const dispatcher: FleetDispatcher = { snapshot: () => ({ mock: { ...stats } }), applyFleetShare: () => {} }
  const c = coordinator(dispatcher, 'p', { pauseMs: 20_000, maxPauseMs: 45_000 })
  await c.join()
  c.start()
  /** The pause the next 429 writes, in ms from now (the row is cleared first: a pause is only ever extended). */
  const pauseAfter429 = async (retryAfterMs: number | null): Promise<number> => {
    await fx.db.query('DELETE FROM fleet_provider_pause')
    stats.rateLimited++
    stats.retryAfterMs = retryAfterMs
    const deadline = Date.now() + 5000
    for (;;) {
      const { rows } = await fx.db.query<{ ms: number }>("SELECT extract(epoch FROM paused_until - now()) * 1000 AS ms FROM fleet_provider_pause WHERE provider = 'mock'")
      if (rows[0] !== undefined) return Number(rows[0].ms)
      if (Date.now() > deadline) throw new Error('no pause was written')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
  const within = (ms: number, expected: number): boolean => ms > expected - 2000 && ms <= expected
  const given = await pauseAfter429(7000)
  t.ok(within(given, 7000), `Retry-After 7 s: the fleet pauses 7 s (${Math.round(given)} ms left)`)
  const none = await pauseAfter429(null)
  t.ok(within(none, 20_000), `no Retry-After: fleet.pauseMs, 20 s (${Math.round(none)} ms left)`)
  const huge = await pauseAfter429(3_600_000)
  t.ok(within(huge, 45_000), `Retry-After of an hour: fleet.maxPauseMs, 45 s (${Math.round(huge)} ms left)`)
  await fx.db.query('DELETE FROM fleet_provider_pause')
})

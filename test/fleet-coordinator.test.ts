// The coordinator hands the dispatcher its share: the whole limits when alone, nothing for a newcomer until the others have shrunk theirs, then an even split; a stopped instance's share goes back to the others.
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

function coordinator (dispatcher: FleetDispatcher, id: string): FleetCoordinator {
  const c = new FleetCoordinator({ databaseUrl: fx.db.url, providers: Object.values(config.providers), heartbeatMs, deadAfterMs: 300, pauseMs: 500, log: createLogger('silent'), instanceId: id }, dispatcher)
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

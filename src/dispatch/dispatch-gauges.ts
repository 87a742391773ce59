import type { Logger } from '../log.js'
import type { SharedMetrics } from '../metrics/shared-metrics.js'
import type { DbSession } from './db-session.js'
import type { ProviderLane } from './provider-lane.js'

/**
 * Per-provider backlog, oldest pending age and dead letters, read from
 * PostgreSQL (every instance sees the same queue) by the dispatch thread
 * on its own connection, and in-flight sends from its lanes. Both partial
 * indexes keep the query cheap however many delivered messages there are.
 */
const backlogSql = `
SELECT p.name AS provider,
       count(*) FILTER (WHERE m.dispatch_status IN ('pending', 'sending'))::int AS backlog,
       coalesce(extract(epoch FROM now() - min(m.next_attempt_at) FILTER (WHERE m.dispatch_status = 'pending')), 0)::float8 AS oldest,
       count(*) FILTER (WHERE m.dispatch_status = 'failed')::int AS failed
  FROM message m
  JOIN channel c ON c.id = m.channel_id
  JOIN provider p ON p.id = c.provider_id
 WHERE m.dispatch_status IN ('pending', 'sending', 'failed')
 GROUP BY p.name`

export function reportDispatchGauges (metrics: SharedMetrics, session: DbSession, lanes: readonly ProviderLane[], log: Logger, intervalMs = 2000): () => void {
  const providers = new Set(lanes.map((l) => l.name))
  let running = false
  const tick = async (): Promise<void> => {
    for (const lane of lanes) metrics.set('hermes_dispatch_in_flight', [lane.name], lane.sending)
    if (running) return
    running = true
    try {
      const seen = new Set<string>()
      for (const row of (await session.query<{ provider: string, backlog: number, oldest: number, failed: number }>(backlogSql)).rows) {
        if (!providers.has(row.provider)) continue
        seen.add(row.provider)
        metrics.set('hermes_dispatch_backlog', [row.provider], row.backlog)
        metrics.set('hermes_dispatch_oldest_pending_seconds', [row.provider], Math.max(0, row.oldest))
        metrics.set('hermes_dispatch_dead_letters', [row.provider], row.failed)
      }
      for (const name of providers) {
        if (seen.has(name)) continue
        metrics.set('hermes_dispatch_backlog', [name], 0)
        metrics.set('hermes_dispatch_oldest_pending_seconds', [name], 0)
        metrics.set('hermes_dispatch_dead_letters', [name], 0)
      }
    } catch (error) {
      log.debug({ err: error instanceof Error ? error.message : String(error) }, 'dispatch gauges not refreshed')
    } finally {
      running = false
    }
  }
  const timer = setInterval(() => { void tick() }, intervalMs)
  timer.unref()
  void tick()
  return () => clearInterval(timer)
}

import type { Logger } from '../log.js'
import type { SharedMetrics } from '../metrics/shared-metrics.js'
import type pg from 'pg'
import { openSession, sessionProfiles } from '../store/session.js'

/**
 * Per-provider backlog, oldest pending age and dead letters, read from
 * PostgreSQL (every instance sees the same queue) by the dispatch thread
 * on a connection of their own (the claim session runs one query at a
 * time), and in-flight sends from its lanes. Both partial
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

/**
 * The backlog count reads every undelivered message, so its cost grows with
 * the backlog: a provider down for an hour can leave millions, and a count
 * repeated every 2 s would then keep a backend busy all the time, slowing
 * the claims and the writer beside it. The next count therefore waits at
 * least this many times as long as the last one took (at most 1/(1+N) of a
 * session's time). Sampled in pg_stat_activity with ~100k messages due and
 * a provider held to 10/s: the gauges' session was busy 7% of the time.
 */
const kRestPerQueryTime = 19

/** The earliest a database read of the gauges may start again, after one that ran from startedAt to finishedAt (ms). */
export function nextGaugeReadAt (startedAt: number, finishedAt: number): number {
  return finishedAt + kRestPerQueryTime * (finishedAt - startedAt)
}

export function reportDispatchGauges (metrics: SharedMetrics, databaseUrl: string, lanes: ReadonlyArray<{ readonly name: string, readonly sending: number }>, log: Logger, intervalMs = 2000): () => void {
  const providers = new Set(lanes.map((l) => l.name))
  let running = false
  let client: pg.Client | null = null
  let stopped = false
  let nextReadAt = 0
  const connect = async (): Promise<pg.Client> => {
    if (client !== null) return client
    const c = await openSession(databaseUrl, sessionProfiles.gauges)
    c.on('error', () => { if (client === c) client = null })
    client = c
    return c
  }
  const tick = async (): Promise<void> => {
    for (const lane of lanes) metrics.set('hermes_dispatch_in_flight', [lane.name], lane.sending)
    if (running || performance.now() < nextReadAt) return
    running = true
    const startedAt = performance.now()
    try {
      const seen = new Set<string>()
      const db = await connect()
      if (stopped) {
        // Stopped while connecting: this session would keep the thread alive until it is terminated.
        client = null
        await db.end().catch(() => {})
        return
      }
      for (const row of (await db.query<{ provider: string, backlog: number, oldest: number, failed: number }>(backlogSql)).rows) {
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
      const broken = client
      client = null
      await broken?.end().catch(() => {})
    } finally {
      running = false
      nextReadAt = nextGaugeReadAt(startedAt, performance.now()) // the interval paces reads; this only holds slow ones back
    }
  }
  const timer = setInterval(() => { void tick() }, intervalMs)
  timer.unref()
  void tick()
  return () => {
    stopped = true
    clearInterval(timer)
    void client?.end().catch(() => {})
    client = null
  }
}

/**
 * `node dist/bench/retention.js [--rows N] [--duration S] [--runs N] [--slice S]`:
 * durable ingest with and without a retention sweep of N old rows running
 * beside it, in one run: a window without, one with (as long as the sweep),
 * one without again, so that the machine's other load falls on both alike. Then the same number
 * of old rows removed the other way, by dropping a time partition, for the
 * partitioning decision (bench/README.md). Needs DATABASE_URL (a server it
 * may create databases on).
 *
 * --slice S instead interleaves: the sweep runs S seconds, then S seconds
 * without it, and so on until the N rows are gone (each pair in the other
 * order from the last), so a shared machine's drifting load falls on both
 * alike over a sweep of any length; each pair's ratio is printed.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { resolveConfig } from '../src/config.js'
import { prepareDatabase } from '../src/store/schema.js'
import { RetentionSweeper } from '../src/fleet/retention.js'
import { createLogger } from '../src/log.js'
import { startLoad } from '../test/helpers/load.js'
import { mainScript } from '../test/helpers/process.js'

function option (name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}
const rows = Number(option('rows', '200000'))
const duration = Number(option('duration', '5'))
const runs = Number(option('runs', '2'))
const slice = Number(option('slice', '0'))
const server = process.env['DATABASE_URL']
if (server === undefined || server === '') throw new Error('bench/retention needs DATABASE_URL')

const name = `hermes_bench_retention_${Date.now().toString(36)}`
const admin = new pg.Client({ connectionString: server })
await admin.connect()
await admin.query(`CREATE DATABASE ${name}`)
const url = new URL(server)
url.pathname = `/${name}`
const databaseUrl = url.href
const db = new pg.Client({ connectionString: databaseUrl })
await db.connect()

try {
  const channels = { sms: { provider: 'mock', secrets: ['test-secret'] } }
  const providers = { mock: { kind: 'mock', rateLimit: { perSecond: 1_000_000, burst: 1000 }, concurrency: 64 } }
  await prepareDatabase(db, resolveConfig({ database: { url: databaseUrl }, channels, providers }, {}))

  const seed = async (): Promise<void> => {
    const started = performance.now()
    await db.query(`INSERT INTO party (phone) VALUES ('+14155550000'), ('+14155550001') ON CONFLICT DO NOTHING`)
    await db.query(`INSERT INTO conversation (party_a_id, party_b_id) SELECT min(id), max(id) FROM party ON CONFLICT DO NOTHING`)
    await db.query(`INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, received_at, dispatch_status, dispatched_at)
      SELECT (SELECT id FROM channel WHERE name = 'sms'), 'old-' || g, (SELECT min(id) FROM conversation), (SELECT min(id) FROM party), (SELECT max(id) FROM party),
             'an old message ' || g, now() - interval '100 days', 'sent', now() - interval '100 days'
        FROM generate_series(1, $1) AS g`, [rows])
    await db.query(`INSERT INTO attachment (message_id, position, url) SELECT id, 1, 'https://example.com/' || id FROM message WHERE external_id LIKE 'old-%'`)
    await db.query('VACUUM ANALYZE message')
    await db.query('VACUUM ANALYZE attachment')
    await db.query('CHECKPOINT') // the seed's writes are not flushed during the measurement
    console.log(`seeded ${rows} old messages with one attachment each in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }

  // Hermes as a process of its own, so the load generator and the sweeper do not share its threads.
  const dir = mkdtempSync(join(tmpdir(), 'hermes-bench-retention-'))
  const file = join(dir, 'hermes.json')
  writeFileSync(file, JSON.stringify({ port: 0, host: '127.0.0.1', logLevel: 'info', database: { url: databaseUrl }, channels, providers }))
  const child = spawn(process.execPath, [mainScript, '--config', file], { env: { ...process.env, DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      for (const line of buffer.split('\n')) {
        try { const entry = JSON.parse(line); if (entry.msg === 'hermes started') resolve(entry.port) } catch {}
      }
      buffer = buffer.slice(buffer.lastIndexOf('\n') + 1)
    })
    child.once('exit', (code) => reject(new Error(`hermes exited ${code}`)))
  })

  let n = 0
  /** Posts from 64 clients until `until` resolves; returns the answered rate over that time. */
  const ingestUntil = async (until: Promise<unknown>): Promise<number> => {
    const load = startLoad({
      url: `http://127.0.0.1:${port}/webhooks/sms`,
      lanes: 64,
      next: () => { n++; const id = `new-${n}`; return { id, body: JSON.stringify({ id, from: '+14155550000', to: `+1650${String(n % 5000).padStart(7, '0')}`, body: `bench ${n}` }) } }
    })
    const started = performance.now()
    const before = load.answered
    await until
    const rate = (load.answered - before) / ((performance.now() - started) / 1000)
    load.stop()
    const result = await load.finished
    if (result.outcomes.some((o) => o.status !== 202 && o.status !== null)) throw new Error('a webhook was not answered 202')
    return rate
  }
  const ingest = async (seconds: number): Promise<number> => await ingestUntil(new Promise((resolve) => setTimeout(resolve, seconds * 1000)))

  await ingest(1) // warm-up
  if (slice > 0) {
    await seed()
    const pairs: Array<{ during: number, without: number }> = []
    let deleted = 0
    let sweepMs = 0
    for (let pair = 0; ; pair++) {
      // Each slice is a new sweep: it walks from the lowest id again, past rows already deleted (a cost counted against it).
      const sweeper = new RetentionSweeper({ databaseUrl, days: 30, intervalMs: 3_600_000, firstSweepMs: 3_600_000, batchRows: 5000, log: createLogger('silent') })
      const runSlice = async (): Promise<{ rate: number, finished: boolean }> => {
        const sweep = sweeper.sweep()
        let finished = false
        const sliceEnd = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), slice * 1000))
        const rate = await ingestUntil(Promise.race([sweep.then(() => true), sliceEnd]).then((ended) => { finished = ended }))
        await sweeper.stop()
        const report = await sweep
        deleted += report.deleted
        sweepMs += report.ms
        return { rate, finished }
      }
      let result: { rate: number, finished: boolean }
      let without: number
      if (pair % 2 === 0) { result = await runSlice(); without = await ingest(slice) } else { without = await ingest(slice); result = await runSlice() }
      pairs.push({ during: result.rate, without })
      console.log(`pair ${pair + 1}: ${result.rate.toFixed(0)}/s during the sweep, ${without.toFixed(0)}/s without (${(result.rate / without).toFixed(2)}); ${deleted} deleted so far`)
      if (result.finished) break
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    const ratios = pairs.map((p) => p.during / p.without).sort((a, b) => a - b)
    console.table({
      pairs: pairs.length,
      'ingest without sweep (req/s, mean)': Math.round(mean(pairs.map((p) => p.without))),
      'ingest during sweep (req/s, mean)': Math.round(mean(pairs.map((p) => p.during))),
      'ratio of the means (target >= 0.8)': Number((mean(pairs.map((p) => p.during)) / mean(pairs.map((p) => p.without))).toFixed(2)),
      'median pair ratio': Number(ratios[Math.floor(ratios.length / 2)]!.toFixed(2)),
      'sweep rows/s (while sweeping)': Math.round(deleted / sweepMs * 1000)
    })
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  } else {
    const without: number[] = []
    const during: number[] = []
    const sweeps: Array<{ deleted: number, ms: number }> = []
    for (let run = 0; run < runs; run++) {
      await seed()
      without.push(await ingest(duration))
      const sweeper = new RetentionSweeper({ databaseUrl, days: 30, intervalMs: 3_600_000, firstSweepMs: 3_600_000, batchRows: 5000, log: createLogger('silent') })
      const sweep = sweeper.sweep()
      // Ingest for exactly as long as the sweep runs.
      during.push(await ingestUntil(sweep))
      const report = await sweep
      await sweeper.stop()
      sweeps.push({ deleted: report.deleted, ms: report.ms })
      // A window without a sweep on both sides of the one with it: the order favours neither.
      without.push(await ingest(duration))
      console.log(`run ${run + 1}: ingest ${without.at(-2)!.toFixed(0)}/s and ${without.at(-1)!.toFixed(0)}/s without a sweep (before, after), ${during.at(-1)!.toFixed(0)}/s during one; the sweep deleted ${report.deleted} in ${(report.ms / 1000).toFixed(1)} s (${(report.deleted / report.ms * 1000).toFixed(0)} rows/s)`)
    }
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))

    // The partitioning alternative: the same rows in a time partition of a copy of message, removed by DROP.
    await db.query(`CREATE TABLE message_by_time (LIKE message INCLUDING DEFAULTS) PARTITION BY RANGE (received_at)`)
    await db.query(`CREATE TABLE message_old PARTITION OF message_by_time FOR VALUES FROM ('2000-01-01') TO ('2026-01-01')`)
    await db.query(`CREATE TABLE message_new PARTITION OF message_by_time FOR VALUES FROM ('2026-01-01') TO ('2100-01-01')`)
    await db.query(`INSERT INTO message_by_time (id, channel_id, external_id, conversation_id, sender_id, recipient_id, body, received_at, dispatch_status)
      SELECT g, 1, 'old-' || g, 1, 1, 2, 'old', '2025-01-01', 'sent' FROM generate_series(1, $1) AS g`, [rows])
    const dropStarted = performance.now()
    await db.query('DROP TABLE message_old')
    const dropMs = performance.now() - dropStarted

    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    const ratio = mean(during) / mean(without)
    console.table({
      'ingest without sweep (req/s, mean)': Math.round(without.reduce((a, b) => a + b, 0) / without.length),
      'ingest during sweep (req/s, mean)': Math.round(during.reduce((a, b) => a + b, 0) / during.length),
      'ratio (target >= 0.8)': Number(ratio.toFixed(2)),
      'sweep rows/s (mean)': Math.round(sweeps.reduce((a, s) => a + s.deleted / s.ms * 1000, 0) / sweeps.length),
      [`drop partition of ${rows} rows (ms)`]: Number(dropMs.toFixed(1))
    })
  }
} finally {
  await db.end()
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.end()
}

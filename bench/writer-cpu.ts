/**
 * CPU per stored row of the writer stage, split between the writer (this
 * process) and its PostgreSQL backend, at fixed batch sizes: the figure the
 * sustained search's "ingest" share depends on, read from the kernel's
 * counters, so it holds on a busy machine where throughput does not.
 *
 *   DATABASE_URL=postgres://… node dist/bench/writer-cpu.js [--batches 10,50,250] [--rows 20000] [--rounds 2]
 *
 * Needs the server on this host (it reads the backend's /proc/<pid>/schedstat).
 * A database of its own is created and dropped. Each batch size runs over
 * rows of the repeat workload whose parties and conversations the writer
 * has already seen (a warm id cache: the steady state), committed one batch
 * after another, as under an open load below saturation.
 */
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { encodeStagingRow, encodeTextArray } from '../src/process/copy-encoder.js'
import { WriterLoop } from '../src/store/writer-loop.js'
import { createLogger } from '../src/log.js'
import { createStatusBlock } from '../src/shared-status.js'
import { workloadMessage } from '../src/harness/gen-requests.js'
import { prepareDatabase } from '../src/store/schema.js'
import { resolveConfig } from '../src/config.js'

const args = process.argv.slice(2)
const option = (name: string, fallback: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1]! : fallback }
const batchSizes = option('batches', '10,50,250').split(',').map(Number)
const rowsPerSize = Number(option('rows', '20000'))
const rounds = Number(option('rounds', '2'))
/** With --rate R: rows arrive at R a second (a batch every millisecond or so, as worker tasks do), not one batch after another. */
const rate = Number(option('rate', '0'))
const adminUrl = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5499/postgres'

/** A process's CPU time in seconds, to the nanosecond. */
function procSeconds (pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9
}

function batchesOf (size: number, count: number, runId: string): Array<{ slots: Uint32Array, rows: Uint8Array }> {
  const received = new Date().toISOString()
  const out: Array<{ slots: Uint32Array, rows: Uint8Array }> = []
  for (let i = 0; i < count; i += size) {
    const n = Math.min(size, count - i)
    const text = Array.from({ length: n }, (_, k) => {
      const r = workloadMessage(i + k, 'repeat', runId)
      return encodeStagingRow({
        channel: 'sms', external_id: r.id, address_kind: 'phone', from_address: r.from, to_address: r.to, body: r.body,
        sent_at: null, received_at: received, attachments: encodeTextArray(r.attachments)
      })
    }).join('')
    out.push({ slots: new Uint32Array(n), rows: Buffer.from(text) })
  }
  return out
}

async function main (): Promise<void> {
  const name = `hermes_writer_cpu_${process.pid}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  const url = u.href
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await prepareDatabase(client, resolveConfig({ database: { url }, channels: { sms: { provider: 'mock', secrets: ['s'] } }, providers: { mock: { kind: 'mock' } } }, {}))
    let committed = 0
    let transactions = 0
    let wake: () => void = () => {}
    const loop = new WriterLoop({
      databaseUrl: url,
      status: createStatusBlock(),
      maxBatchRows: 5000,
      maxBatchDelayMs: rate > 0 ? 2 : 0,
      log: createLogger('warn'),
      post: (message) => {
        if (message.type === 'committed') transactions++
        if (message.type === 'committed' || message.type === 'rejected') { committed += message.slots.length; wake() }
      }
    })
    const running = loop.run()
    const feed = async (batches: ReadonlyArray<{ slots: Uint32Array, rows: Uint8Array }>): Promise<void> => {
      for (const b of batches) {
        const target = committed + b.slots.length
        const done = new Promise<void>((resolve) => { wake = () => { if (committed >= target) resolve() } })
        loop.enqueue(b)
        await done
      }
    }
    // Warm-up: every pair of the workload once (the id cache learns them all), and a first message insert.
    await feed(batchesOf(500, 10_000, 'warm'))
    const { rows: [backend] } = await client.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'hermes-writer' AND datname = current_database()")
    const feedAtRate = async (batches: ReadonlyArray<{ slots: Uint32Array, rows: Uint8Array }>): Promise<void> => {
      const total = batches.reduce((n, b) => n + b.slots.length, 0)
      const target = committed + total
      const done = new Promise<void>((resolve) => { wake = () => { if (committed >= target) resolve() } })
      const started = performance.now()
      let sent = 0
      let next = 0
      while (next < batches.length) {
        const due = rate * (performance.now() - started) / 1000
        while (next < batches.length && sent < due) { loop.enqueue(batches[next]!); sent += batches[next]!.slots.length; next++ }
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
      await done
    }
    console.log(rate > 0 ? `rows arriving at ${rate}/s in pieces of the size below` : 'batch rows | writer us/row | backend us/row | wall us/row')
    for (let round = 0; round < rounds; round++) {
      for (const size of batchSizes) {
        const batches = batchesOf(size, rowsPerSize, `r${round}s${size}`)
        await client.query('CHECKPOINT')
        const tx0 = transactions
        const cpu0 = process.cpuUsage()
        const be0 = procSeconds(backend!.pid)
        const t0 = performance.now()
        if (rate > 0) await feedAtRate(batches)
        else await feed(batches)
        const wall = (performance.now() - t0) / 1000
        const cpu = process.cpuUsage(cpu0)
        const be = procSeconds(backend!.pid) - be0
        const us = (s: number): string => (1e6 * s / rowsPerSize).toFixed(1)
        console.log(`${size} | ${us((cpu.user + cpu.system) / 1e6)} (sys ${us(cpu.system / 1e6)}) | ${us(be)} | ${us(wall)} | ${(rowsPerSize / (transactions - tx0)).toFixed(1)} rows/transaction`)
      }
    }
    loop.stop()
    await running
  } finally {
    await client.end()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
}

await main()

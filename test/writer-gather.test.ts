// The writer holds a small batch open while rows keep arriving, so under a steady load its
// transactions (each ~1 ms of CPU whatever its size) carry more rows; a lone row waits one
// maxBatchDelayMs slice, and a batch already large waits for nothing (src/store/writer-loop.ts).
import t from 'tap'
import { testDatabase } from '../src/harness/database.js'
import { WriterLoop } from '../src/store/writer-loop.js'
import { prepareDatabase } from '../src/store/schema.js'
import { resolveConfig } from '../src/config.js'
import { createLogger } from '../src/log.js'
import { createStatusBlock } from '../src/shared-status.js'
import { encodeStagingRow, encodeTextArray } from '../src/process/copy-encoder.js'
import type { FromWriter } from '../src/messages.js'
import pg from 'pg'

const db = await testDatabase(t)
const setup = new pg.Client({ connectionString: db.url })
await setup.connect()
await prepareDatabase(setup, resolveConfig({ database: { url: db.url }, channels: { sms: { provider: 'mock', secrets: ['s'] } }, providers: { mock: { kind: 'mock' } } }, {}))
await setup.end()

let next = 0
function rows (n: number): { slots: Uint32Array, rows: Uint8Array } {
  const text = Array.from({ length: n }, () => {
    const i = next++
    return encodeStagingRow({
      channel: 'sms', external_id: `gather-${i}`, address_kind: 'phone', from_address: `+1415555${String(i % 100).padStart(4, '0')}`, to_address: '+12125550000',
      body: 'hello', sent_at: null, received_at: new Date().toISOString(), attachments: encodeTextArray([])
    })
  }).join('')
  return { slots: new Uint32Array(n), rows: Buffer.from(text) }
}

interface Commit { readonly rows: number, readonly at: number }

/** A writer with the given slice; its commits (rows, time) in order. */
async function startWriter (t: { teardown: (fn: () => unknown) => void }, maxBatchDelayMs: number): Promise<{ loop: WriterLoop, commits: Commit[], committed: (n: number) => Promise<void> }> {
  const commits: Commit[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  let total = 0
  let ready: () => void = () => {}
  const connected = new Promise<void>((resolve) => { ready = resolve })
  const loop = new WriterLoop({
    databaseUrl: db.url,
    status: createStatusBlock(),
    maxBatchRows: 5000,
    maxBatchDelayMs,
    log: createLogger('silent'),
    post: (message: FromWriter) => {
      if (message.type === 'ready') ready()
      if (message.type !== 'committed') return
      commits.push({ rows: message.slots.length, at: performance.now() })
      total += message.slots.length
      for (const w of waiters.filter((w) => total >= w.n)) { waiters.splice(waiters.indexOf(w), 1); w.resolve() }
    }
  })
  const running = loop.run()
  t.teardown(async () => { loop.stop(); await running })
  await connected
  const committed = async (n: number): Promise<void> => { if (total < n) await new Promise<void>((resolve) => waiters.push({ n, resolve })) }
  return { loop, commits, committed }
}

t.test('rows arriving steadily are held for several slices and committed together', async (t) => {
  const slice = 100
  const { loop, commits, committed } = await startWriter(t, slice)
  // One row every 10 ms for 600 ms: one slice would close a batch after ~10 rows.
  const sent = 60
  const started = performance.now()
  for (let i = 0; i < sent; i++) {
    loop.enqueue(rows(1))
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await committed(sent)
  const first = commits[0]!
  const held = first.at - started
  t.ok(held >= 2 * slice, `the first transaction was held ${held.toFixed(0)} ms, more than two ${slice} ms slices, and took ${first.rows} rows`)
  t.ok(commits.length < sent / 4, `${sent} rows took ${commits.length} transactions`)
})

t.test('a lone row waits one slice, not several', async (t) => {
  const slice = 1000 // long beside a commit, even on a busy machine
  const { loop, commits, committed } = await startWriter(t, slice)
  const started = performance.now()
  loop.enqueue(rows(1))
  await committed(1)
  const waited = commits[0]!.at - started
  t.ok(waited >= slice * 0.9, `it waited ${waited.toFixed(0)} ms, about one ${slice} ms slice`)
  t.ok(waited < 2 * slice, `and less than two slices (${waited.toFixed(0)} ms)`)
})

t.test('a batch already full is committed without waiting for a slice', async (t) => {
  const slice = 2000
  const { loop, commits, committed } = await startWriter(t, slice)
  const started = performance.now()
  loop.enqueue(rows(200))
  await committed(200)
  const waited = commits[0]!.at - started
  t.ok(waited < slice, `200 rows committed after ${waited.toFixed(0)} ms, without the ${slice} ms slice`)
})

t.test('rows that queued behind a long transaction are not held again: the hold counts from the oldest row', async (t) => {
  const slice = 100
  const { loop, commits, committed } = await startWriter(t, slice)
  // A lock on message makes the first transaction last about 600 ms; rows keep arriving meanwhile.
  const locker = new pg.Client({ connectionString: db.url })
  await locker.connect()
  t.teardown(async () => { await locker.end() })
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE message IN SHARE MODE')
  loop.enqueue(rows(200)) // a full batch: it goes at once, and waits for the lock
  let stop = false
  const arriving = (async () => {
    while (!stop) {
      loop.enqueue(rows(1))
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 600))
  await locker.query('COMMIT')
  await committed(201)
  await committed(commits[0]!.rows + 1)
  stop = true
  await arriving
  const gap = commits[1]!.at - commits[0]!.at
  // The oldest waiting row is ~600 ms old, past the 4-slice (400 ms) hold: the next transaction starts at once
  // (a hold counted from the wait's start would add up to 400 ms).
  t.ok(gap < 2.5 * slice, `the next transaction committed ${gap.toFixed(0)} ms after the long one, with ${commits[1]!.rows} rows`)
})

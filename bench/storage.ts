/**
 * The storage scenarios, without HTTP: raw COPY of the workload's rows
 * straight into `message` (the ceiling: ids known, no dedup, no merge), and
 * Hermes' writer stage alone (WriterLoop fed pre-normalized COPY batches:
 * staging, id cache, merge, dedup, attachments). Both commit every 5000 rows.
 */
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { encodeStagingRow, encodeTextArray, encodeCopyText } from '../src/process/copy-encoder.js'
import { WriterLoop } from '../src/store/writer-loop.js'
import { runCopyTransaction } from '../src/store/copy-transaction.js'
import { createLogger } from '../src/log.js'
import { createStatusBlock } from '../src/shared-status.js'
import { workloadMessage } from '../src/harness/gen-requests.js'

const kBatch = 5000

export interface StorageResult {
  readonly rowsPerSecond: number
  readonly rows: number
  readonly seconds: number
  /** CPU per row of the timed part, in microseconds: the PostgreSQL session's backend, and this process (the client side). */
  readonly backendUsPerRow: number
  readonly clientUsPerRow: number
}

/** A process's CPU time in seconds, to the nanosecond (/proc/<pid>/schedstat): the server is on this host. */
function cpuSeconds (pid: number): number {
  try { return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9 } catch { return Number.NaN }
}

/** Starts counting the CPU of a backend and of this process; the returned function gives µs per row since. */
function cpuCounter (backendPid: number, rows: number): () => { backendUsPerRow: number, clientUsPerRow: number } {
  const backend0 = cpuSeconds(backendPid)
  const client0 = process.cpuUsage()
  return () => {
    const client = process.cpuUsage(client0)
    return { backendUsPerRow: 1e6 * (cpuSeconds(backendPid) - backend0) / rows, clientUsPerRow: (client.user + client.system) / rows }
  }
}

function rowsOf (count: number, workload: 'repeat' | 'cold', runId: string): Array<ReturnType<typeof workloadMessage>> {
  return Array.from({ length: count }, (_, i) => workloadMessage(i, workload, runId))
}

/** Creates the parties and conversations the rows need (untimed) and returns their ids. */
async function prepareIds (client: pg.Client, rows: ReturnType<typeof rowsOf>): Promise<{ party: Map<string, string>, conversation: Map<string, string> }> {
  const addresses = [...new Set(rows.flatMap((r) => [r.from, r.to]))]
  await client.query('INSERT INTO party (phone) SELECT unnest($1::text[]) ON CONFLICT (address) DO NOTHING', [addresses])
  const party = new Map((await client.query<{ address: string, id: string }>('SELECT address, id::text FROM party WHERE address = ANY($1)', [addresses])).rows.map((r) => [r.address, r.id]))
  const pairs = [...new Set(rows.map((r) => { const a = Number(party.get(r.from)); const b = Number(party.get(r.to)); return `${Math.min(a, b)}:${Math.max(a, b)}` }))]
  await client.query(`INSERT INTO conversation (party_a_id, party_b_id)
    SELECT split_part(p, ':', 1)::bigint, split_part(p, ':', 2)::bigint FROM unnest($1::text[]) AS p ON CONFLICT DO NOTHING`, [pairs])
  const conversation = new Map((await client.query<{ k: string, id: string }>(`SELECT party_a_id || ':' || party_b_id AS k, id::text FROM conversation`)).rows.map((r) => [r.k, r.id]))
  return { party, conversation }
}

export async function rawCopy (databaseUrl: string, count: number, workload: 'repeat' | 'cold', runId: string): Promise<StorageResult> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const rows = rowsOf(count, workload, runId)
    const { party, conversation } = await prepareIds(client, rows)
    const channelId = (await client.query<{ id: number }>("SELECT id FROM channel WHERE name = 'sms'")).rows[0]!.id
    const received = new Date().toISOString()
    const lines = rows.map((r) => {
      const a = Number(party.get(r.from)); const b = Number(party.get(r.to))
      return `${channelId}\t${encodeCopyText(r.id)}\t${conversation.get(`${Math.min(a, b)}:${Math.max(a, b)}`)!}\t${a}\t${b}\t${encodeCopyText(r.body)}\t${received}\n`
    })
    const backendPid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    const cpu = cpuCounter(backendPid, count)
    const started = performance.now()
    // Sent as the writer sends its batches (one round trip each), so the ratio compares what the server does.
    for (let i = 0; i < lines.length; i += kBatch) {
      await runCopyTransaction(client, 'BEGIN; COPY message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, received_at) FROM STDIN; COMMIT',
        [Buffer.from(lines.slice(i, i + kBatch).join(''))])
    }
    const seconds = (performance.now() - started) / 1000
    return { rowsPerSecond: count / seconds, rows: count, seconds, ...cpu() }
  } finally {
    await client.end()
  }
}

export async function writerStage (databaseUrl: string, count: number, workload: 'repeat' | 'cold', runId: string): Promise<StorageResult> {
  const received = new Date().toISOString()
  const batches: Array<{ slots: Uint32Array, rows: Uint8Array }> = []
  const rows = rowsOf(count, workload, runId)
  for (let i = 0; i < rows.length; i += kBatch) {
    const chunk = rows.slice(i, i + kBatch)
    const text = chunk.map((r) => encodeStagingRow({
      channel: 'sms', external_id: r.id, address_kind: 'phone', from_address: r.from, to_address: r.to, body: r.body,
      sent_at: null, received_at: received, attachments: encodeTextArray(r.attachments)
    })).join('')
    batches.push({ slots: new Uint32Array(chunk.length), rows: Buffer.from(text) })
  }
  let committed = 0
  let finished: () => void = () => {}
  const done = new Promise<void>((resolve) => { finished = resolve })
  let connected: () => void = () => {}
  const ready = new Promise<void>((resolve) => { connected = resolve })
  const loop = new WriterLoop({
    databaseUrl,
    status: createStatusBlock(),
    maxBatchRows: kBatch,
    maxBatchDelayMs: 0,
    log: createLogger('warn'),
    post: (message) => {
      if (message.type === 'ready') connected()
      if (message.type === 'committed' || message.type === 'rejected') {
        committed += message.slots.length
        if (committed >= count) finished()
      }
    }
  })
  const running = loop.run()
  // Connecting and preparing the session is not the writer's work per row, and raw COPY's clock starts connected too.
  await ready
  const backendPid = await writerBackend(databaseUrl)
  const cpu = cpuCounter(backendPid, count)
  const started = performance.now()
  for (const batch of batches) loop.enqueue(batch)
  await done
  const seconds = (performance.now() - started) / 1000
  const used = cpu()
  loop.stop()
  await running
  return { rowsPerSecond: count / seconds, rows: count, seconds, ...used }
}

async function writerBackend (databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'hermes-writer' AND datname = current_database()")
    return rows[0]?.pid ?? -1
  } finally {
    await client.end()
  }
}

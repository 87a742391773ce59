// The writer's transaction in one round trip (src/store/copy-transaction.ts): the query, its COPY
// data and CopyDone go out together, without waiting for the server's CopyInResponse, and every
// statement's result comes back. What makes that safe is the protocol's rule for failures before
// or during the COPY: the server skips the rest of the query and drops the COPY data, and the
// session carries on. Each case here runs on a real PostgreSQL.
import t from 'tap'
import pg from 'pg'
import { testDatabase } from '../src/harness/database.js'
import { until } from '../src/harness/wait.js'
import { runCopyTransaction } from '../src/store/copy-transaction.js'

const db = await testDatabase(t)
await db.query('CREATE TABLE copied (n integer PRIMARY KEY, label text NOT NULL)')

async function connect (): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  t.teardown(async () => await client.end().catch(() => {}))
  return client
}

const lines = (from: number, count: number, label = 'row'): Buffer =>
  Buffer.from(Array.from({ length: count }, (_, i) => `${from + i}\t${label} ${from + i}\n`).join(''))

async function storedCount (): Promise<number> {
  return Number((await db.query('SELECT count(*)::int AS n FROM copied')).rows[0]!['n'])
}

t.beforeEach(async () => { await db.query('TRUNCATE copied') })

t.test('every statement\'s result, in order, parsed as client.query() parses them', async (t) => {
  const client = await connect()
  const results = await runCopyTransaction(client,
    'BEGIN; COPY copied (n, label) FROM STDIN; SELECT count(*)::int AS n, json_build_object(\'max\', max(n)) AS summary FROM copied; COMMIT',
    [lines(1, 3), lines(4, 2)])
  t.same(results.map((r) => r.command), ['BEGIN', 'COPY', 'SELECT', 'COMMIT'])
  t.equal(results[1]!.rowCount, 5, 'the COPY read both chunks')
  t.same(results[2]!.rows, [{ n: 5, summary: { max: 5 } }], 'int and json values parsed')
  t.equal(await storedCount(), 5, 'committed')
})

t.test('the COPY data goes out before the server asks for it', async (t) => {
  const client = await connect()
  const socket = (client as unknown as { connection: { stream: { bytesWritten: number, writableLength: number } } }).connection.stream
  // Another session's lock holds the transaction up before its COPY starts, so the server
  // cannot have sent CopyInResponse yet.
  const locker = await connect()
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE copied IN ACCESS EXCLUSIVE MODE')
  const data = lines(1, 1000, 'x'.repeat(40)) // ~50 kB: within the kernel's socket buffers
  const before = socket.bytesWritten
  const running = runCopyTransaction(client, 'BEGIN; LOCK TABLE copied IN SHARE MODE; COPY copied (n, label) FROM STDIN; COMMIT', [data])
  // bytesWritten counts what is still queued in the process too; writableLength 0 means handed to the kernel.
  await until('the whole COPY to be sent while the server waits on the lock', 10_000, async () =>
    socket.bytesWritten - before >= data.length && socket.writableLength === 0 ? true : undefined)
  await locker.query('COMMIT')
  const results = await running
  t.equal(results[2]!.rowCount, 1000, 'then the server read it all')
  t.equal(await storedCount(), 1000)
})

t.test('an error before the COPY: the data sent after it is dropped and the session carries on', async (t) => {
  const client = await connect()
  await t.rejects(runCopyTransaction(client, 'BEGIN; COPY no_such_table (n) FROM STDIN; COMMIT', [lines(1, 100)]), { code: '42P01' })
  // Had the server read the COPY data as messages of its own, the session would now be broken.
  await client.query('ROLLBACK')
  t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the session answers the next query')
  t.equal(await storedCount(), 0)
})

t.test('a bad row in the middle of the COPY: an error, nothing of the transaction stored', async (t) => {
  const client = await connect()
  const bad = Buffer.from('not-a-number\tx\n')
  await t.rejects(runCopyTransaction(client, 'BEGIN; COPY copied (n, label) FROM STDIN; COMMIT', [lines(1, 50), bad, lines(51, 50)]), { code: '22P02' })
  await client.query('ROLLBACK')
  t.equal(await storedCount(), 0)
  const results = await runCopyTransaction(client, 'BEGIN; COPY copied (n, label) FROM STDIN; COMMIT', [lines(1, 10)])
  t.equal(results[1]!.rowCount, 10, 'the next transaction on the same session works')
})

t.test('an error after the COPY: the copied rows are not committed', async (t) => {
  const client = await connect()
  await t.rejects(runCopyTransaction(client, 'BEGIN; COPY copied (n, label) FROM STDIN; INSERT INTO copied VALUES (1, \'again\'); COMMIT', [lines(1, 10)]), { code: '23505' })
  await client.query('ROLLBACK')
  t.equal(await storedCount(), 0)
})

t.test('the connection lost in the middle: the transaction fails, nothing stored', async (t) => {
  const client = await connect()
  client.on('error', () => {}) // the terminated session's error event
  const pid = Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0]!['pid'])
  const locker = await connect()
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE copied IN ACCESS EXCLUSIVE MODE')
  // Its failure is taken at once: it may arrive while the terminate below is still being answered.
  const failure = runCopyTransaction(client, 'BEGIN; COPY copied (n, label) FROM STDIN; COMMIT', [lines(1, 10)]).then(() => null, (error: unknown) => error)
  await until('the transaction to wait on the lock', 10_000, async () =>
    (await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = \'Lock\'', [pid])).rowCount === 1 ? true : undefined)
  await db.query('SELECT pg_terminate_backend($1)', [pid])
  const error = await failure
  t.ok(error instanceof Error, `the transaction's promise rejects (${String(error)})`)
  await locker.query('COMMIT')
  t.equal(await storedCount(), 0)
})

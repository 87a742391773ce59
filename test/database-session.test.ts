// A DatabaseSession (src/store/database-session.ts) connects with its profile, prepares what every connection of it
// needs, and after the server drops the connection reconnects on its next use with everything prepared again; a
// statement PostgreSQL refuses leaves the connection alone. Its backoff is the one of src/dispatch/backoff.ts.
import t from 'tap'
import { testDatabase } from '../src/harness/database.js'
import { DatabaseSession, SessionClosedError } from '../src/store/database-session.js'
import { sessionProfiles } from '../src/store/session.js'
import { Backoff } from '../src/dispatch/backoff.js'

const db = await testDatabase(t)

function session (events: string[] = []): DatabaseSession {
  const s = new DatabaseSession(db.url, {
    profile: sessionProfiles.gauges,
    prepare: ['PREPARE hermes_test_plus_one (int) AS SELECT $1 + 1 AS n', 'CREATE TEMPORARY TABLE hermes_test_scratch (n int)'],
    onConnect: () => { events.push('connect') },
    onDown: () => { events.push('down') },
    onUp: () => { events.push('up') }
  })
  t.teardown(() => s.close())
  return s
}

async function backendPid (s: DatabaseSession): Promise<number> {
  return (await s.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
}

async function until (what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('the first use connects with the profile\'s settings and runs the prepare statements', async (t) => {
  const events: string[] = []
  const s = session(events)
  t.equal(s.client, null, 'nothing is opened before the first use')
  const { rows } = await s.query<{ app: string, timeout: string, jit: string }>(
    "SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS timeout, current_setting('jit') AS jit")
  t.same(rows[0], { app: 'hermes-dispatch-gauges', timeout: '10s', jit: 'off' }, 'the gauges profile applies')
  t.equal((await s.query<{ n: number }>('EXECUTE hermes_test_plus_one(41)')).rows[0]!.n, 42, 'the PREPAREd statement exists')
  t.equal((await s.query<{ n: number }>('SELECT $1::int * 2 AS n', [21], 'hermes_test_double')).rows[0]!.n, 42, 'a named statement runs')
  t.same(events, ['connect'], 'one connection, no outage')
})

t.test('after the server drops the connection, the next use reconnects and everything is prepared again', async (t) => {
  const events: string[] = []
  const s = session(events)
  const before = await backendPid(s)
  await s.query('SELECT $1::int * 2 AS n', [1], 'hermes_test_double')
  await db.query('SELECT pg_terminate_backend($1)', [before])
  await until('the session to notice the dropped connection', () => events.includes('down'))
  t.equal(s.client, null, 'the dropped connection is forgotten')
  const after = await backendPid(s)
  t.not(after, before, 'a new server process')
  t.equal((await s.query<{ n: number }>('EXECUTE hermes_test_plus_one(1)')).rows[0]!.n, 2, 'the PREPAREd statement exists again')
  t.equal((await s.query<{ n: number }>('SELECT $1::int * 2 AS n', [4], 'hermes_test_double')).rows[0]!.n, 8, 'the named statement is prepared again')
  await s.query('INSERT INTO hermes_test_scratch VALUES (1)')
  t.same(events, ['connect', 'down', 'connect', 'up'], 'down once, up once, one connect each time')
})

t.test('a query on a connection the server killed fails once; the one after it reconnects', async (t) => {
  const events: string[] = []
  const s = session(events)
  const before = await backendPid(s)
  // The session is busy when its backend dies: the failure comes through the query, not between queries.
  const dying = s.query('SELECT pg_terminate_backend(pg_backend_pid()), pg_sleep(1)')
  await t.rejects(dying, 'the query in flight fails')
  t.ok(events.includes('down'), 'the session knows it is down')
  t.not(await backendPid(s), before, 'the next query runs on a new connection')
  t.equal((await s.query<{ n: number }>('EXECUTE hermes_test_plus_one(2)')).rows[0]!.n, 3, 'prepared again')
})

t.test('a statement PostgreSQL refuses keeps the connection', async (t) => {
  const events: string[] = []
  const s = session(events)
  const before = await backendPid(s)
  const error = await s.query('SELECT 1 / 0').catch((e: unknown) => e)
  t.equal((error as { code?: string }).code, '22012', 'division by zero: a refusal')
  t.equal(s.failed(error), false, 'failed() does not drop the connection for it')
  t.equal(await backendPid(s), before, 'the same connection goes on')
  t.ok(s.failed(new Error('Connection terminated unexpectedly')), 'a lost socket drops it')
  t.equal(s.client, null)
  t.same(events, ['connect', 'down'])
})

t.test('a session that cannot connect rejects each use and reports down once; it is usable once the server is', async (t) => {
  const events: string[] = []
  const u = new URL(db.url)
  u.pathname = '/hermes_no_such_database'
  const s = new DatabaseSession(u.href, { profile: sessionProfiles.gauges, onDown: () => { events.push('down') } })
  t.teardown(() => s.close())
  await t.rejects(s.query('SELECT 1'), { code: '3D000' })
  await t.rejects(s.query('SELECT 1'), { code: '3D000' })
  t.same(events, ['down'], 'the outage is reported once')
})

t.test('after close, the session is not used again', async (t) => {
  const s = session()
  await s.query('SELECT 1')
  await s.close()
  t.equal(s.client, null)
  await t.rejects(s.query('SELECT 1'), SessionClosedError)
})

t.test('the backoff doubles from 50 ms up to 2 s, and starts over after reset()', async (t) => {
  const backoff = new Backoff()
  t.equal(backoff.current, 50, 'the base before any failure')
  t.same(Array.from({ length: 8 }, () => backoff.next()), [50, 100, 200, 400, 800, 1600, 2000, 2000])
  t.equal(backoff.current, 2000)
  for (let i = 0; i < 100; i++) backoff.next()
  t.equal(backoff.next(), 2000, 'capped however long it fails')
  backoff.reset()
  t.equal(backoff.next(), 50)
  const session = new DatabaseSession(db.url, { profile: sessionProfiles.gauges })
  t.not(session.backoff, new DatabaseSession(db.url, { profile: sessionProfiles.gauges }).backoff, 'each session has its own')
})

// On Debian's stock PostgreSQL 15 (JIT compiled in and on), with JIT forced for every statement
// (jit_above_cost = 0), Hermes runs as a least-privileged role: it starts, stores, dispatches,
// and not one statement of any of its sessions is JIT-compiled (pg_stat_statements counts it).
import t from 'tap'
import pg from 'pg'
import { redispatchCommand } from '../src/cli/redispatch-command.js'
import { createLogger } from '../src/log.js'
import { testDatabase } from '../src/harness/database.js'
import { metric, smsPayload, startTestHermes, untilSent } from './helpers/hermes.js'
import { serverAvailable } from '../src/harness/postgres-server.js'
import { until } from '../src/harness/wait.js'

if (!serverAvailable('debian-15')) {
  t.plan(0, 'needs Debian\'s postgresql-15 (apt-get install -y postgresql-15; .ci/run installs it)')
} else {
  const db = await testDatabase(t, {
    ownServer: { kind: 'debian-15', settings: { shared_preload_libraries: "'pg_stat_statements'", jit_above_cost: '0', 'pg_stat_statements.track': 'all' } }
  })
  const admin = new pg.Client({ connectionString: db.adminUrl, options: '-c jit=off' })
  await admin.connect()
  t.teardown(() => admin.end())
  await admin.query('CREATE EXTENSION pg_stat_statements')
  // A role that owns its database and nothing else: no superuser, no CREATEDB, no CREATEROLE.
  await admin.query("CREATE ROLE hermes_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD 'app'")
  await admin.query('CREATE DATABASE hermes_app OWNER hermes_app')
  const url = new URL(db.adminUrl)
  url.username = 'hermes_app'
  url.password = 'app'
  url.pathname = '/hermes_app'
  await admin.query('SELECT pg_stat_statements_reset()')

  t.test('the server does JIT-compile a plain statement (the check below can see it)', async (t) => {
    const c = new pg.Client({ connectionString: url.href })
    await c.connect()
    await c.query('SELECT count(*) FROM generate_series(1, 10)')
    await c.end()
    const { rows } = await admin.query<{ n: string }>(
      "SELECT sum(jit_functions) AS n FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM generate_series%'")
    t.ok(Number(rows[0]!.n) > 0, 'a client without jit = off gets its statement compiled')
    await admin.query('SELECT pg_stat_statements_reset()')
  })

  t.test('a least-privileged Hermes stores and dispatches, and none of its statements is JIT-compiled', async (t) => {
    const h = await startTestHermes(t, {}, { ...db, url: url.href })
    const payloads = Array.from({ length: 40 }, () => smsPayload())
    for (const p of payloads) t.equal((await h.postSigned('sms', p)).status, 202)
    const app = new pg.Client({ connectionString: url.href, options: '-c jit=off' })
    await app.connect()
    t.teardown(() => app.end())
    await untilSent(async (sql) => await app.query(sql), payloads.length)
    await until('the dispatch gauges to be read', 10_000, async () => await metric(h.base, 'hermes_dispatch_backlog{provider="mock"}') === 0 ? true : undefined)
    t.equal(await redispatchCommand({ status: 'failed' }, h.config, createLogger('silent')), 0, 'the redispatch command runs as the same role')
    await h.hermes.stop()

    const { rows } = await admin.query<{ query: string, calls: string, jit_functions: string }>(
      `SELECT s.query, s.calls, s.jit_functions FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        WHERE r.rolname = 'hermes_app'`)
    t.ok(rows.length >= 10, `Hermes' statements are counted (${rows.length})`)
    const compiled = rows.filter((r) => Number(r.jit_functions) > 0)
    t.same(compiled.map((r) => r.query.slice(0, 120)), [], 'no Hermes statement was JIT-compiled')
  })
}

// Behind Debian's PgBouncer: in session pool mode Hermes works as on a direct connection; in
// transaction mode it refuses to start with an error that names the pool mode and what to change.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import pg from 'pg'
import { startHermes } from '../src/hermes.js'
import { createLogger } from '../src/log.js'
import { testDatabase, type TestDatabase } from '../src/harness/database.js'
import { freePort } from '../src/harness/free-port.js'
import { smsPayload, startTestHermes, untilSent, testConfig } from './helpers/hermes.js'
import { until } from '../src/harness/wait.js'

const pgbouncerBin = '/usr/sbin/pgbouncer'
interface Teardown { teardown (fn: () => unknown): void }

/** Starts Debian's pgbouncer in front of `db` in the given pool mode; the URL to give Hermes. */
async function startPgBouncer (t: Teardown, db: TestDatabase, poolMode: 'session' | 'transaction'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hermes-pgbouncer-'))
  await chmod(dir, 0o777)
  const port = await freePort()
  const server = new URL(db.url)
  const ini = [
    '[databases]',
    `hermes = host=127.0.0.1 port=${server.port} dbname=${server.pathname.slice(1)} user=${decodeURIComponent(server.username)}` +
      (server.password === '' ? '' : ` password=${decodeURIComponent(server.password)}`),
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir = ${dir}`,
    'auth_type = any',
    `pool_mode = ${poolMode}`,
    'default_pool_size = 20',
    'max_client_conn = 100',
    `logfile = ${join(dir, 'pgbouncer.log')}`
  ].join('\n') + '\n'
  await writeFile(join(dir, 'pgbouncer.ini'), ini, { mode: 0o644 })
  // PgBouncer refuses to run as root.
  const child: ChildProcess = userInfo().uid === 0
    ? spawn('runuser', ['-u', 'postgres', '--', pgbouncerBin, join(dir, 'pgbouncer.ini')], { stdio: 'ignore' })
    : spawn(pgbouncerBin, [join(dir, 'pgbouncer.ini')], { stdio: 'ignore' })
  t.teardown(async () => {
    if (child.exitCode === null) { child.kill('SIGTERM'); await once(child, 'exit') }
    await rm(dir, { recursive: true, force: true })
  })
  const url = `postgres://any@127.0.0.1:${port}/hermes`
  await until('pgbouncer to accept connections', 10_000, async () => {
    const c = new pg.Client({ connectionString: url })
    try { await c.connect(); await c.query('SELECT 1'); return true } catch { return undefined } finally { await c.end().catch(() => {}) }
  })
  return url
}

if (!existsSync(pgbouncerBin)) {
  t.plan(0, 'needs Debian\'s pgbouncer (apt-get install -y pgbouncer; .ci/run installs it)')
} else {
  t.test('in session pool mode Hermes stores and dispatches as on a direct connection', async (t) => {
    const db = await testDatabase(t)
    const url = await startPgBouncer(t, db, 'session')
    const h = await startTestHermes(t, {}, { ...db, url })
    const payloads = Array.from({ length: 30 }, () => smsPayload())
    const answers = await Promise.all(payloads.map(async (p) => (await h.postSigned('sms', p)).status))
    t.same(answers, payloads.map(() => 202))
    await untilSent(async (sql) => await db.query(sql), payloads.length)
  })

  t.test('in transaction pool mode Hermes refuses to start, naming the pool mode and what to change', async (t) => {
    const db = await testDatabase(t)
    const url = await startPgBouncer(t, db, 'transaction')
    const config = testConfig(url)
    await t.rejects(startHermes(config, { log: createLogger('silent') }), {
      code: 'HERMES_ERR_DATABASE_POOLING',
      message: /pool_mode = transaction.*pool_mode = session/s
    })
    const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'message'")
    t.equal(Number(rows[0]!.n), 0, 'nothing was set up through the pooler')
  })
}

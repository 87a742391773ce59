import pg from 'pg'
import { onFatalSignal } from './fatal-signal.js'
import { abandonServer, isServerKind, startPostgresServer, type PostgresServer, type ServerKind, type ServerOptions } from './postgres-server.js'

export { freePort } from './free-port.js'

export interface TestDatabase {
  readonly url: string
  /** The kind of server the database lives on (test/helpers/postgres-server.ts). */
  readonly kind: ServerKind
  /** A superuser URL to the server's `postgres` database (to create roles, read pg_stat_statements). */
  readonly adminUrl: string
  /** Only for a server of the test's own (`ownServer`): stop / start it (outage tests). */
  readonly embedded: boolean
  stop (): Promise<void>
  start (): Promise<void>
  query<R extends pg.QueryResultRow = pg.QueryResultRow> (sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>
}

export interface TestDatabaseOptions {
  /**
   * A server for this test alone, which it may stop and start: true for one
   * of the run's kind, or the kind and settings it must be.
   */
  readonly ownServer?: boolean | ({ readonly kind?: ServerKind } & ServerOptions)
}

interface Teardown { teardown (fn: () => unknown): void }

/** The kind of server this run tests against (`HERMES_TEST_SERVER`, set by test/run.ts), embedded by default. */
export function runServerKind (): ServerKind {
  const kind = process.env['HERMES_TEST_SERVER'] ?? 'embedded'
  if (!isServerKind(kind)) throw new Error(`HERMES_TEST_SERVER=${kind} is not a server kind`)
  return kind
}

let counter = 0

/**
 * A fresh, empty database for one test file, dropped in teardown. It is
 * created on the run's shared server (`HERMES_TEST_ADMIN_URL`, started by
 * test/run.ts; `DATABASE_URL` is read too, for a server of your own),
 * or, with `ownServer` or no shared server, on a private server started for
 * this test in a temporary directory.
 */
export async function testDatabase (t: Teardown, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const shared = process.env['HERMES_TEST_ADMIN_URL'] ?? process.env['DATABASE_URL']
  if (options.ownServer === undefined || options.ownServer === false) {
    if (shared !== undefined && shared !== '') return await databaseOn(t, shared, runServerKind(), null)
  }
  const own = typeof options.ownServer === 'object' ? options.ownServer : {}
  const server = await startPostgresServer(own.kind ?? runServerKind(), own)
  // Last resort when the test process ends without its teardown (a tap timeout sends SIGALRM).
  const abandon = (): void => abandonServer(server.dataDir)
  process.once('exit', abandon)
  onFatalSignal()
  t.teardown(async () => {
    process.off('exit', abandon)
    await server.destroy()
  })
  return await databaseOn(t, server.adminUrl, server.kind, server)
}

async function databaseOn (t: Teardown, adminUrl: string, kind: ServerKind, server: PostgresServer | null): Promise<TestDatabase> {
  const name = `hermes_test_${process.pid}_${++counter}_${Date.now().toString(36)}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  // The test's own statements do not need JIT either, and must not wait for it on a stock server.
  const pool = new pg.Pool({ connectionString: u.href, max: 2, options: '-c jit=off' })
  pool.on('error', () => {}) // outage tests kill the server under idle clients
  t.teardown(async () => {
    await pool.end().catch(() => {})
    if (server !== null) return // the server and its directory go with it
    const c = new pg.Client({ connectionString: adminUrl })
    await c.connect()
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await c.end()
  })
  return {
    url: u.href,
    kind,
    adminUrl,
    embedded: server !== null,
    stop: async () => {
      if (server === null) throw new Error('this test database is on the shared server; ask testDatabase for { ownServer: true } to stop it')
      await server.stop()
    },
    start: async () => { await server?.start() },
    query: async (sql, params) => await pool.query(sql, params)
  }
}

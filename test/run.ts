/**
 * The test runner behind `npm test` and `npm run test:compat`. It starts one
 * PostgreSQL server per pass (each test file then gets a fresh database on
 * it, test/helpers/database.ts), runs tap against it, stops it, and prints
 * the totals of all passes as tap's own last line does.
 *
 *   npm test                          every file on the embedded server, two at a time, and beside
 *                                     them the PostgreSQL-facing files on Debian's stock 15 (JIT on)
 *   npm run test:compat               the core files on PostgreSQL 14, 15, 16, 17, 18 and Debian's 15
 *   node dist/test/run.js --server embedded-16 [files…]
 */
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { isServerKind, serverAvailable, startPostgresServer, type ServerKind } from '../src/harness/postgres-server.js'

/** Store, idempotency, dispatch claims and outcomes, crash phases and outage: they run again on the stock server. */
const stockFiles = [
  'durable-store', 'writer-plans', 'writer-staging', 'copy-transaction',
  'dispatch-claims', 'dispatch-fencing', 'dispatch-plans', 'dispatch-stale-plans', 'crash-phases', 'database-outage'
]
/** The core contract, idempotency, dispatch claims and outcomes, and crash phases: on every supported version. */
const compatFiles = ['http-contract', 'durable-store', 'pipeline-end-to-end', 'dispatch-claims', 'dispatch-fencing', 'crash-phases']
const compatKinds: readonly ServerKind[] = ['embedded-14', 'embedded-15', 'embedded-16', 'embedded-17', 'embedded', 'debian-15']

interface Totals { total: number, pass: number, fail: number, skip: number }
/** One tap run on one server: its files (null: every file), `jobs` at a time. */
interface Pass {
  readonly kind: ServerKind
  readonly files: readonly string[] | null
  readonly jobs: number
  /** tap starts only once this resolves. */
  readonly after?: Promise<void>
  /** Called when tap prints its first line, so its plugins are built. */
  readonly onStarted?: () => void
}

const usage = `usage: node dist/test/run.js [--compat] [--server KIND] [FILE…]
  (no options)    every test on the embedded server and, at the same time, the PostgreSQL-facing ones on Debian's postgresql-15
  --compat        the core tests on PostgreSQL 14, 15, 16, 17, 18 and Debian's 15, one version after another
  --server KIND   one pass on KIND (${['embedded', 'embedded-14', 'embedded-15', 'embedded-16', 'embedded-17', 'debian-15'].join(', ')})
  FILE…           test files (dist/test/NAME.test.js or NAME) instead of every file`

/**
 * One initialised data directory per server kind for the whole run: a test's
 * own server starts from a copy of it instead of running initdb (src/harness/postgres-server.ts).
 */
async function withTemplates (run: () => Promise<number>): Promise<number> {
  const templates = await mkdtemp(join(tmpdir(), 'hermes-templates-'))
  await chmod(templates, 0o777) // as root, initdb runs as `postgres`, which must be able to write there
  process.env['HERMES_TEST_TEMPLATES'] = templates
  try {
    return await run()
  } finally {
    await rm(templates, { recursive: true, force: true })
  }
}

async function main (): Promise<number> {
  const { values, positionals } = parseArgs({
    options: { compat: { type: 'boolean' }, server: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true
  })
  if (values.help === true) { console.log(usage); return 0 }
  const chosen = positionals.length > 0 ? positionals : null
  const sum: Totals = { total: 0, pass: 0, fail: 0, skip: 0 }
  let status = 0
  const add = (result: { code: number, totals: Totals }): void => {
    if (result.code !== 0) status = result.code
    for (const key of Object.keys(sum) as Array<keyof Totals>) sum[key] += result.totals[key]
  }
  let passCount: number
  if (values.compat === true) {
    passCount = compatKinds.length
    for (const kind of compatKinds) add(await runPass({ kind, files: chosen ?? compatFiles, jobs: 2 }, process.stdout))
  } else if (values.server !== undefined) {
    if (!isServerKind(values.server)) { console.error(`--server ${values.server}: not a server kind\n${usage}`); return 2 }
    passCount = 1
    add(await runPass({ kind: values.server, files: chosen, jobs: 2 }, process.stdout))
  } else if (chosen !== null) {
    passCount = 1
    add(await runPass({ kind: 'embedded', files: chosen, jobs: 2 }, process.stdout))
  } else {
    // The stock pass runs one file at a time beside the main pass, whose output it holds back until that pass ends.
    passCount = 2
    // It starts its tap once the main pass's tap is running: a first run rebuilds tap's plugins, and two at once break them.
    const held: string[] = []
    let mainStarted = (): void => {}
    const after = new Promise<void>((resolve) => { mainStarted = resolve })
    const stock = runPass({ kind: 'debian-15', files: stockFiles, jobs: 1, after }, { write: (line: string) => held.push(line) })
    add(await runPass({ kind: 'embedded', files: null, jobs: 2, onStarted: () => mainStarted() }, process.stdout).finally(() => mainStarted()))
    const stockResult = await stock
    for (const line of held) process.stdout.write(line)
    add(stockResult)
  }
  console.log(`# totals of ${passCount} pass${passCount === 1 ? '' : 'es'}`)
  console.log(`# { total: ${sum.total}, pass: ${sum.pass}, fail: ${sum.fail}, skip: ${sum.skip} }`)
  return status
}

interface LineSink { write (line: string): unknown }

/** Starts the pass's server, runs tap on it and stops it; a kind not installed here is skipped with a line saying so. */
async function runPass (pass: Pass, out: LineSink): Promise<{ code: number, totals: Totals }> {
  if (!serverAvailable(pass.kind)) {
    out.write(`# ${pass.kind}: not installed on this machine (apt-get install -y postgresql-15); this pass is skipped\n`)
    return { code: 0, totals: { total: 0, pass: 0, fail: 0, skip: 0 } }
  }
  const server = await startPostgresServer(pass.kind, { settings: { max_connections: '300' } })
  try {
    const files = pass.files?.map(testPath) ?? everyFile().map(testPath)
    out.write(`# pass on ${pass.kind}: ${files.length} files, ${pass.jobs} at a time\n`)
    return await runTap(files, pass, server.adminUrl, out)
  } finally {
    await server.destroy()
  }
}

function testPath (name: string): string {
  return name.includes('/') ? name : `dist/test/${name}.test.js`
}

/** The name of every test file (tap runs them in alphabetical order). */
function everyFile (): string[] {
  const dir = new URL('.', import.meta.url)
  return readdirSync(dir).filter((f) => f.endsWith('.test.js')).map((f) => f.slice(0, -'.test.js'.length))
}

/** Runs tap with the pass's server as every file's shared server, echoing its output and reading its totals line. */
async function runTap (files: readonly string[], pass: Pass, adminUrl: string, out: LineSink): Promise<{ code: number, totals: Totals }> {
  const env: NodeJS.ProcessEnv = { ...process.env, HERMES_TEST_ADMIN_URL: adminUrl, HERMES_TEST_SERVER: pass.kind }
  delete env['DATABASE_URL']
  await pass.after
  // The server kind as a test argument puts it in the name of each file's t.testdir(), so the same file in two passes at once keeps its fixtures apart.
  const child = spawn(process.execPath, [new URL('../../node_modules/tap/dist/esm/run.mjs', import.meta.url).pathname, `--jobs=${pass.jobs}`, `--test-arg=${pass.kind}`, ...files], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const stop = (): void => { child.kill('SIGTERM') }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const totals: Totals = { total: 0, pass: 0, fail: 0, skip: 0 }
  for await (const line of createInterface({ input: child.stdout })) {
    pass.onStarted?.()
    out.write(`${line}\n`)
    if (/^# \{ total: \d+/.test(line)) {
      for (const key of Object.keys(totals) as Array<keyof Totals>) totals[key] = Number(new RegExp(`\\b${key}: (\\d+)`).exec(line)?.[1] ?? 0)
    }
  }
  const code = await new Promise<number>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode)
    else child.once('exit', (c) => resolve(c ?? 1))
  })
  process.off('SIGINT', stop)
  process.off('SIGTERM', stop)
  if (code !== 0 && totals.fail === 0) totals.fail = 1 // tap failed without a failing test (a crash, a timeout)
  return { code, totals }
}

process.exitCode = await withTemplates(main)

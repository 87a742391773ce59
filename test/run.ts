/**
 * The test runner behind `npm test` and `npm run test:compat`. It starts one
 * PostgreSQL server per pass (each test file then gets a fresh database on
 * it, test/helpers/database.ts), runs the pass's tap test files against it,
 * stops it, and prints the totals of all passes as tap's own last line does.
 *
 * Each file runs as a plain `node` process, a few at a time, not under tap's
 * runner: the runner starts every test process with @tapjs/processinfo's
 * module hook (for coverage, which is off here), and that hook sends every
 * import through a hooks thread: 0.4-0.9 s of CPU per file (bench/README.md,
 * "Test-suite time"). A tap test file run alone prints the same TAP and exits
 * non-zero when a test fails.
 *
 *   npm test                          every file on the embedded server, two at a time, and beside
 *                                     them the PostgreSQL-facing files on Debian's stock 15 (JIT on)
 *   npm run test:compat               the core files on PostgreSQL 14, 15, 16, 17, 18 and Debian's 15
 *   node dist/test/run.js --server embedded-16 [files…]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
/**
 * Files that count what a provider received per second or wait out real time at a provider: they
 * run one after another in a lane of their own, beside the other files' lanes, so no two of them
 * share the machine, and their waiting overlaps the other files' work.
 */
const timingFiles = ['dispatch-concurrency', 'dispatch-rate-limit', 'fleet-death', 'fleet-limits', 'fleet-pause', 'preclaim', 'provider-gone']
/**
 * Files that mostly wait, with little CPU: on uWebSockets.js' 10-s idle timeout (hostile-http, http-proxies),
 * on processes and servers starting (cli, pgbouncer, dispatch-plans), on ack timeouts (backpressure, last:
 * after the bench files at the head of the CPU-bound lanes). They go first in the timing files' lane,
 * which has room for them, and the two CPU-bound lanes are the shorter for it.
 */
const waitingFiles = ['cli', 'hostile-http', 'http-proxies', 'pgbouncer', 'dispatch-plans', 'backpressure']
const isTimingFile = (file: string): boolean => timingFiles.some((name) => file === testPath(name))
const inSlowLane = (file: string): boolean => isTimingFile(file) || waitingFiles.some((name) => file === testPath(name))

/** One run of test files on one server: its files (null: every file), `jobs` at a time beside the lane of the timing and waiting files. */
interface Pass {
  readonly kind: ServerKind
  readonly files: readonly string[] | null
  readonly jobs: number
  /** The timing and waiting files in a lane of their own beside the `jobs` (false for the stock pass, which runs beside the main one: one file at a time in all). */
  readonly slowLane: boolean
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
    for (const kind of compatKinds) add(await runPass({ kind, files: chosen ?? compatFiles, jobs: 2, slowLane: true }, process.stdout))
  } else if (values.server !== undefined) {
    if (!isServerKind(values.server)) { console.error(`--server ${values.server}: not a server kind\n${usage}`); return 2 }
    passCount = 1
    add(await runPass({ kind: values.server, files: chosen, jobs: 2, slowLane: true }, process.stdout))
  } else if (chosen !== null) {
    passCount = 1
    add(await runPass({ kind: 'embedded', files: chosen, jobs: 2, slowLane: true }, process.stdout))
  } else {
    // The stock pass runs one file at a time beside the main pass, whose output it holds back until that pass ends.
    passCount = 2
    const held: string[] = []
    const stock = runPass({ kind: 'debian-15', files: stockFiles, jobs: 1, slowLane: false }, { write: (line: string) => held.push(line) })
    add(await runPass({ kind: 'embedded', files: null, jobs: 2, slowLane: true }, process.stdout))
    const stockResult = await stock
    for (const line of held) process.stdout.write(line)
    add(stockResult)
  }
  console.log(`# totals of ${passCount} pass${passCount === 1 ? '' : 'es'}`)
  console.log(`# { total: ${sum.total}, pass: ${sum.pass}, fail: ${sum.fail}, skip: ${sum.skip} }`)
  return status
}

interface LineSink { write (line: string): unknown }

/** Starts the pass's server, runs the pass's files on it and stops it; a kind not installed here is skipped with a line saying so. */
async function runPass (pass: Pass, out: LineSink): Promise<{ code: number, totals: Totals }> {
  if (!serverAvailable(pass.kind)) {
    out.write(`# ${pass.kind}: not installed on this machine (apt-get install -y postgresql-15); this pass is skipped\n`)
    return { code: 0, totals: { total: 0, pass: 0, fail: 0, skip: 0 } }
  }
  const server = await startPostgresServer(pass.kind, { settings: { max_connections: '300' } })
  try {
    const files = pass.files?.map(testPath) ?? everyFile().map(testPath)
    const timing = pass.slowLane ? files.filter(isTimingFile).length : 0
    const waiting = pass.slowLane ? files.filter(inSlowLane).length - timing : 0
    const besides = [timing > 0 ? `the ${timing} that time a provider` : '', waiting > 0 ? `the ${waiting} that mostly wait` : ''].filter((s) => s !== '').join(' and ')
    out.write(`# pass on ${pass.kind}: ${files.length} files, ${pass.jobs} at a time${besides === '' ? '' : `, and beside them one at a time ${besides}`}\n`)
    return await runFiles(files, pass, server.adminUrl, out)
  } finally {
    await server.destroy()
  }
}

function testPath (name: string): string {
  return name.includes('/') ? name : `dist/test/${name}.test.js`
}

/** The name of every test file, in alphabetical order (the order the lanes take them in). */
function everyFile (): string[] {
  const dir = new URL('.', import.meta.url)
  return readdirSync(dir).filter((f) => f.endsWith('.test.js')).map((f) => f.slice(0, -'.test.js'.length)).sort()
}

/** A file's timeout, as `npx tap` would give it (package.json "tap.timeout"); a file's own t.setTimeout() overrides it. */
const kFileTimeoutSeconds = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { tap: { timeout: number } }).tap.timeout
/** A file still running this long after it started is killed and counted failed (its own timeout did not end it). */
const kHardLimitMs = 15 * 60_000

/**
 * Runs the files `pass.jobs` at a time, and the timing and waiting files one at a time beside them, with the pass's server as every file's
 * shared server; echoes each file's TAP as one subtest when it ends and sums
 * the counts of the `# { total: … }` line each file prints last.
 */
async function runFiles (files: readonly string[], pass: Pass, adminUrl: string, out: LineSink): Promise<{ code: number, totals: Totals }> {
  const env: NodeJS.ProcessEnv = { ...process.env, HERMES_TEST_ADMIN_URL: adminUrl, HERMES_TEST_SERVER: pass.kind, TAP_TIMEOUT: String(kFileTimeoutSeconds) }
  delete env['DATABASE_URL']
  const totals: Totals = { total: 0, pass: 0, fail: 0, skip: 0 }
  const running = new Set<ChildProcess>()
  let stopped = false
  const stop = (): void => { stopped = true; for (const child of running) child.kill('SIGTERM') }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const started = performance.now()
  const slow = (file: string): boolean => pass.slowLane && inSlowLane(file)
  const waitingFirst = (f: string): number => { const i = waitingFiles.findIndex((name) => f === testPath(name)); return i === -1 ? waitingFiles.length : i }
  const queues = [files.filter((f) => !slow(f)), files.filter(slow).sort((a, b) => waitingFirst(a) - waitingFirst(b))]
  let reported = 0
  let code = 0
  out.write('TAP version 14\n')
  const lane = async (queue: string[]): Promise<void> => {
    for (let file = queue.shift(); file !== undefined && !stopped; file = queue.shift()) {
      const result = await runFile(file, pass.kind, env, running)
      const counts = countsOf(result.output)
      const failed = result.code !== 0 || counts.fail > 0
      if (failed) code = 1
      totals.total += Math.max(counts.total, failed && counts.fail === 0 ? 1 : 0)
      totals.pass += counts.pass
      totals.skip += counts.skip
      totals.fail += counts.fail > 0 ? counts.fail : failed ? 1 : 0 // a crash or a timeout without a failing test
      const why = result.code === 0 ? '' : ` (exit ${result.signal ?? result.code})`
      out.write(`# Subtest: ${file}\n${result.output.replace(/^(?=.)/gm, '    ')}${result.output.endsWith('\n') ? '' : '\n'}`)
      out.write(`${failed ? 'not ok' : 'ok'} ${++reported} - ${file}${why} # time=${result.ms.toFixed(3)}ms\n\n`)
    }
  }
  await Promise.all([...Array.from({ length: Math.max(1, pass.jobs) }, async () => await lane(queues[0]!)), lane(queues[1]!)])
  process.off('SIGINT', stop)
  process.off('SIGTERM', stop)
  out.write(`1..${reported}\n# { total: ${totals.total}, pass: ${totals.pass}, fail: ${totals.fail}, skip: ${totals.skip} }\n# time=${(performance.now() - started).toFixed(3)}ms\n`)
  return { code, totals }
}

/** One test file in a process of its own; its TAP output (stdout), exit and wall time. The server kind is its argument (see below). */
async function runFile (file: string, kind: ServerKind, env: NodeJS.ProcessEnv, running: Set<ChildProcess>): Promise<{ output: string, code: number, signal: string | null, ms: number }> {
  const t0 = performance.now()
  // The server kind as an argument puts it in the name of the file's t.testdir(), so the same file in two passes at once keeps its fixtures apart.
  const child = spawn(process.execPath, ['--enable-source-maps', file, kind], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  running.add(child)
  const chunks: Buffer[] = []
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk))
  const limit = setTimeout(() => child.kill('SIGKILL'), kHardLimitMs)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])))
  clearTimeout(limit)
  running.delete(child)
  return { output: Buffer.concat(chunks).toString('utf8'), code: code ?? 1, signal, ms: performance.now() - t0 }
}

/** The counts of the last `# { total: N, pass: N, … }` line a tap file printed (zeros without one). */
function countsOf (output: string): Totals {
  const line = output.split('\n').reverse().find((l) => /^# \{ total: \d+/.test(l)) ?? ''
  const count = (key: string): number => Number(new RegExp(`\\b${key}: (\\d+)`).exec(line)?.[1] ?? 0)
  return { total: count('total'), pass: count('pass'), fail: count('fail'), skip: count('skip') }
}

process.exitCode = await withTemplates(main)

/**
 * The test runner behind `npm test` and `npm run test:compat`. It starts one
 * PostgreSQL server per pass (each test file then gets a fresh database on
 * it, test/helpers/database.ts), runs tap against it, stops it, and prints
 * the totals of all passes as tap's own last line does.
 *
 *   npm test                          every file on the embedded server, then the
 *                                     PostgreSQL-facing files on Debian's stock 15 (JIT on)
 *   npm run test:compat               the core files on PostgreSQL 14, 15, 16, 17, 18 and Debian's 15
 *   node dist/test/run.js --server embedded-16 [files…]
 */
import { spawn } from 'node:child_process'
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
interface Pass { readonly kind: ServerKind, readonly files: readonly string[] | null }

const usage = `usage: node dist/test/run.js [--compat] [--server KIND] [FILE…]
  (no options)    every test on the embedded server, then the PostgreSQL-facing ones on Debian's postgresql-15
  --compat        the core tests on PostgreSQL 14, 15, 16, 17, 18 and Debian's 15
  --server KIND   one pass on KIND (${['embedded', 'embedded-14', 'embedded-15', 'embedded-16', 'embedded-17', 'debian-15'].join(', ')})
  FILE…           test files (dist/test/NAME.test.js or NAME) instead of every file`

async function main (): Promise<number> {
  const { values, positionals } = parseArgs({
    options: { compat: { type: 'boolean' }, server: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true
  })
  if (values.help === true) { console.log(usage); return 0 }
  const chosen = positionals.length > 0 ? positionals : null
  let passes: Pass[]
  if (values.compat === true) passes = compatKinds.map((kind) => ({ kind, files: chosen ?? compatFiles }))
  else if (values.server !== undefined) {
    if (!isServerKind(values.server)) { console.error(`--server ${values.server}: not a server kind\n${usage}`); return 2 }
    passes = [{ kind: values.server, files: chosen }]
  } else passes = [{ kind: 'embedded', files: chosen }, ...(chosen === null ? [{ kind: 'debian-15' as const, files: stockFiles }] : [])]

  const sum: Totals = { total: 0, pass: 0, fail: 0, skip: 0 }
  let status = 0
  for (const pass of passes) {
    if (!serverAvailable(pass.kind)) {
      console.log(`# ${pass.kind}: not installed on this machine (apt-get install -y postgresql-15); this pass is skipped`)
      continue
    }
    console.log(`# pass on ${pass.kind}${pass.files === null ? '' : `: ${pass.files.length} files`}`)
    const server = await startPostgresServer(pass.kind, { settings: { max_connections: '300' } })
    try {
      const { code, totals } = await runTap(pass, server.adminUrl)
      if (code !== 0) status = code
      for (const key of Object.keys(sum) as Array<keyof Totals>) sum[key] += totals[key]
    } finally {
      await server.destroy()
    }
  }
  console.log(`# totals of ${passes.length} pass${passes.length === 1 ? '' : 'es'}`)
  console.log(`# { total: ${sum.total}, pass: ${sum.pass}, fail: ${sum.fail}, skip: ${sum.skip} }`)
  return status
}

/** Runs tap with the pass's server as every file's shared server, echoing its output and reading its totals line. */
async function runTap (pass: Pass, adminUrl: string): Promise<{ code: number, totals: Totals }> {
  const files = pass.files?.map((f) => f.includes('/') ? f : `dist/test/${f}.test.js`) ?? []
  const env: NodeJS.ProcessEnv = { ...process.env, HERMES_TEST_ADMIN_URL: adminUrl, HERMES_TEST_SERVER: pass.kind }
  delete env['DATABASE_URL']
  const child = spawn(process.execPath, [new URL('../../node_modules/tap/dist/esm/run.mjs', import.meta.url).pathname, ...files], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  const stop = (): void => { child.kill('SIGTERM') }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  const totals: Totals = { total: 0, pass: 0, fail: 0, skip: 0 }
  for await (const line of createInterface({ input: child.stdout })) {
    console.log(line)
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

process.exitCode = await main()

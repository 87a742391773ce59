// The bench's end-to-end scenarios: a tiny `--scenarios sustained,peer` run searches Hermes and the Fastify + graphile-worker peer, splits the CPU per part and writes it all to the JSON report.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureWrk } from '../src/harness/wrk.js'
import { runBench } from './helpers/bench.js'
import { testDatabase } from '../src/harness/database.js'

let wrk: string | false = false
try { await ensureWrk() } catch (error) { wrk = error instanceof Error ? error.message : String(error) }
// About 30 s on the shared 2-core machine under load: one 2-s step per system plus the peer's closed loop.
t.setTimeout(180_000)


t.test('--scenarios sustained,peer: a tiny rate search for Hermes and for the Fastify + graphile-worker peer, written to the JSON report', { skip: wrk }, async (t) => {
  const out = t.testdir()
  // A database of its own: the peer creates and drops another beside it on the same server.
  const db = await testDatabase(t)
  // One step per system: what is asserted is the first step's record; 5000 requests per file, not 100000 (wrk parses all of it first).
  // --warmup 0: the peer's closed-loop run is asserted to answer, not to be warmed up.
  const { code, stdout, stderr } = await runBench(t, ['--quick', '--duration', '1', '--warmup', '0', '--durable-connections', '40', '--requests', '5000', '--scenarios', 'sustained,peer',
    '--sustained-seconds', '2', '--sustained-warmup', '1', '--sustained-steps', '1', '--sustained-min', '100', '--sustained-max', '400', '--out', out], { DATABASE_URL: db.url })
  t.equal(code, 0, `the bench exits 0 ${stderr.slice(-2000)}`)
  t.match(stdout, /sustained \/ peer sustained/, 'prints the peer target')
  interface Step { rate: number, pass: boolean, cpu: Record<string, number>, acceptedPerSecond: number }
  const report = JSON.parse(readFileSync(join(out, readdirSync(out).find((f) => f.endsWith('.json'))!), 'utf8')) as {
    summaries: Array<{ scenario: string, rps: number }>, targets: Array<{ name: string }>,
    endToEnd: { searches: Record<string, { steps: Step[] }>, peerClosedLoop: Array<{ rate: number }> }
  }
  t.same(report.summaries.map((s) => s.scenario).sort(), ['peer', 'peer-sustained', 'sustained'])
  const first = report.endToEnd.searches['hermes']!.steps[0]!
  t.equal(first.rate, 100, 'the search starts at --sustained-min')
  t.ok(first.acceptedPerSecond > 50, `Hermes answered 202 at about the rate sent (${first.acceptedPerSecond}/s)`)
  for (const part of ['hermes main', 'hermes writer', 'hermes dispatch', 'hermes worker-0', 'postgres hermes-writer', 'fake provider', 'load generator (wrk)']) t.ok(part in first.cpu, `CPU charged to ${part}`)
  t.ok(first.cpu['hermes main']! > 0, 'the HTTP thread used some CPU')
  const peerFirst = report.endToEnd.searches['peer']!.steps[0]!
  for (const part of ['peer http main', 'peer worker main', 'postgres peer-http', 'postgres peer-worker']) t.ok(part in peerFirst.cpu, `the peer's CPU charged to ${part}`)
  t.ok(report.endToEnd.peerClosedLoop[0]!.rate > 0, 'the peer answered 202 under the closed-loop load')
  t.ok(report.targets.some((x) => x.name === 'sustained end-to-end rate'))
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'hermes_bench_peer_%'")
  t.equal(rows[0]!.n, 0, "the peer's database is dropped at the end")
})

t.test('--sustained-max must be above --sustained-min', async (t) => {
  const { code, stderr } = await runBench(t, ['--scenarios', 'sustained', '--sustained-min', '500', '--sustained-max', '400'])
  t.not(code, 0, 'refused')
  t.match(stderr, /--sustained-max must be above --sustained-min/)
})

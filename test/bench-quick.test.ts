// The bench harness itself: a tiny --quick run starts and stops everything and writes a valid JSON report and SVG chart.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureWrk } from '../src/harness/wrk.js'
import { runBench } from './helpers/bench.js'
import { testDatabase } from '../src/harness/database.js'

let wrk: string | false = false
try { await ensureWrk() } catch (error) { wrk = error instanceof Error ? error.message : String(error) }


t.test('npm run bench -- --quick writes a JSON report and an SVG chart', { skip: wrk }, async (t) => {
  const out = t.testdir()
  // A database of the test run's server instead of an embedded PostgreSQL of the bench's own, and files of
  // 5000 requests instead of 100000: every wrk run parses its whole file before its first request.
  const db = await testDatabase(t)
  const { code, stdout } = await runBench(t, ['--quick', '--duration', '1', '--overload', '1', '--rows', '2000', '--connections', '20', '--durable-connections', '40',
    '--requests', '5000', '--scenarios', 'ceiling,naive,durable,durable-half,raw-copy,writer,overload', '--out', out], { DATABASE_URL: db.url })
  t.equal(code, 0, 'the bench exits 0')
  t.match(stdout, /durable \/ naive/, 'prints the target lines')
  const files = readdirSync(out)
  const json = files.find((f) => f.endsWith('.json'))
  const svg = files.find((f) => f.endsWith('.svg'))
  t.ok(json !== undefined && svg !== undefined, `wrote ${files.join(', ')}`)
  const report = JSON.parse(readFileSync(join(out, json!), 'utf8')) as { machine: Record<string, unknown>, summaries: Array<{ scenario: string, rps: number }>, targets: unknown[] }
  t.same(report.summaries.map((s) => s.scenario), ['ceiling', 'naive', 'durable', 'durable-half', 'raw-copy', 'writer', 'overload'])
  t.ok(report.summaries.every((s) => s.rps > 0), 'every scenario measured something')
  t.ok(report.machine['cores'] !== undefined && report.machine['postgres'] !== undefined, 'the machine is described')
  t.match(readFileSync(join(out, svg!), 'utf8'), /^<svg[^>]*>[\s\S]*<\/svg>\s*$/)
})

t.test('--half-rate: durable-half alone at a fixed rate, its target reported but not judged', { skip: wrk }, async (t) => {
  const out = t.testdir()
  const db = await testDatabase(t)
  const { code, stderr } = await runBench(t, ['--quick', '--duration', '2', '--durable-connections', '40', '--requests', '2000', '--scenarios', 'durable-half', '--half-rate', '300', '--out', out], { DATABASE_URL: db.url })
  t.equal(code, 0, 'the bench exits 0 without a durable scenario before durable-half')
  t.match(stderr, /durable-half run 1: sent at 300\/s/, 'sent at the rate given')
  const report = JSON.parse(readFileSync(join(out, readdirSync(out).find((f) => f.endsWith('.json'))!), 'utf8')) as { summaries: Array<{ scenario: string, rps: number }>, targets: Array<{ name: string, pass: boolean | null, detail: string }> }
  const rps = report.summaries.find((s) => s.scenario === 'durable-half')!.rps
  // The schedule is what is pinned (wrk's own report above); what is stored may lag it when the machine is busy, never pass it.
  t.ok(rps > 150 && rps < 350, `stored no faster than 300/s, and most of it (${rps.toFixed(0)})`)
  const target = report.targets.find((x) => x.name.startsWith('durable p99'))!
  t.same({ pass: target.pass, detail: target.detail }, { pass: null, detail: 'sent at a fixed 300/s (--half-rate), not judged' })
})

t.test('--half-rate must be a positive integer', async (t) => {
  const { code, stderr } = await runBench(t, ['--scenarios', 'durable-half', '--half-rate', '0'])
  t.not(code, 0, 'refused')
  t.match(stderr, /--half-rate must be a positive integer/)
})

// The bench harness itself: a tiny --quick run starts and stops everything and writes a valid JSON report and SVG chart.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn } from 'node:child_process'
import { ensureWrk } from '../bench/wrk.js'

const runScript = fileURLToPath(new URL('../bench/run.js', import.meta.url))
let wrk: string | false = false
try { await ensureWrk() } catch (error) { wrk = error instanceof Error ? error.message : String(error) }

t.test('npm run bench -- --quick writes a JSON report and an SVG chart', { skip: wrk }, async (t) => {
  const out = t.testdir()
  const child = spawn(process.execPath, [runScript, '--quick', '--duration', '1', '--overload', '2', '--rows', '2000', '--connections', '20', '--durable-connections', '40',
    '--scenarios', 'ceiling,naive,durable,durable-half,raw-copy,writer,overload', '--out', out], { env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', () => {})
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
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

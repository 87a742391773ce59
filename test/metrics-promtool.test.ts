// /metrics passes `promtool check metrics` for every hermes_ series, keeps prom-client's standard
// series under their usual names, and the shipped alert rules and Grafana dashboard only use series
// Hermes exposes. The promtool checks are skipped, saying so, when promtool is not installed.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { send, smsPayload, startTestHermes } from './helpers/hermes.js'

const alertsFile = fileURLToPath(new URL('../../docs/prometheus/alerts.yml', import.meta.url))
const dashboardFile = fileURLToPath(new URL('../../docs/grafana/hermes.json', import.meta.url))
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0
const skipPromtool = promtool ? false : 'promtool is not installed (Debian package "prometheus"); skipping the promtool checks'
// Series the dashboard shows that come from other parts of a deployment: Prometheus' own `up`, and
// delivery receipts, counted only once a provider posts one.
const notFromHermesAlone = new Set(['up', 'hermes_delivery_receipts_total'])

const h = await startTestHermes(t)
for (let i = 0; i < 3; i++) {
  const answer = await h.postSigned('sms', smsPayload()) // so that histograms and counters have samples
  if (answer.status !== 202) throw new Error(`setup: a webhook was answered ${answer.status}`)
}
const exposition = (await send('GET', `${h.base}/metrics`)).text
const families = new Set(exposition.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]!))

t.test('prom-client\'s standard series keep their usual names', async (t) => {
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(families.has(name), name)
  }
  t.notOk([...families].some((n) => n.startsWith('hermes_process_') || n.startsWith('hermes_nodejs_')), 'none renamed under hermes_')
})

t.test('promtool check metrics finds nothing to say about any hermes_ series', { skip: skipPromtool }, async (t) => {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' })
  const findings = `${run.stdout}${run.stderr}`.split('\n').filter((l) => l.trim() !== '')
  t.same(findings.filter((l) => l.includes('hermes_')), [], 'no lint finding names a hermes_ series')
  t.ok(findings.every((l) => /^nodejs_|^process_/.test(l)), `the only findings are prom-client's own names: ${findings.join('; ') || 'none'}`)
})

t.test('promtool check rules accepts docs/prometheus/alerts.yml', { skip: skipPromtool }, async (t) => {
  const run = spawnSync('promtool', ['check', 'rules', alertsFile], { encoding: 'utf8' })
  t.equal(run.status, 0, `${run.stdout}${run.stderr}`)
})

/** Metric names a PromQL text uses (histogram series map to their family). */
function seriesIn (text: string): Set<string> {
  const names = new Set<string>()
  for (const match of text.matchAll(/\b((?:hermes|process|nodejs)_[a-z0-9_]+|up(?=\{))\b/g)) {
    names.add(match[1]!.replace(/_(bucket|sum|count)$/, ''))
  }
  return names
}

t.test('the alert rules and the dashboard only use series Hermes exposes', async (t) => {
  const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> }
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => target.expr))
  t.ok(exprs.length > 15, `${exprs.length} dashboard queries`)
  const used = new Set([...seriesIn(readFileSync(alertsFile, 'utf8')), ...exprs.flatMap((e) => [...seriesIn(e)])])
  const missing = [...used].filter((name) => !families.has(name) && !notFromHermesAlone.has(name))
  t.same(missing, [], 'every series named is exposed')
})

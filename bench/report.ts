/** The bench's outputs: a console table, a JSON file and an SVG chart (throughput and p99 per scenario). */
import { writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'

export interface ScenarioSummary {
  readonly scenario: string
  readonly rps: number // median over runs (requests or rows per second)
  readonly rpsMin: number
  readonly rpsMax: number
  readonly storedPerSecond: number | null
  readonly p50: number | null
  readonly p99: number | null
  readonly p999: number | null
  readonly commitP99: number | null
  readonly cpuSeconds: number | null
  readonly postgresCpuSeconds: number | null
  readonly note: string
}

export interface Target { readonly name: string, readonly value: number | null, readonly goal: string, readonly pass: boolean | null, readonly detail: string }

export function median (xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const fmt = (x: number | null, digits = 0): string => x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits)

export function printReport (machine: Record<string, unknown>, summaries: readonly ScenarioSummary[], targets: readonly Target[]): void {
  console.log(`machine: ${Object.entries(machine).map(([k, v]) => `${k} ${String(v)}`).join(', ')}`)
  console.table(summaries.map((s) => ({
    scenario: s.scenario,
    'per s (median)': fmt(s.rps),
    spread: `${fmt(s.rpsMin)}–${fmt(s.rpsMax)}`,
    'stored/s': fmt(s.storedPerSecond),
    'p50 ms': fmt(s.p50, 2),
    'p99 ms': fmt(s.p99, 2),
    'p99.9 ms': fmt(s.p999, 2),
    'commit p99 ms': fmt(s.commitP99, 1),
    'server cpu s': fmt(s.cpuSeconds, 1),
    'postgres cpu s': fmt(s.postgresCpuSeconds, 1),
    note: s.note
  })))
  for (const t of targets) console.log(`${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.value === null ? '-' : t.value.toFixed(2)} (goal ${t.goal}) ${t.detail}`)
}

function svg (summaries: readonly ScenarioSummary[]): string {
  const width = 760
  const rowHeight = 34
  const left = 170
  const barWidth = 260
  const maxRps = Math.max(1, ...summaries.map((s) => Number.isFinite(s.rps) ? s.rps : 0))
  const maxP99 = Math.max(1, ...summaries.map((s) => s.p99 ?? 0))
  const escape = (text: string): string => text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!)
  const rows = summaries.map((s, i) => {
    const y = 50 + i * rowHeight
    const w = Number.isFinite(s.rps) ? Math.max(1, s.rps / maxRps * barWidth) : 0
    const pw = s.p99 === null ? 0 : Math.max(1, s.p99 / maxP99 * 150)
    return `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${escape(s.scenario)}</text>` +
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="20" fill="#3b82f6"/>` +
      `<text x="${left + w + 5}" y="${y + 15}">${fmt(s.rps)}/s</text>` +
      `<rect x="${left + barWidth + 90}" y="${y}" width="${pw.toFixed(1)}" height="20" fill="#f59e0b"/>` +
      `<text x="${left + barWidth + 95 + pw}" y="${y + 15}">${s.p99 === null ? '' : `${fmt(s.p99, 1)} ms`}</text>`
  }).join('\n')
  const height = 70 + summaries.length * rowHeight
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${left}" y="25" font-weight="bold">throughput per second (median)</text>
<text x="${left + barWidth + 90}" y="25" font-weight="bold">p99 answer latency</text>
${rows}
</svg>
`
}

export function writeReport (dir: string, data: Record<string, unknown>, summaries: readonly ScenarioSummary[]): { json: string, svg: string } {
  mkdirSync(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const json = join(dir, `${stamp}.json`)
  const chart = join(dir, `${stamp}.svg`)
  writeFileSync(json, `${JSON.stringify({ ...data, summaries }, null, 2)}\n`)
  writeFileSync(chart, svg(summaries))
  return { json, svg: chart }
}

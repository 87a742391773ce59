import { Registry, collectDefaultMetrics } from 'prom-client'
import type { SharedMetrics } from './shared-metrics.js'

export interface ScrapeGauge {
  readonly name: string
  readonly help: string
  readonly read: () => number
}

interface Sample { metricName?: string, labels: Record<string, string | number>, value: number }

/**
 * The prom-client registry behind GET /metrics: prom-client's defaults under
 * their standard names (process_*, nodejs_*, so stock dashboards work), every
 * shared-memory metric (read in place at scrape time) and gauges computed
 * at scrape time (ring occupancy, writer queue).
 */
export function createRegistry (metrics: SharedMetrics, gauges: readonly ScrapeGauge[]): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  for (const p of metrics.layout.placed.values()) {
    const { name, help, type, labels = [], buckets = [], scale = 1 } = p.definition
    const names = labels.map(([label]) => label)
    registry.registerMetric({
      name,
      help,
      type,
      get: async () => {
        const values: Sample[] = []
        p.combinations.forEach((combo, i) => {
          const base = Object.fromEntries(names.map((n, j) => [n, combo[j]!]))
          const at = p.offset + i * p.width
          const v = (k: number): number => Number(Atomics.load(metrics.values, at + k))
          if (type !== 'histogram') {
            values.push({ labels: base, value: v(0) / scale })
            return
          }
          let cumulative = 0
          buckets.forEach((le, b) => {
            cumulative += v(b)
            values.push({ metricName: `${name}_bucket`, labels: { ...base, le }, value: cumulative })
          })
          values.push({ metricName: `${name}_bucket`, labels: { ...base, le: '+Inf' }, value: v(buckets.length) })
          values.push({ metricName: `${name}_sum`, labels: base, value: v(buckets.length + 1) / scale })
          values.push({ metricName: `${name}_count`, labels: base, value: v(buckets.length) })
        })
        return { name, help, type, values, aggregator: 'sum' }
      }
    } as never)
  }
  for (const g of gauges) {
    registry.registerMetric({ name: g.name, help: g.help, type: 'gauge', get: async () => ({ name: g.name, help: g.help, type: 'gauge', values: [{ labels: {}, value: g.read() }], aggregator: 'sum' }) } as never)
  }
  return registry
}

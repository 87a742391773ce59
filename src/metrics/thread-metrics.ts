import { metricsLayout, type MetricsSpec } from './definitions.js'
import { SharedMetrics } from './shared-metrics.js'

/** What a thread needs to open the shared metrics block (part of its workerData). */
export interface MetricsData {
  readonly buffer: SharedArrayBuffer
  readonly spec: MetricsSpec
}

export function metricsData (metrics: SharedMetrics, spec: MetricsSpec): MetricsData {
  return { buffer: metrics.buffer, spec }
}

/** Opens the block another thread created; same spec → same layout → same offsets. */
export function openMetrics (data: MetricsData): SharedMetrics {
  return new SharedMetrics(metricsLayout(data.spec), data.buffer)
}

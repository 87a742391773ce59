import { performance } from 'node:perf_hooks'
import type { SharedMetrics } from './shared-metrics.js'

/** Publishes this thread's event-loop utilisation over the last second into the shared block. */
export function reportEventLoopUtilization (metrics: SharedMetrics, thread: string, intervalMs = 1000): () => void {
  let last = performance.eventLoopUtilization()
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization()
    metrics.set('hermes_event_loop_utilization', [thread], performance.eventLoopUtilization(now, last).utilization)
    last = now
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * Publishes each process-stage worker's share of the last second spent on
 * tasks, from the busy-time counters the workers keep
 * (hermes_worker_busy_seconds_total), under the same gauge as the other
 * threads. Not their event-loop utilisation: Piscina parks an idle worker in
 * a blocking Atomics.wait, which stalls its timers and counts as running.
 */
export function reportWorkerUtilization (metrics: SharedMetrics, workers: readonly string[], intervalMs = 1000): () => void {
  const busy = (): number[] => workers.map((name) => metrics.read('hermes_worker_busy_seconds_total', [name]))
  let at = performance.now()
  let last = busy()
  const timer = setInterval(() => {
    const now = performance.now()
    const current = busy()
    workers.forEach((name, i) => metrics.set('hermes_event_loop_utilization', [name], Math.min(1, (current[i]! - last[i]!) * 1000 / (now - at))))
    at = now
    last = current
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

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

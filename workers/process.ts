/**
 * Piscina worker entry: verifies, validates and encodes ranges of webhooks
 * read straight from the shared ingress ring.
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina'
import { IngressRing } from '../src/ingest/ring-buffer.js'
import type { ProcessResult, ProcessTask, ProcessWorkerData } from '../src/messages.js'
import { processRange } from '../src/process/process-range.js'
import { RulesBoard } from '../src/process/rules-board.js'
import { openMetrics } from '../src/metrics/thread-metrics.js'
import { lowerThreadPriority } from '../src/thread-priority.js'

const data = workerData as ProcessWorkerData
lowerThreadPriority(data.backgroundNice)
const ring = IngressRing.attach(data.ring)
const rules = RulesBoard.attach(data.rulesBoard)
const metrics = data.metrics === undefined ? undefined : openMetrics(data.metrics)
/** This thread's number in start order; replacements of dead threads get new numbers. */
export const threadIndex = Atomics.add(data.workerSeq, 0, 1)
// Busy time, not event-loop utilisation: Piscina parks an idle worker in a
// blocking Atomics.wait, which stalls its timers and counts as "running".
const busy = metrics?.slot('hermes_worker_busy_seconds_total', [`worker-${threadIndex % data.metrics!.spec.workers}`])

export default function process (task: ProcessTask): unknown {
  const result: ProcessResult = processRange(ring, rules.read(task.generation), data.toleranceSeconds, task)
  if (metrics !== undefined && task.count > 0) {
    metrics.inc('hermes_worker_records_total', ['accepted'], result.acceptedSlots.length)
    metrics.inc('hermes_worker_records_total', ['rejected'], result.rejected.length)
    metrics.observe('hermes_worker_task_seconds', [], result.elapsedMs / 1000)
    metrics.add(busy!, result.elapsedMs / 1000)
  }
  // Transfer the row and slot bytes back instead of cloning them.
  return move({
    [transferableSymbol]: [result.rows.buffer, result.acceptedSlots.buffer],
    [valueSymbol]: result
  } as never)
}

/**
 * Piscina worker entry: verifies, validates and encodes ranges of webhooks
 * read straight from the shared ingress ring.
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina'
import { IngressRing } from '../src/ingest/ring-buffer.js'
import type { ProcessResult, ProcessTask, ProcessWorkerData } from '../src/messages.js'
import { processRange, sendgridParse } from '../src/process/process-range.js'
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
// A worker of a Hermes with a SendGrid Inbound Parse channel loads that parser now rather than on its first email.
try {
  if (rules.read(rules.newestGeneration()).channels.some((c) => c.format === 'sendgrid-parse')) sendgridParse().catch(() => {}) // a failed import is reported by the first email instead
} catch {} // a reload raced this read: the first email loads it instead
// Busy time, not event-loop utilisation: Piscina parks an idle worker in a
// blocking Atomics.wait, which stalls its timers and counts as "running".
const busy = metrics?.slot('hermes_worker_busy_seconds_total', [`worker-${threadIndex % data.metrics!.spec.workers}`])

export default function process (task: ProcessTask): unknown {
  const result = processRange(ring, rules.read(task.generation), data.toleranceSeconds, task)
  return result instanceof Promise ? result.then(finish) : finish(result)
}

function finish (result: ProcessResult): unknown {
  if (metrics !== undefined) count(result)
  // Transfer the row and slot bytes back instead of cloning them.
  return move({
    [transferableSymbol]: [result.rows.buffer, result.acceptedSlots.buffer, result.receiptRows.buffer, result.receiptSlots.buffer],
    [valueSymbol]: result
  } as never)
}

function count (result: ProcessResult): void {
  const m = metrics!
  if (result.acceptedSlots.length + result.rejected.length + result.receiptSlots.length > 0) {
    m.inc('hermes_worker_records_total', ['accepted'], result.acceptedSlots.length + result.receiptSlots.length)
    m.inc('hermes_worker_records_total', ['rejected'], result.rejected.length)
    m.observe('hermes_worker_task_seconds', [], result.elapsedMs / 1000)
    m.add(busy!, result.elapsedMs / 1000)
  }
  for (const [format, [accepted, rejected]] of Object.entries(result.formats)) {
    if (accepted > 0) m.inc('hermes_inbound_total', [format, 'accepted'], accepted)
    if (rejected > 0) m.inc('hermes_inbound_total', [format, 'rejected'], rejected)
  }
}

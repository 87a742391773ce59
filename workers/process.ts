/**
 * Piscina worker entry: verifies, validates and encodes ranges of webhooks
 * read straight from the shared ingress ring.
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina'
import { IngressRing } from '../src/ingest/ring-buffer.js'
import type { ProcessResult, ProcessTask } from '../src/messages.js'
import { processRange } from '../src/process/process-range.js'
import type { ChannelRule } from '../src/process/types.js'

export interface ProcessWorkerData {
  readonly ring: SharedArrayBuffer
  readonly rules: ChannelRule[]
  readonly toleranceSeconds: number
}

const data = workerData as ProcessWorkerData
const ring = IngressRing.attach(data.ring)

export default function process (task: ProcessTask): unknown {
  const result: ProcessResult = processRange(ring, data.rules, data.toleranceSeconds, task)
  // Transfer the row and slot bytes back instead of cloning them.
  return move({
    [transferableSymbol]: [result.rows.buffer, result.acceptedSlots.buffer],
    [valueSymbol]: result
  } as never)
}

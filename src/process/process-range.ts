import type { IngressRing } from '../ingest/ring-buffer.js'
import type { ProcessResult, ProcessTask, RecordRejection } from '../messages.js'
import { Rejection } from '../errors.js'
import { processWebhook } from './process-webhook.js'
import type { ChannelRule } from './types.js'

/**
 * Processes a range of ring records: one Piscina task covers many webhooks,
 * so the per-task cost (a message each way) is paid once per range. Accepted
 * rows are concatenated into one buffer that is transferred, not copied.
 */
const encoder = new TextEncoder()

export function processRange (ring: IngressRing, rules: readonly ChannelRule[], toleranceSeconds: number, task: ProcessTask): ProcessResult {
  const started = performance.now()
  const acceptedSlots = new Uint32Array(task.count)
  const rejected: RecordRejection[] = []
  let rows = ''
  let accepted = 0
  let offset = task.offset
  const nowMs = Date.now()
  for (let i = 0; i < task.count; i++) {
    const record = ring.read(offset)
    offset = record.nextOffset
    const channel = rules[record.channelIndex]
    if (channel === undefined) {
      rejected.push({ slot: record.slot, channel: '', ...Rejection.internal, message: 'record names an unknown channel index' })
      continue
    }
    const verdict = processWebhook({ ...record, channel }, { toleranceSeconds, nowMs })
    if (verdict.ok) {
      acceptedSlots[accepted++] = record.slot
      rows += verdict.row
    } else {
      const rejection: RecordRejection = { slot: record.slot, channel: channel.name, status: verdict.status, code: verdict.code, message: verdict.message }
      rejected.push(verdict.fields === undefined ? rejection : { ...rejection, fields: verdict.fields })
    }
  }
  return {
    acceptedSlots: acceptedSlots.slice(0, accepted),
    rows: encoder.encode(rows), // a buffer of its own (never Buffer's shared pool), so it can be transferred
    rejected,
    elapsedMs: performance.now() - started
  }
}

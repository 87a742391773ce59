import type { IngressRing, RingRecord } from '../ingest/ring-buffer.js'
import { kKindReceipt } from '../ingest/ring-layout.js'
import type { ProcessResult, ProcessTask, RecordRejection } from '../messages.js'
import { Rejection } from '../errors.js'
import { decodeNativeMeta } from '../native-meta.js'
import { processWebhook } from './process-webhook.js'
import { processSendgridEvents, processTwilioReceipt, type ReceiptVerdict } from './receipts.js'
import { processTwilioInbound } from './twilio-inbound.js'
import type { ChannelRule, ProcessOptions, ProcessRules, ProviderRule, Verdict } from './types.js'

/**
 * Processes a range of ring records: one Piscina task covers many webhooks,
 * so the per-task cost (a message each way) is paid once per range. Accepted
 * rows are concatenated into one buffer that is transferred, not copied.
 * A range is processed synchronously unless it holds an email of format
 * sendgrid-parse (its multipart and MIME parsers are asynchronous).
 */
const encoder = new TextEncoder()

/** `format` labels the inbound metrics: a channel's format, or `twilio-status` / `sendgrid-events` for receipts. */
type Outcome = { readonly slot: number, readonly channel: string, readonly verdict: Verdict | ReceiptVerdict, readonly receipt: boolean, readonly format: string }

export function processRange (ring: IngressRing, rules: ProcessRules, toleranceSeconds: number, task: ProcessTask): ProcessResult | Promise<ProcessResult> {
  const started = performance.now()
  const outcomes: Array<Outcome | Promise<Outcome>> = []
  let pending = false
  let offset = task.offset
  let outOfBand = 0
  const options: ProcessOptions = { toleranceSeconds, nowMs: Date.now(), publicUrl: rules.publicUrl }
  for (let i = 0; i < task.count; i++) {
    const record = ring.read(offset)
    offset = record.nextOffset
    const body = record.outOfBand ? Buffer.from(task.bodies?.[outOfBand++] ?? new ArrayBuffer(0)) : record.body
    const outcome = processRecord(record, body, rules.channels, rules.providers, options)
    if (outcome instanceof Promise) pending = true
    outcomes.push(outcome)
  }
  if (!pending) return assemble(outcomes as Outcome[], started)
  return Promise.all(outcomes).then((settled) => assemble(settled, started))
}

function processRecord (record: RingRecord, body: Buffer, rules: readonly ChannelRule[], providers: readonly ProviderRule[], options: ProcessOptions): Outcome | Promise<Outcome> {
  const slot = record.slot
  if (record.kind === kKindReceipt) {
    const provider = providers[record.channelIndex]
    if (provider === undefined) return internal(slot, '', 'record names an unknown provider index')
    const meta = decodeNativeMeta(record.meta)
    const verdict = provider.kind === 'twilio'
      ? processTwilioReceipt(provider, body, meta, record.receivedAtMs, options)
      : processSendgridEvents(provider, body, meta, record.receivedAtMs)
    return { slot, channel: provider.name, verdict, receipt: true, format: provider.kind === 'twilio' ? 'twilio-status' : 'sendgrid-events' }
  }
  const channel = rules[record.channelIndex]
  if (channel === undefined) return internal(slot, '', 'record names an unknown channel index')
  const raw = { ...record, body, channel }
  switch (channel.format ?? 'hermes') {
    case 'twilio':
      return { slot, channel: channel.name, verdict: processTwilioInbound(raw, decodeNativeMeta(record.meta), options), receipt: false, format: 'twilio' }
    case 'sendgrid-parse':
      return sendgridParse().then(async (parse) => await parse(raw, decodeNativeMeta(record.meta))).then(
        (verdict) => ({ slot, channel: channel.name, verdict, receipt: false, format: 'sendgrid-parse' }),
        (error: unknown) => internal(slot, channel.name, `could not read this email: ${error instanceof Error ? error.message : String(error)}`))
    default:
      return { slot, channel: channel.name, verdict: processWebhook(raw, options), receipt: false, format: 'hermes' }
  }
}

/**
 * SendGrid Inbound Parse's module, imported when a worker meets its first email: it brings a
 * multipart and a MIME parser, about 0.1 s of CPU to load, which a worker without such a channel never needs.
 */
type ProcessSendgridParse = typeof import('./sendgrid-parse.js')['processSendgridParse']
let sendgridParseModule: Promise<ProcessSendgridParse> | null = null
export async function sendgridParse (): Promise<ProcessSendgridParse> {
  sendgridParseModule ??= import('./sendgrid-parse.js').then((m) => m.processSendgridParse)
  return await sendgridParseModule
}

function internal (slot: number, channel: string, message: string): Outcome {
  return { slot, channel, verdict: { ok: false, ...Rejection.internal, message }, receipt: false, format: 'hermes' }
}

function assemble (outcomes: readonly Outcome[], started: number): ProcessResult {
  const acceptedSlots = new Uint32Array(outcomes.length)
  const receiptSlots = new Uint32Array(outcomes.length)
  const rejected: RecordRejection[] = []
  let rows = ''
  let receiptRows = ''
  let accepted = 0
  let receipts = 0
  const formats: Record<string, [number, number]> = {}
  for (const { slot, channel, verdict, receipt, format } of outcomes) {
    const counts = formats[format] ??= [0, 0]
    counts[verdict.ok ? 0 : 1]++
    if (verdict.ok) {
      if (receipt) {
        receiptSlots[receipts++] = slot
        receiptRows += verdict.row
      } else {
        acceptedSlots[accepted++] = slot
        rows += verdict.row
      }
    } else {
      const rejection: RecordRejection = { slot, channel, status: verdict.status, code: verdict.code, message: verdict.message }
      rejected.push(verdict.fields === undefined ? rejection : { ...rejection, fields: verdict.fields })
    }
  }
  return {
    acceptedSlots: acceptedSlots.slice(0, accepted),
    rows: encoder.encode(rows), // a buffer of its own (never Buffer's shared pool), so it can be transferred
    receiptSlots: receiptSlots.slice(0, receipts),
    receiptRows: encoder.encode(receiptRows),
    rejected,
    formats,
    elapsedMs: performance.now() - started
  }
}

/**
 * Delivery receipts on POST /callbacks/:provider (design.md, "Delivery
 * receipts"): Twilio status callbacks (a signed form, one event) and the
 * SendGrid Event Webhook (a signed JSON array of events). Each request
 * becomes one receipt staging line: the provider, the receipt time and the
 * events as JSON (src/store/receipt-sql.ts expands and stores them).
 */
import { sendgridStatus, twilioStatus } from '../delivery-status.js'
import type { FieldProblem } from '../errors.js'
import type { NativeMeta } from '../native-meta.js'
import { encodeCopyText } from './copy-encoder.js'
import { firstValues } from './form.js'
import { invalidFields, mediaTypeOf, refuse } from './native-reject.js'
import { verifySendgridRequest } from './sendgrid-signature.js'
import { storableJson } from './storable.js'
import { readTwilioForm } from './twilio-inbound.js'
import type { ProcessOptions, ProviderRule, Rejected } from './types.js'

/** One event as the receipt merge reads it. */
export interface ReceiptEvent {
  /** Identity of the event per provider: Twilio `MessageSid:MessageStatus`, SendGrid `sg_event_id`. */
  readonly key: string
  /** The provider's id of the message (Twilio MessageSid; SendGrid sg_message_id up to its first '.'). */
  readonly pmid: string | null
  /** Hermes' own message id from SendGrid's custom_args, which wins over pmid. */
  readonly hmid: string | null
  readonly event: string
  /** The delivery status the event reports, or null (engagement and other events leave it alone). */
  readonly status: string | null
  readonly error: string | null
  /** When the provider says it happened (ISO 8601), or null. */
  readonly at: string | null
  readonly payload: unknown
}

export type ReceiptVerdict = { readonly ok: true, readonly row: string, readonly events: number } | Rejected

/** Most events in one SendGrid batch; more is refused (413), nothing stored. */
export const kMaxEventsPerBatch = 10_000

const kHermesId = /^[1-9]\d{0,17}$/
const kMaxText = 1000

function clip (value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000\uD800-\uDFFF]/g, '\uFFFD')
  return clean.length <= kMaxText ? clean : clean.slice(0, kMaxText)
}

function receiptRow (provider: ProviderRule, receivedAtMs: number, events: readonly ReceiptEvent[]): string {
  // jsonb refuses \u0000 and lone surrogates: they become U+FFFD; JSON.stringify escapes the controls.
  return [provider.name, new Date(receivedAtMs).toISOString(), JSON.stringify(storableJson(events))].map(encodeCopyText).join('\t') + '\n'
}

export function processTwilioReceipt (provider: ProviderRule, body: Uint8Array, meta: NativeMeta, receivedAtMs: number, options: ProcessOptions): ReceiptVerdict {
  const form = readTwilioForm(body, meta, provider.authTokens, options)
  if (!form.ok) return form
  const p = firstValues(form.params)
  const problems: FieldProblem[] = []
  const sid = p.get('MessageSid') ?? p.get('SmsSid') ?? ''
  const status = p.get('MessageStatus') ?? p.get('SmsStatus') ?? ''
  if (sid === '' || sid.length > 255) problems.push({ field: 'MessageSid', reason: 'is required (at most 255 characters)' })
  if (status === '' || status.length > 64) problems.push({ field: 'MessageStatus', reason: 'is required (at most 64 characters)' })
  if (problems.length > 0) return invalidFields(problems)
  const event: ReceiptEvent = {
    key: `${sid}:${status}`,
    pmid: sid,
    hmid: null,
    event: status,
    status: twilioStatus[status] ?? null,
    error: clip(p.get('ErrorCode')),
    at: null,
    payload: Object.fromEntries(p)
  }
  return { ok: true, row: receiptRow(provider, receivedAtMs, [event]), events: 1 }
}

export function processSendgridEvents (provider: ProviderRule, body: Uint8Array, meta: NativeMeta, receivedAtMs: number): ReceiptVerdict {
  const unauthenticated = verifySendgridRequest(provider.publicKeys, meta, body)
  if (unauthenticated !== null) return unauthenticated
  const type = mediaTypeOf(meta.contentType)
  if (type !== 'application/json' && type !== '') return refuse('unsupportedMediaType', `the Event Webhook must be application/json, not ${JSON.stringify(type.slice(0, 100))}`)
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
  } catch (error) {
    return error instanceof TypeError
      ? refuse('invalidUtf8', 'the request body is not valid UTF-8')
      : refuse('malformedJson', 'malformed JSON: the Event Webhook body must be a JSON array of events')
  }
  if (!Array.isArray(value)) return refuse('notAnArray', `the Event Webhook body must be a JSON array of events, not ${value === null ? 'null' : `a ${typeof value === 'object' ? 'JSON object' : typeof value}`}`)
  if (value.length > kMaxEventsPerBatch) return refuse('batchTooLarge', `a batch holds at most ${kMaxEventsPerBatch} events, this one ${value.length}`)
  const problems: FieldProblem[] = []
  const events: ReceiptEvent[] = []
  value.forEach((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      problems.push({ field: `[${i}]`, reason: 'must be an event object' })
      return
    }
    const e = item as Record<string, unknown>
    const id = e['sg_event_id']
    const name = e['event']
    if (typeof id !== 'string' || id === '' || id.length > 255) problems.push({ field: `[${i}].sg_event_id`, reason: 'must be a non-empty string of at most 255 characters' })
    if (typeof name !== 'string' || name === '' || name.length > 64) problems.push({ field: `[${i}].event`, reason: 'must be a non-empty string of at most 64 characters' })
    if (problems.length > 0) return
    const messageId = typeof e['sg_message_id'] === 'string' ? (e['sg_message_id']).split('.', 1)[0]! : ''
    const custom = e['custom_args'] !== null && typeof e['custom_args'] === 'object' ? (e['custom_args'] as Record<string, unknown>)['hermes_message_id'] : undefined
    const hermesId = typeof e['hermes_message_id'] === 'string' ? e['hermes_message_id'] : typeof custom === 'string' ? custom : undefined
    const seconds = e['timestamp']
    const at = typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 && seconds < 253_402_300_800 ? new Date(seconds * 1000).toISOString() : null
    events.push({
      key: id as string,
      pmid: messageId === '' ? null : clip(messageId),
      hmid: hermesId !== undefined && kHermesId.test(hermesId) ? hermesId : null,
      event: name as string,
      status: sendgridStatus[name as string] ?? null,
      error: clip(e['reason'] ?? e['response']),
      at,
      payload: e
    })
  })
  if (problems.length > 0) return invalidFields(problems.slice(0, 50))
  return { ok: true, row: receiptRow(provider, receivedAtMs, events), events: events.length }
}

/**
 * Twilio's inbound Messaging webhook (channel format "twilio"): a signed
 * form, mapped onto Hermes' fields (design.md, "Provider-native webhooks").
 * Unknown parameters are ignored: Twilio adds them without notice.
 */
import type { FieldProblem } from '../errors.js'
import type { NativeMeta } from '../native-meta.js'
import { firstValues, parseForm, type FormParams } from './form.js'
import { encodeMessageRow } from './message-row.js'
import { invalidFields, mediaTypeOf, refuse } from './native-reject.js'
import { calledUrl, isTwilioSignatureShape, verifyTwilioSignature } from './twilio-signature.js'
import type { ProcessOptions, RawWebhook, Rejected, Verdict } from './types.js'
import { validatePayload } from './validate.js'

const kFormType = 'application/x-www-form-urlencoded'
const kMaxMedia = 10
const kNumMedia = /^(?:0|[1-9]\d{0,2})$/

/** Hermes' field names back to Twilio's, so a 422 names what the sender sent. */
function twilioField (field: string): string {
  if (field === 'id') return 'MessageSid'
  if (field === 'from') return 'From'
  if (field === 'to') return 'To'
  if (field === 'body') return 'Body'
  if (field === 'attachments') return 'NumMedia'
  const m = /^attachments\[(\d+)\]$/.exec(field)
  return m === null ? field : `MediaUrl${m[1]!}`
}

/** Reads and verifies a Twilio-signed form (inbound messages and status callbacks alike). */
export function readTwilioForm (body: Uint8Array, meta: NativeMeta, tokens: readonly string[], options: ProcessOptions): { ok: true, params: FormParams } | Rejected {
  const type = mediaTypeOf(meta.contentType)
  if (type !== kFormType) return refuse('unsupportedMediaType', `Twilio webhooks must be ${kFormType}, not ${JSON.stringify(type.slice(0, 100) || '(none)')}`)
  const header = meta.twilioSignature.trim()
  if (header === '') return refuse('missingSignature', 'no signature: X-Twilio-Signature is missing')
  if (!isTwilioSignatureShape(header)) return refuse('malformedSignature', 'X-Twilio-Signature must be a base64 HMAC-SHA1 (28 characters)')
  const form = parseForm(body)
  if (!form.ok) return refuse('malformedForm', form.problem)
  const url = calledUrl(options.publicUrl, meta.host, meta.path, meta.query)
  if (!verifyTwilioSignature(tokens, header, url, form.params)) {
    // The URL is named (never a token): behind a proxy, a wrong publicUrl is the usual cause.
    return refuse('invalidSignature', `X-Twilio-Signature does not match any auth token for ${url}${options.publicUrl == null ? ' (set publicUrl when Hermes is behind a proxy)' : ''}`)
  }
  return { ok: true, params: form.params }
}

export function processTwilioInbound (raw: RawWebhook, meta: NativeMeta, options: ProcessOptions): Verdict {
  const form = readTwilioForm(raw.body, meta, raw.channel.authTokens ?? [], options)
  if (!form.ok) return form
  const p = firstValues(form.params)
  const problems: FieldProblem[] = []
  for (const field of ['From', 'To'] as const) {
    const value = p.get(field)
    if (value !== undefined && /^[a-z][a-z0-9+.-]*:/i.test(value.trim())) {
      problems.push({ field, reason: `must be an E.164 phone number; ${value.slice(0, value.indexOf(':'))}: addresses are not accepted on this channel` })
    }
  }
  const attachments: string[] = []
  const numMedia = p.get('NumMedia') ?? '0'
  const count = kNumMedia.test(numMedia) ? Number(numMedia) : -1
  if (count < 0 || count > kMaxMedia) {
    problems.push({ field: 'NumMedia', reason: `must be an integer from 0 to ${kMaxMedia}` })
  } else {
    for (let i = 0; i < count; i++) {
      const url = p.get(`MediaUrl${i}`)
      if (url === undefined) problems.push({ field: `MediaUrl${i}`, reason: `is required: NumMedia is ${count}` })
      else attachments.push(url)
    }
    for (const name of p.keys()) {
      const m = name.startsWith('MediaUrl') ? /^MediaUrl(\d+)$/.exec(name) : null
      if (m !== null && Number(m[1]) >= count) problems.push({ field: name, reason: `is beyond NumMedia (${count})` })
    }
  }
  const sid = p.get('MessageSid')
  if (sid === undefined || sid === '') problems.push({ field: 'MessageSid', reason: 'is required' })
  const from = p.get('From')
  const to = p.get('To')
  const payload: Record<string, unknown> = {
    id: sid,
    from: problems.some((x) => x.field === 'From') ? '+15550000001' : from,
    to: problems.some((x) => x.field === 'To') ? '+15550000002' : to,
    body: p.get('Body') ?? '',
    attachments
  }
  const validation = validatePayload(raw, sid === undefined || sid === '' ? { ...payload, id: 'missing' } : payload)
  if (!validation.ok) {
    for (const problem of validation.fields ?? []) {
      const field = twilioField(problem.field)
      // The stand-in values above are never reported; a field already refused here is not refused twice.
      if (!problems.some((x) => x.field === field)) problems.push({ field, reason: problem.reason })
    }
  }
  if (problems.length > 0 || !validation.ok) return invalidFields(problems)
  // Twilio sends no time: the receipt time stands in, already in the form a validated timestamp takes.
  const message = { ...validation.message, sentAt: new Date(raw.receivedAtMs).toISOString() }
  return { ok: true, externalId: message.externalId, row: encodeMessageRow(raw, message) }
}

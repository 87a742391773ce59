/**
 * Turns an HTTP answer or a transport failure into a SendResult, the same
 * way for every provider:
 * - 2xx: accepted (each client reads its own id from the answer);
 * - 429: retryable and rate-limited (Retry-After honoured, the bucket pauses);
 * - 408, 5xx, timeouts, refused/reset connections: retryable;
 * - any other status: permanent, with the provider's own words as the reason.
 * A 2xx whose body then broke off still means the provider took the message:
 * sending it again would deliver it twice, so it counts as accepted.
 */
import { STATUS_CODES } from 'node:http'
import { parseRetryAfter } from '../backoff.js'
import type { HttpReply } from './http-transport.js'
import { TransportError } from './transport-error.js'
import type { SendResult } from './types.js'

const kMaxReasonChars = 500

export function isSuccess (status: number): boolean {
  return status >= 200 && status < 300
}

function isRetryableStatus (status: number): boolean {
  return status === 429 || status === 408 || status >= 500
}

export function failureFromReply (reply: HttpReply, now: number = Date.now()): SendResult {
  const retryable = isRetryableStatus(reply.status)
  const retryAfterMs = retryable ? parseRetryAfter(reply.headers['retry-after'], now) : undefined
  const reason = cleanReason(`HTTP ${reply.status} ${STATUS_CODES[reply.status] ?? ''}`.trimEnd() + detailOf(reply.body))
  return {
    ok: false,
    retryable,
    reason,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(reply.status === 429 ? { rateLimited: true } : {})
  }
}

export function failureFromError (error: unknown): SendResult {
  if (error instanceof TransportError) {
    if (error.status !== undefined && isSuccess(error.status)) {
      return acceptedWithoutId(`provider accepted the message (HTTP ${error.status}) but its answer broke off: ${error.message}`)
    }
    if (error.status !== undefined && !isRetryableStatus(error.status)) {
      return { ok: false, retryable: false, reason: cleanReason(`HTTP ${error.status}: ${error.message}`) }
    }
    return { ok: false, retryable: true, reason: cleanReason(error.kind === 'timeout' ? `timeout: ${error.message}` : error.message) }
  }
  return { ok: false, retryable: true, reason: cleanReason(error instanceof Error ? error.message : String(error)) }
}

/** The provider took the message but gave no readable id; the note lands in last_error. */
export function acceptedWithoutId (note: string): SendResult {
  return { ok: true, providerMessageId: null, note: cleanReason(note) }
}

/** Parses a JSON answer body, or undefined. */
export function parseJson (body: string): unknown {
  try { return JSON.parse(body) } catch { return undefined }
}

/** The most useful words of an error body: Twilio's `message` (+ `code`), SendGrid's `errors[].message`, else the text. */
function detailOf (body: string): string {
  const json = parseJson(body) as Record<string, unknown> | undefined
  if (typeof json === 'object' && json !== null) {
    if (typeof json['message'] === 'string') return `: ${json['message']}${json['code'] === undefined ? '' : ` (code ${String(json['code'])})`}`
    if (Array.isArray(json['errors'])) {
      const messages = json['errors'].map((e: unknown) => (e as { message?: unknown } | null)?.message).filter((m) => typeof m === 'string')
      if (messages.length > 0) return `: ${messages.join('; ')}`
    }
    if (typeof json['error'] === 'string') return `: ${json['error']}`
  }
  const text = body.trim()
  return text === '' ? '' : `: ${text}`
}

/** PostgreSQL text cannot hold NUL, and a reason is for people: one line, bounded. */
export function cleanReason (text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim()
  return flat.length <= kMaxReasonChars ? flat : `${flat.slice(0, kMaxReasonChars - 1)}…`
}


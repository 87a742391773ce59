/**
 * The request facts a provider-native format verifies, carried from the
 * HTTP thread to the workers in one latin1 string of a ring record: the
 * path and raw query Twilio signed, Host, Content-Type (multipart boundary),
 * Authorization (basic auth), and the signature headers of Twilio and
 * SendGrid. HTTP header values never contain a line feed, so '\n' separates
 * them. Hermes' own JSON format carries none of this (an empty string).
 */
export interface NativeMeta {
  readonly path: string
  /** The raw query string, without '?', exactly as received ('' when none). */
  readonly query: string
  readonly host: string
  readonly contentType: string
  readonly authorization: string
  readonly twilioSignature: string
  /** X-Twilio-Email-Event-Webhook-Signature (SendGrid's ECDSA signature). */
  readonly emailSignature: string
  /** X-Twilio-Email-Event-Webhook-Timestamp. */
  readonly emailTimestamp: string
}

const kFields = ['path', 'query', 'host', 'contentType', 'authorization', 'twilioSignature', 'emailSignature', 'emailTimestamp'] as const

/** The header names read for each field (the path and query come from the request line). */
export const nativeHeaderNames = {
  host: 'host',
  contentType: 'content-type',
  authorization: 'authorization',
  twilioSignature: 'x-twilio-signature',
  emailSignature: 'x-twilio-email-event-webhook-signature',
  emailTimestamp: 'x-twilio-email-event-webhook-timestamp'
} as const

/** Longest meta string a record carries; more is refused (431) before the body is read. */
export const kMaxMetaChars = 16 * 1024

export function encodeNativeMeta (meta: NativeMeta): string {
  return kFields.map((field) => meta[field].replace(/\n/g, '')).join('\n')
}

export function decodeNativeMeta (text: string): NativeMeta {
  const parts = text.split('\n')
  const meta: Record<string, string> = {}
  kFields.forEach((field, i) => { meta[field] = parts[i] ?? '' })
  return meta as unknown as NativeMeta
}

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

/** A value without line feeds (the separator); header values never hold one, so the search is all it costs. */
function oneLine (value: string): string {
  return value.includes('\n') ? value.replaceAll('\n', '') : value
}

/** Built on the HTTP thread for every provider-native request: one concatenation, no copies of values without a line feed. */
export function encodeNativeMeta (meta: NativeMeta): string {
  return oneLine(meta.path) + '\n' + oneLine(meta.query) + '\n' + oneLine(meta.host) + '\n' + oneLine(meta.contentType) + '\n' +
    oneLine(meta.authorization) + '\n' + oneLine(meta.twilioSignature) + '\n' + oneLine(meta.emailSignature) + '\n' + oneLine(meta.emailTimestamp)
}

export function decodeNativeMeta (text: string): NativeMeta {
  const p = text.split('\n')
  return {
    path: p[0] ?? '',
    query: p[1] ?? '',
    host: p[2] ?? '',
    contentType: p[3] ?? '',
    authorization: p[4] ?? '',
    twilioSignature: p[5] ?? '',
    emailSignature: p[6] ?? '',
    emailTimestamp: p[7] ?? ''
  }
}

/**
 * SendGrid's signed webhooks (Event Webhook, and Inbound Parse with its
 * security policy): X-Twilio-Email-Event-Webhook-Signature is a base64 DER
 * ECDSA P-256/SHA-256 signature over X-Twilio-Email-Event-Webhook-Timestamp
 * followed by the raw body bytes. The bytes are verified as received: a
 * body with a binary attachment is not UTF-8, and a decoded string would
 * no longer be what was signed.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import type { NativeMeta } from '../native-meta.js'
import { refuse } from './native-reject.js'
import type { Rejected } from './types.js'

const keyCache = new WeakMap<readonly string[], readonly KeyObject[]>()
// A DER ECDSA P-256 signature is a SEQUENCE of two INTEGERs: 8 to 72 bytes, 12 to 96 base64 characters.
const kSignatureShape = /^[A-Za-z0-9+/]{12,96}={0,2}$/
const kTimestampShape = /^\d{1,15}$/

export function publicKeyOf (text: string): KeyObject {
  return text.includes('-----BEGIN')
    ? createPublicKey(text)
    : createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' })
}

function keysOf (texts: readonly string[]): readonly KeyObject[] {
  let keys = keyCache.get(texts)
  if (keys === undefined) {
    keys = texts.map(publicKeyOf)
    keyCache.set(texts, keys)
  }
  return keys
}

/** Whether the signature (base64 DER) over timestamp + body verifies under `key`; a malformed signature is simply not valid. */
export function sendgridSignatureValid (key: KeyObject | string, signature: string, timestamp: string, body: Uint8Array): boolean {
  try {
    const k = typeof key === 'string' ? publicKeyOf(key) : key
    return verify('sha256', Buffer.concat([Buffer.from(timestamp, 'utf8'), body]), k, Buffer.from(signature, 'base64'))
  } catch {
    return false
  }
}

/** Verifies SendGrid's signature headers of a request; null when genuine. */
export function verifySendgridRequest (texts: readonly string[], meta: NativeMeta, body: Uint8Array): Rejected | null {
  const signature = meta.emailSignature.trim()
  const timestamp = meta.emailTimestamp.trim()
  if (signature === '' || timestamp === '') {
    return refuse('missingSignature', 'no signature: X-Twilio-Email-Event-Webhook-Signature and X-Twilio-Email-Event-Webhook-Timestamp are required')
  }
  if (!kSignatureShape.test(signature) || Buffer.from(signature, 'base64')[0] !== 0x30) {
    return refuse('malformedSignature', 'X-Twilio-Email-Event-Webhook-Signature must be a base64 DER ECDSA signature')
  }
  if (!kTimestampShape.test(timestamp)) {
    return refuse('malformedSignature', 'X-Twilio-Email-Event-Webhook-Timestamp must be a unix time in seconds')
  }
  for (const key of keysOf(texts)) {
    if (sendgridSignatureValid(key, signature, timestamp, body)) return null
  }
  return refuse('invalidSignature', 'X-Twilio-Email-Event-Webhook-Signature does not verify with any configured public key')
}

import { createHmac, timingSafeEqual } from 'node:crypto'
import { Rejection } from '../errors.js'
import type { ChannelRule, ProcessOptions, RawWebhook, Rejected } from './types.js'

const kSeedPrefix = 'sha256='
const kWhsecPrefix = 'whsec_'
const kUnixSeconds = /^\d{1,15}$/

// Key buffers are derived once per channel rule, not per message: base64
// decoding every secret for every webhook would be wasted work on the hot path.
const keyCache = new WeakMap<ChannelRule, readonly Buffer[]>()

function keysOf (channel: ChannelRule): readonly Buffer[] {
  let keys = keyCache.get(channel)
  if (keys === undefined) {
    keys = channel.secrets.map((secret) => secret.startsWith(kWhsecPrefix)
      ? Buffer.from(secret.slice(kWhsecPrefix.length), 'base64')
      : Buffer.from(secret, 'utf8'))
    keyCache.set(channel, keys)
  }
  return keys
}

function reject (kind: 'missingSignature' | 'invalidSignature' | 'staleTimestamp', message: string): Rejected {
  return { ok: false, status: Rejection[kind].status, code: Rejection[kind].code, message }
}

/** Constant-time for equal lengths; a length mismatch is a plain mismatch (lengths are not secret). */
function sameBytes (candidate: Buffer, expected: Buffer): boolean {
  return candidate.length === expected.length && timingSafeEqual(candidate, expected)
}

function verifySeed (raw: RawWebhook): Rejected | null {
  const header = raw.providerSignature.trim()
  if (!header.startsWith(kSeedPrefix)) {
    return reject('invalidSignature', `x-provider-signature-256 must look like ${kSeedPrefix}<hex>`)
  }
  // Compare the hex text (lower-cased) so malformed hex can never decode to a valid prefix.
  const candidate = Buffer.from(header.slice(kSeedPrefix.length).toLowerCase(), 'latin1')
  for (const key of keysOf(raw.channel)) {
    const expected = Buffer.from(createHmac('sha256', key).update(raw.body).digest('hex'), 'latin1')
    if (sameBytes(candidate, expected)) return null
  }
  return reject('invalidSignature', 'x-provider-signature-256 does not match any active secret')
}

function verifyStandard (raw: RawWebhook, options: ProcessOptions): Rejected | null {
  const id = raw.webhookId
  const timestamp = raw.webhookTimestamp.trim()
  if (id === '' || timestamp === '') {
    return reject('invalidSignature', 'webhook-signature needs the webhook-id and webhook-timestamp headers')
  }
  if (!kUnixSeconds.test(timestamp)) {
    return reject('invalidSignature', 'webhook-timestamp must be a unix time in seconds')
  }
  // Checked before any HMAC work: a replayed request costs nothing.
  const skewMs = options.nowMs - Number(timestamp) * 1000
  if (Math.abs(skewMs) > options.toleranceSeconds * 1000) {
    const skewSeconds = Math.round(skewMs / 1000)
    const where = skewSeconds > 0 ? `${skewSeconds} s in the past` : `${-skewSeconds} s in the future`
    return reject('staleTimestamp', `webhook-timestamp is ${where}, outside the ${options.toleranceSeconds} s tolerance`)
  }

  const candidates: Buffer[] = []
  for (const entry of raw.webhookSignature.split(' ')) {
    // Other versions (e.g. v1a, asymmetric) are skipped, as the Standard Webhooks libraries do.
    if (entry.startsWith('v1,')) candidates.push(Buffer.from(entry.slice(3), 'latin1'))
  }
  if (candidates.length === 0) {
    return reject('invalidSignature', 'webhook-signature carries no v1,<base64> signature')
  }
  const prefix = `${id}.${timestamp}.`
  for (const key of keysOf(raw.channel)) {
    const expected = Buffer.from(createHmac('sha256', key).update(prefix).update(raw.body).digest('base64'), 'latin1')
    for (const candidate of candidates) {
      if (sameBytes(candidate, expected)) return null
    }
  }
  return reject('invalidSignature', 'webhook-signature does not match any active secret')
}

/**
 * Authenticates one webhook; null when it is genuine. Standard Webhooks wins
 * when its signature header is present (even next to a seed-style one).
 * Messages name headers and reasons only, never secrets or expected values.
 */
export function verifySignature (raw: RawWebhook, options: ProcessOptions): Rejected | null {
  if (raw.webhookSignature.trim() !== '') return verifyStandard(raw, options)
  if (raw.providerSignature.trim() !== '') return verifySeed(raw)
  return reject('missingSignature', 'no signature: send x-provider-signature-256 or the Standard Webhooks headers')
}

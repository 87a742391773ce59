import { encodeMessageRow } from './message-row.js'
import { verifySignature } from './signature.js'
import type { ProcessOptions, RawWebhook, Verdict } from './types.js'
import { validateWebhook } from './validate.js'

/**
 * The whole per-message work of the process stage: authenticate, validate,
 * encode one COPY line. Pure and synchronous (it runs in Piscina workers).
 * The signature comes first so an unauthenticated body is never parsed.
 */
export function processWebhook (raw: RawWebhook, options: ProcessOptions): Verdict {
  const unauthenticated = verifySignature(raw, options)
  if (unauthenticated !== null) return unauthenticated
  const validation = validateWebhook(raw)
  if (!validation.ok) return validation
  return { ok: true, externalId: validation.message.externalId, row: encodeMessageRow(raw, validation.message) }
}

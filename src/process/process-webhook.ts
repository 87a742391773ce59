import { encodeStagingRow, encodeTextArray } from './copy-encoder.js'
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
  const { externalId, from, to, body, attachments, sentAt } = validation.message
  const row = encodeStagingRow({
    channel: raw.channel.name,
    external_id: externalId,
    address_kind: raw.channel.addressKind,
    from_address: from,
    to_address: to,
    body,
    sent_at: sentAt,
    received_at: new Date(raw.receivedAtMs).toISOString(),
    attachments: encodeTextArray(attachments)
  })
  return { ok: true, externalId, row }
}

import { encodeStagingRow, encodeTextArray } from './copy-encoder.js'
import type { RawWebhook } from './types.js'
import type { NormalizedMessage } from './validate.js'

/** An attached file as a provider-native format delivers it (bytes, not a URL). */
export interface AttachedFile {
  readonly filename: string | null
  readonly contentType: string
  readonly size: number
  /** SHA-256 of the bytes, hex. */
  readonly sha256: string
  readonly data: Buffer
}

/** One staging line for a validated message; `subject` and `files` only for email formats that carry them. */
export function encodeMessageRow (raw: RawWebhook, message: NormalizedMessage, subject: string | null = null, files: readonly AttachedFile[] = []): string {
  return encodeStagingRow({
    channel: raw.channel.name,
    external_id: message.externalId,
    address_kind: raw.channel.addressKind,
    from_address: message.from,
    to_address: message.to,
    body: message.body,
    sent_at: message.sentAt,
    received_at: new Date(raw.receivedAtMs).toISOString(),
    attachments: encodeTextArray(message.attachments),
    subject,
    files: files.length === 0
      ? null
      : JSON.stringify(files.map((f) => ({ filename: f.filename, type: f.contentType, size: f.size, sha256: f.sha256, data: f.data.toString('base64') })))
  })
}

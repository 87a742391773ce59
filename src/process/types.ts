import type { FieldProblem } from '../errors.js'

export type AddressKind = 'phone' | 'email'

/** What the process stage needs to know of a channel (derived from the config). */
export interface ChannelRule {
  readonly name: string
  readonly addressKind: AddressKind
  readonly maxAttachments: number
  /** Active secrets; any one may match (rotation). `whsec_<base64>` is Standard Webhooks form. */
  readonly secrets: readonly string[]
}

/** One webhook as the front end captured it (header values are '' when absent). */
export interface RawWebhook {
  readonly channel: ChannelRule
  readonly body: Uint8Array
  readonly providerSignature: string // x-provider-signature-256
  readonly webhookId: string // webhook-id
  readonly webhookTimestamp: string // webhook-timestamp
  readonly webhookSignature: string // webhook-signature
  readonly receivedAtMs: number
}

export interface ProcessOptions {
  /** Standard Webhooks timestamp tolerance, seconds (default 300). */
  readonly toleranceSeconds: number
  readonly nowMs: number
}

export interface Accepted {
  readonly ok: true
  readonly externalId: string
  /** One COPY text line (columns of src/staging-row.ts), ending in '\n'. */
  readonly row: string
}

export interface Rejected {
  readonly ok: false
  readonly status: number
  readonly code: string
  readonly message: string
  readonly fields?: FieldProblem[]
}

export type Verdict = Accepted | Rejected

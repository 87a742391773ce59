import type { FieldProblem } from '../errors.js'

export type AddressKind = 'phone' | 'email'

/** What the process stage needs to know of a channel (derived from the config). */
export interface ChannelRule {
  readonly name: string
  readonly addressKind: AddressKind
  readonly maxAttachments: number
  /** Active secrets; any one may match (rotation). `whsec_<base64>` is Standard Webhooks form. */
  readonly secrets: readonly string[]
  /** How the body is read and verified; absent: 'hermes'. */
  readonly format?: 'hermes' | 'twilio' | 'sendgrid-parse'
  /** format twilio: the auth tokens that may sign (the channel's, else its provider's). */
  readonly authTokens?: readonly string[]
  /** format sendgrid-parse: accepted "user:password" pairs and ECDSA P-256 keys (either list may be empty, not both). */
  readonly basicAuth?: readonly string[]
  readonly publicKeys?: readonly string[]
}

/** A provider taking delivery receipts on POST /callbacks/:provider, as the workers verify them. */
export interface ProviderRule {
  readonly name: string
  readonly kind: 'twilio' | 'sendgrid'
  /** twilio: the auth token(s) signing status callbacks. */
  readonly authTokens: readonly string[]
  /** sendgrid: the Event Webhook's verification keys. */
  readonly publicKeys: readonly string[]
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
  /** Top-level publicUrl: the scheme and host Twilio called (else http:// + Host). */
  readonly publicUrl?: string | null
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

/** Everything the process workers verify with, published as one generation (rules-board.ts): a reload swaps it whole. */
export interface ProcessRules {
  readonly channels: readonly ChannelRule[]
  /** Providers taking delivery receipts, in the order callback records name them. */
  readonly providers: readonly ProviderRule[]
  /** Top-level publicUrl (Twilio signs the URL it called), or null. */
  readonly publicUrl: string | null
}

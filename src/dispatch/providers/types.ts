/**
 * What a provider client is given and what it answers. A client never
 * throws for a failed send: every outcome, network errors included, is a
 * SendResult the dispatcher can store.
 */
import type { ChannelType } from '../../config.js'

/** A claimed message, as the provider clients see it. */
export interface OutboundMessage {
  readonly id: string // message.id (a bigint, kept as text)
  readonly externalId: string
  readonly channel: string
  readonly type: ChannelType
  readonly from: string // the sender party's address; a provider's configured `from` overrides it
  readonly to: string
  readonly body: string
  readonly attachments: readonly string[]
  readonly sentAt: string | null // ISO 8601
}

export type SendResult =
  /** Accepted. `providerMessageId` is null when the provider accepted but its answer did not name an id; `note` says why. */
  | { readonly ok: true; readonly providerMessageId: string | null; readonly note?: string }
  | { readonly ok: false; readonly retryable: boolean; readonly reason: string; readonly retryAfterMs?: number; readonly rateLimited?: boolean }

export interface ProviderClient {
  readonly name: string
  send (message: OutboundMessage): Promise<SendResult>
  /** Closes the connection pool; requests still in flight fail (as retryable network errors). */
  close (): void
  /** The concurrency cap changed: size the connection pool to it (requests in flight finish); absent: no pool to size. */
  resize?: (concurrency: number) => void
}

import type { ChannelType } from '../config.js'
import type { ClaimedRow } from './dispatch-sql.js'
import type { OutboundMessage } from './providers/index.js'

/** A message this instance holds a claim on, from its claim until its outcome is stored. */
export interface Claimed extends OutboundMessage {
  /** The claim's fencing token (claimed_until as text); replaced if the message is re-claimed while its outcome waits. */
  lease: string
  /** Attempts stored before this one. */
  readonly attempts: number
  /** performance.now() at claim time: a message held too close to its lease's end is released, not sent. */
  readonly claimedAt: number
  /** When the front end received the webhook (epoch ms), for the end-to-end latency. */
  readonly receivedAtMs: number
  /** Set when stop() gave up waiting for its send: whatever the send answers later is ignored. */
  abandoned: boolean
}

export function claimedFromRow (row: ClaimedRow, channel: { readonly name: string; readonly type: ChannelType }, claimedAt: number): Claimed {
  return {
    id: row.id,
    externalId: row.external_id,
    channel: channel.name,
    type: channel.type,
    from: row.sender,
    to: row.recipient,
    body: row.body,
    attachments: row.attachments,
    sentAt: row.sent_at_ms === null ? null : new Date(row.sent_at_ms).toISOString(),
    lease: row.lease,
    attempts: row.attempts,
    receivedAtMs: row.received_at_ms,
    claimedAt,
    abandoned: false
  }
}

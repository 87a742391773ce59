import type { ProviderConfig } from '../../config.js'
import type { OutboundMessage } from './types.js'

/** A provider sends from the account's own number or address when one is configured; otherwise from the message's sender. */
export function senderFor (config: ProviderConfig, message: OutboundMessage): string {
  return config.from ?? message.from
}

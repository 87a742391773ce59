import type { HermesConfig } from '../config.js'
import type { ChannelRule } from './types.js'

const maxAttachmentsByType = { sms: 10, mms: 10, email: 25 } as const

/**
 * The configured channels as the process stage sees them, in a fixed order:
 * a channel's index in this list is what the ring record carries.
 */
export function channelRules (config: HermesConfig): ChannelRule[] {
  return Object.values(config.channels).map((channel) => ({
    name: channel.name,
    addressKind: channel.type === 'email' ? 'email' : 'phone',
    maxAttachments: maxAttachmentsByType[channel.type],
    secrets: channel.secrets
  }))
}

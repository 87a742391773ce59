import type { HermesConfig } from '../config.js'
import type { ChannelRule, ProcessRules, ProviderRule } from './types.js'

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
    secrets: channel.secrets,
    format: channel.format,
    authTokens: channel.authTokens.length > 0 ? channel.authTokens : tokenOf(config, channel.provider),
    basicAuth: channel.basicAuth,
    publicKeys: channel.publicKeys
  }))
}

function tokenOf (config: HermesConfig, provider: string): string[] {
  const p = config.providers[provider]
  return p?.kind === 'twilio' && p.authToken !== null ? [p.authToken] : []
}

/** The providers that take delivery receipts (kind twilio or sendgrid), in a fixed order: a callback record carries the index. */
export function providerRules (config: HermesConfig): ProviderRule[] {
  const rules: ProviderRule[] = []
  for (const p of Object.values(config.providers)) {
    if (p.kind !== 'twilio' && p.kind !== 'sendgrid') continue
    // Status callbacks are signed with the account's token: the provider's, or during a rotation any
    // token a twilio-format channel of this provider lists.
    const tokens = new Set(p.authToken === null ? [] : [p.authToken])
    for (const ch of Object.values(config.channels)) if (ch.provider === p.name && ch.format === 'twilio') for (const token of ch.authTokens) tokens.add(token)
    rules.push({ name: p.name, kind: p.kind, authTokens: [...tokens], publicKeys: p.eventWebhookPublicKeys })
  }
  return rules
}

/** One generation of what the workers verify with (rules-board.ts). */
export function processRules (config: HermesConfig): ProcessRules {
  return { channels: channelRules(config), providers: providerRules(config), publicUrl: config.publicUrl }
}

/**
 * One client per configured provider, chosen by its kind. A kind's client
 * module is imported only when a provider of that kind is configured: the
 * HTTP clients bring undici, about 0.2 s of CPU to load in the dispatch
 * thread, which a Hermes with only the mock provider never needs.
 */
import type { ProviderConfig, ProviderKind } from '../../config.js'
import { createMockClient } from './mock.js'
import type { ProviderClient } from './types.js'

export type { OutboundMessage, ProviderClient, SendResult } from './types.js'

export type ProviderClientFactory = (config: ProviderConfig) => ProviderClient

const modules: Record<ProviderKind, () => Promise<ProviderClientFactory>> = {
  twilio: async () => (await import('./twilio.js')).createTwilioClient,
  sendgrid: async () => (await import('./sendgrid.js')).createSendgridClient,
  http: async () => (await import('./http.js')).createHttpClient,
  mock: async () => createMockClient
}

/**
 * A factory for clients of the given kinds, their modules imported first. The
 * kinds are those of the configuration Hermes started with: a reload cannot add one.
 */
export async function loadProviderClients (kinds: Iterable<ProviderKind>): Promise<ProviderClientFactory> {
  const loaded = new Map<ProviderKind, ProviderClientFactory>()
  for (const kind of new Set(kinds)) {
    const load = modules[kind] as (() => Promise<ProviderClientFactory>) | undefined
    if (load === undefined) throw new TypeError(`unknown provider kind ${JSON.stringify(kind)}`)
    loaded.set(kind, await load())
  }
  return (config) => {
    const create = loaded.get(config.kind)
    if (create === undefined) throw new TypeError(`provider kind ${JSON.stringify(config.kind)} was not among the kinds loaded`)
    return create(config)
  }
}

/** One client, its kind's module imported first. */
export async function createProviderClient (config: ProviderConfig): Promise<ProviderClient> {
  return (await loadProviderClients([config.kind]))(config)
}

/** The development provider: no network, every send succeeds at once with a fresh id. */
import { randomUUID } from 'node:crypto'
import type { ProviderConfig } from '../../config.js'
import type { ProviderClient, SendResult } from './types.js'

export function createMockClient (config: ProviderConfig): ProviderClient {
  return {
    name: config.name,
    send: async (): Promise<SendResult> => ({ ok: true, providerMessageId: `mock-${randomUUID()}` }),
    close: () => {}
  }
}

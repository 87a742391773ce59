/** One client per configured provider, chosen by its kind. */
import type { ProviderConfig } from '../../config.js'
import { createHttpClient } from './http.js'
import { createMockClient } from './mock.js'
import { createSendgridClient } from './sendgrid.js'
import { createTwilioClient } from './twilio.js'
import type { ProviderClient } from './types.js'

export type { OutboundMessage, ProviderClient, SendResult } from './types.js'

export function createProviderClient (config: ProviderConfig): ProviderClient {
  switch (config.kind) {
    case 'twilio': return createTwilioClient(config)
    case 'sendgrid': return createSendgridClient(config)
    case 'http': return createHttpClient(config)
    case 'mock': return createMockClient(config)
    default: throw new TypeError(`unknown provider kind ${JSON.stringify((config as { kind: unknown }).kind)}`)
  }
}

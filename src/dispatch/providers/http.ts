/**
 * The seed's generic JSON client: POST {baseUrl}/api/messages with
 * { from, to, type, body, attachments, timestamp }, bearer API key. Any 2xx
 * is success; the id is the answer's `id` when it has one. An
 * Idempotency-Key (the message's id) lets a receiver drop the duplicate a
 * retry after a timeout can cause.
 */
import type { ProviderConfig } from '../../config.js'
import { senderFor } from './address.js'
import { acceptedWithoutId, failureFromError, failureFromReply, isSuccess, parseJson } from './classify.js'
import { HttpTransport } from './http-transport.js'
import type { OutboundMessage, ProviderClient, SendResult } from './types.js'

export function createHttpClient (config: ProviderConfig): ProviderClient {
  const transport = new HttpTransport(config.baseUrl!, config.concurrency, config.timeoutMs)
  const authorization = `Bearer ${config.apiKey}`
  return {
    name: config.name,
    async send (message: OutboundMessage): Promise<SendResult> {
      const payload = {
        from: senderFor(config, message),
        to: message.to,
        type: message.type,
        body: message.body,
        attachments: message.attachments,
        timestamp: message.sentAt
      }
      try {
        const reply = await transport.post('/api/messages', {
          authorization,
          'content-type': 'application/json',
          'idempotency-key': `hermes-${message.id}`
        }, JSON.stringify(payload))
        if (!isSuccess(reply.status)) return failureFromReply(reply)
        const id = (parseJson(reply.body) as { id?: unknown } | undefined)?.id
        if ((typeof id === 'string' && id !== '') || typeof id === 'number') return { ok: true, providerMessageId: String(id) }
        return acceptedWithoutId(`provider accepted the message (HTTP ${reply.status}) but its answer had no id`)
      } catch (error) {
        return failureFromError(error)
      }
    },
    close: () => transport.close(),
    resize: (concurrency) => transport.resize(concurrency)
  }
}

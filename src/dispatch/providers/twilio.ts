/**
 * Twilio Messages API: POST /2010-04-01/Accounts/{AccountSid}/Messages.json,
 * form-encoded To, From, Body and one MediaUrl per attachment, HTTP basic
 * auth AccountSid:AuthToken, and a StatusCallback URL when publicUrl is set. Success is 201 with the message resource, whose
 * `sid` is the provider message id.
 */
import type { ProviderConfig } from '../../config.js'
import { senderFor } from './address.js'
import { acceptedWithoutId, failureFromError, failureFromReply, isSuccess, parseJson } from './classify.js'
import { HttpTransport } from './http-transport.js'
import type { OutboundMessage, ProviderClient, SendResult } from './types.js'

export function createTwilioClient (config: ProviderConfig): ProviderClient {
  const transport = new HttpTransport(config.baseUrl!, config.concurrency, config.timeoutMs)
  const path = `/2010-04-01/Accounts/${encodeURIComponent(config.accountSid!)}/Messages.json`
  const authorization = `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`).toString('base64')}`
  return {
    name: config.name,
    async send (message: OutboundMessage): Promise<SendResult> {
      const form = new URLSearchParams()
      form.append('To', message.to)
      form.append('From', senderFor(config, message))
      form.append('Body', message.body)
      for (const url of message.attachments) form.append('MediaUrl', url)
      // With publicUrl set, Twilio reports every status change of the message to POST /callbacks/{provider}.
      if (config.callbackUrl !== null) form.append('StatusCallback', config.callbackUrl)
      try {
        const reply = await transport.post(path, { authorization, 'content-type': 'application/x-www-form-urlencoded' }, form.toString())
        if (!isSuccess(reply.status)) return failureFromReply(reply)
        const sid = (parseJson(reply.body) as { sid?: unknown } | undefined)?.sid
        if (typeof sid === 'string' && sid !== '') return { ok: true, providerMessageId: sid }
        return acceptedWithoutId(`provider accepted the message (HTTP ${reply.status}) but its answer had no readable sid`)
      } catch (error) {
        return failureFromError(error)
      }
    },
    close: () => transport.close(),
    resize: (concurrency) => transport.resize(concurrency)
  }
}

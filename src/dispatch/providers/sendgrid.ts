/**
 * SendGrid v3 mail send: POST /v3/mail/send, JSON, bearer API key. Success
 * is 202 with an empty body; the message id is the X-Message-Id header.
 *
 * A webhook message has no subject and its attachments are URLs (SendGrid
 * wants attachments inline, base64): the subject is the body's first line
 * and the attachment URLs are listed at the end of the text.
 */
import type { ProviderConfig } from '../../config.js'
import { senderFor } from './address.js'
import { acceptedWithoutId, failureFromError, failureFromReply, isSuccess } from './classify.js'
import { HttpTransport } from './http-transport.js'
import type { OutboundMessage, ProviderClient, SendResult } from './types.js'

// RFC 5322 recommends header lines of at most 78 characters.
const kMaxSubjectChars = 78

export function createSendgridClient (config: ProviderConfig): ProviderClient {
  const transport = new HttpTransport(config.baseUrl!, config.concurrency, config.timeoutMs)
  const headers = { authorization: `Bearer ${config.apiKey}`, 'content-type': 'application/json' }
  return {
    name: config.name,
    async send (message: OutboundMessage): Promise<SendResult> {
      try {
        const reply = await transport.post('/v3/mail/send', headers, JSON.stringify(mailOf(config, message)))
        if (!isSuccess(reply.status)) return failureFromReply(reply)
        const id = reply.headers['x-message-id']
        if (typeof id === 'string' && id !== '') return { ok: true, providerMessageId: id }
        return acceptedWithoutId(`provider accepted the message (HTTP ${reply.status}) without an X-Message-Id header`)
      } catch (error) {
        return failureFromError(error)
      }
    },
    close: () => transport.close(),
    resize: (concurrency) => transport.resize(concurrency)
  }
}

function mailOf (config: ProviderConfig, message: OutboundMessage): Record<string, unknown> {
  return {
    personalizations: [{ to: [{ email: message.to }] }],
    from: { email: senderFor(config, message) },
    subject: subjectOf(message.body),
    content: [{ type: 'text/plain', value: textOf(message) }],
    // Echoed in every Event Webhook event: receipts find their message by it even before X-Message-Id is stored.
    custom_args: { hermes_message_id: message.id }
  }
}

function subjectOf (body: string): string {
  const line = body.trim().split(/\r?\n/, 1)[0]!.trim()
  if (line === '') return '(no subject)'
  return line.length <= kMaxSubjectChars ? line : `${line.slice(0, kMaxSubjectChars - 1)}…`
}

/** SendGrid refuses an empty content value, so an empty message becomes one space. */
function textOf (message: OutboundMessage): string {
  const parts = message.body === '' ? [] : [message.body]
  if (message.attachments.length > 0) parts.push(`Attachments:\n${message.attachments.join('\n')}`)
  return parts.length === 0 ? ' ' : parts.join('\n\n')
}

import { createHmac } from 'node:crypto'

/** The seed's header: x-provider-signature-256: sha256=<hex HMAC-SHA256(secret, body)>. */
export function seedSignature (secret: string, body: string | Buffer): Record<string, string> {
  return { 'x-provider-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}` }
}

/** Standard Webhooks headers over `${id}.${timestamp}.${body}`; a whsec_ secret's key is its base64 payload. */
export function standardSignature (secret: string, body: string, id: string, timestampSeconds = Math.floor(Date.now() / 1000)): Record<string, string> {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8')
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${signature}` }
}

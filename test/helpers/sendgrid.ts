import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { EventWebhook } from '@sendgrid/eventwebhook'

export interface SendgridSigner {
  /** The verification key as SendGrid's console shows it: base64 SPKI DER. */
  readonly publicKey: string
  /** The two signature headers over timestamp + the body bytes. */
  headers (body: Buffer | string, timestamp?: number): Record<string, string>
}

/** A fresh ECDSA P-256 key pair signing as SendGrid's signed webhooks do. */
export function sendgridSigner (): SendgridSigner {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return {
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    headers: (body, timestamp = Math.floor(Date.now() / 1000)) => signedHeaders(privateKey, body, timestamp)
  }
}

function signedHeaders (privateKey: KeyObject, body: Buffer | string, timestamp: number): Record<string, string> {
  const signature = sign('sha256', Buffer.concat([Buffer.from(String(timestamp)), Buffer.from(body)]), privateKey).toString('base64')
  return { 'x-twilio-email-event-webhook-signature': signature, 'x-twilio-email-event-webhook-timestamp': String(timestamp) }
}

/** What SendGrid's own library says of a signature (it converts the payload to a string, so only for UTF-8 bodies). */
export function officialVerdict (publicKey: string, body: string, headers: Record<string, string>): boolean {
  const ew = new EventWebhook()
  return ew.verifySignature(ew.convertPublicKeyToECDSA(publicKey), body, headers['x-twilio-email-event-webhook-signature']!, headers['x-twilio-email-event-webhook-timestamp']!)
}

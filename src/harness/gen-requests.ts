/**
 * Writes N pre-signed webhook requests (one per line: id TAB signature TAB body) for
 * the wrk script, so the load generator does no crypto of its own. Workload
 * `repeat`: 10k parties and up to 50k conversations reused, ~600-byte bodies,
 * 10% with attachments; `cold`: every party new. Every request has a unique id.
 */
import { createHmac } from 'node:crypto'
import { parseForm } from '../process/form.js'
import { twilioParamString, twilioSignature } from '../process/twilio-signature.js'
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'

/** The staging-row fields of request i, for the storage scenarios (same workload as the HTTP ones). */
export function workloadMessage (i: number, workload: 'repeat' | 'cold', runId: string): { id: string, from: string, to: string, body: string, attachments: string[] } {
  const a = workload === 'repeat' ? (i * 7919) % 10_000 : 2 * i
  const b = workload === 'repeat' ? (a + 1 + (i % 5)) % 10_000 : 2 * i + 1
  return {
    id: `${runId}-${i}`,
    from: `+1415${String(a).padStart(7, '0')}`,
    to: `+1212${String(b).padStart(7, '0')}`,
    body: `${i} ${filler}`,
    attachments: i % 10 === 0 ? [`https://cdn.example.com/${runId}/${i}.jpg`] : []
  }
}

const filler = 'lorem ipsum dolor sit amet consectetur adipiscing elit '.repeat(10).slice(0, 520)

export async function generateRequests (file: string, count: number, secret: string, workload: 'repeat' | 'cold', runId: string): Promise<void> {
  const out = createWriteStream(file)
  for (let i = 0; i < count; i++) {
    const m = workloadMessage(i, workload, runId)
    const payload: Record<string, unknown> = { id: m.id, from: m.from, to: m.to, body: m.body, timestamp: '2026-11-29T10:00:00Z' }
    if (m.attachments.length > 0) payload['attachments'] = m.attachments
    const body = JSON.stringify(payload)
    const signature = createHmac('sha256', secret).update(body).digest('hex')
    if (!out.write(`${payload['id'] as string}\tsha256=${signature}\t${body}\n`)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

/**
 * Twilio-signed forms for the provider-native scenarios: inbound SMS (the fields of a real one,
 * provider-webhooks.md) to `url`, or status callbacks (MessageStatus=delivered) for the message
 * sids `SM{runId}{i}`. The id column is the MessageSid.
 */
export async function generateTwilioRequests (file: string, count: number, token: string, url: string, kind: 'inbound' | 'status', workload: 'repeat' | 'cold', runId: string): Promise<void> {
  const out = createWriteStream(file)
  for (let i = 0; i < count; i++) {
    const m = workloadMessage(i, workload, runId)
    const sid = twilioSid(runId, i)
    const params: Record<string, string> = kind === 'inbound'
      ? { ToCountry: 'US', ToState: 'NY', SmsMessageSid: sid, NumMedia: '0', ToCity: '', FromZip: '', SmsSid: sid, FromState: 'CA', SmsStatus: 'received', FromCity: '', Body: m.body, FromCountry: 'US', To: m.to, MessagingServiceSid: 'MG0000', ToZip: '', NumSegments: '1', MessageSid: sid, AccountSid: 'ACbench', From: m.from, ApiVersion: '2010-04-01' }
      : { SmsSid: sid, SmsStatus: 'delivered', MessageStatus: 'delivered', To: m.to, MessagingServiceSid: 'MG0000', MessageSid: sid, AccountSid: 'ACbench', From: m.from, ApiVersion: '2010-04-01' }
    const body = new URLSearchParams(params).toString()
    const form = parseForm(Buffer.from(body))
    if (!form.ok) throw new Error(form.problem)
    const signature = twilioSignature(token, url, twilioParamString(form.params))
    if (!out.write(`${sid}\t${signature}\t${body}\n`)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

export function twilioSid (runId: string, i: number): string {
  return `SM${runId}${String(i).padStart(8, '0')}`
}

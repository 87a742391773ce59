// Generated hostile bodies, at the worker's function and over HTTP: never a throw, never a 5xx,
// never a row from an invalid message, and good traffic beside them is untouched.
import t from 'tap'
import { createHmac, generateKeyPairSync, sign as sign2 } from 'node:crypto'
import { processWebhook } from '../src/process/process-webhook.js'
import type { ChannelRule, ProviderRule } from '../src/process/types.js'
import { parseForm } from '../src/process/form.js'
import { twilioParamString, twilioSignature } from '../src/process/twilio-signature.js'
import { processTwilioInbound } from '../src/process/twilio-inbound.js'
import { processSendgridEvents } from '../src/process/receipts.js'
import { processSendgridParse } from '../src/process/sendgrid-parse.js'
import type { NativeMeta } from '../src/native-meta.js'
import { send, smsPayload, startTestHermes, type TestHermes } from './helpers/hermes.js'

// A small seeded PRNG (mulberry32) so a failure can be replayed.
function prng (seed: number): () => number {
  return () => {
    seed |= 0; seed = seed + 0x6D2B79F5 | 0
    let x = Math.imul(seed ^ seed >>> 15, 1 | seed)
    x = x + Math.imul(x ^ x >>> 7, 61 | x) ^ x
    return ((x ^ x >>> 14) >>> 0) / 4294967296
  }
}

const edgeStrings = ['', '\u0000', 'a\u0000b', '\ud800', '\udfff', '💥'.repeat(100), 'é', '\u202e', '\\', '"', '\n\t\r', 'x'.repeat(70_000),
  '+14155552671', '+1', '+999999999999999999', 'USER@EXAMPLE.COM', 'a@b', '@@', 'https://x.example/a', 'ftp://x/y', 's3://b/k', 'javascript:alert(1)',
  '2026-11-29T10:00:00Z', '2026-02-30T10:00:00Z', 'not a date', '__proto__', 'constructor',
  // issue 23: schemes in any case, NFC/NFD and internationalized email addresses, numeric id spellings
  'HTTPS://X.EXAMPLE/A', 'S3://bucket/Key', 'hTtP://x.example/\u00e9', 'jos\u00e9@example.com', 'jose\u0301@example.com',
  'a@b\u00fccher.example', 'a@xn--bcher-kva.example', 'a@xn--.example', 'a@\uff45xample.com', '1500', '1.5e3']

function value (rand: () => number, depth: number): unknown {
  const r = rand()
  if (depth > 3 || r < 0.35) return edgeStrings[Math.floor(rand() * edgeStrings.length)]
  if (r < 0.45) return Math.floor(rand() * 2 ** 53) * (rand() < 0.5 ? -1 : 1)
  if (r < 0.5) return rand() < 0.5 ? null : rand() < 0.5
  if (r < 0.7) return Array.from({ length: Math.floor(rand() * 12) }, () => value(rand, depth + 1))
  return Object.fromEntries(Array.from({ length: Math.floor(rand() * 6) }, () => [edgeStrings[Math.floor(rand() * edgeStrings.length)]!, value(rand, depth + 1)]))
}

/** The two fixed bodies among the generated ones: nesting 50,000 deep, and duplicate keys with __proto__. */
const deepBody = Buffer.from('['.repeat(50_000) + ']'.repeat(50_000))
const duplicateKeysBody = Buffer.from('{"id":"dup","id":"dup2","from":"+14155550001","to":"+14155550002","__proto__":{"polluted":true}}')

/** One generated body: mostly valid-looking payloads with one field broken, some raw garbage. */
function body (rand: () => number): Buffer {
  const r = rand()
  if (r < 0.1) return Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)))
  if (r < 0.15) return deepBody
  if (r < 0.2) return duplicateKeysBody
  const payload: Record<string, unknown> = { id: `fuzz-${Math.floor(rand() * 1e9)}`, from: '+14155550001', to: '+14155550002', body: 'hi' }
  if (r < 0.25) payload['id'] = null // a null id falls back to xillio_id
  const fields = ['id', 'from', 'to', 'body', 'attachments', 'timestamp', 'xillio_id']
  for (let i = 0; i < 1 + Math.floor(rand() * 3); i++) payload[fields[Math.floor(rand() * fields.length)]!] = value(rand, 0)
  return Buffer.from(JSON.stringify(payload))
}

const rule: ChannelRule = { name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets: ['test-secret'] }

/**
 * One Hermes for the tests over HTTP (they run in turn, and each reads back only its own rows):
 * Hermes' own channels and a Twilio-format one, bodies up to 200 kB, a ring that holds a whole burst.
 */
let h: TestHermes
t.before(async () => {
  h = await startTestHermes(t, {
    maxBodyBytes: 200_000,
    buffer: { maxMessages: 100_000, maxBytes: 32 * 2 ** 20 },
    channels: {
      sms: { provider: 'mock', secrets: ['test-secret'] },
      mms: { provider: 'mock', secrets: ['test-secret'] },
      email: { provider: 'mock', secrets: ['test-secret'] },
      twilio: { type: 'sms', provider: 'mock', format: 'twilio', authTokens: ['tok'] }
    },
    providers: { mock: { kind: 'mock' } }
  })
})
const sign = (b: Buffer): string => `sha256=${createHmac('sha256', 'test-secret').update(b).digest('hex')}`

t.test('5000 generated bodies through the worker function: a verdict for each, never an exception', async (t) => {
  const rand = prng(20261129)
  const statuses = new Map<number, number>()
  // The worker function is pure: each of the two fixed bodies (a tenth of the cases, the deep one
  // tens of ms each) is verified once and its verdict counted for every case that drew it.
  const fixed = new Map<Buffer, ReturnType<typeof processWebhook>>()
  for (let i = 0; i < 5000; i++) {
    const b = body(rand)
    const verdict = fixed.get(b) ?? processWebhook({ channel: rule, body: b, providerSignature: sign(b), webhookId: '', webhookTimestamp: '', webhookSignature: '', receivedAtMs: Date.now() }, { toleranceSeconds: 300, nowMs: Date.now() })
    if (b === deepBody || b === duplicateKeysBody) fixed.set(b, verdict)
    const status = verdict.ok ? 202 : verdict.status
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (!verdict.ok && verdict.status >= 500) t.fail(`5xx for case ${i}`)
    if (verdict.ok && (verdict.row.includes('\u0000') || !verdict.row.endsWith('\n') || verdict.row.slice(0, -1).includes('\n'))) t.fail(`case ${i}: an accepted row is not one clean COPY line`)
  }
  t.ok(!Object.prototype.hasOwnProperty.call({}, 'polluted') && ({} as Record<string, unknown>)['polluted'] === undefined, 'Object.prototype is untouched')
  t.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(422) ?? 0) > 0 && (statuses.get(202) ?? 0) > 0, `a mix of outcomes: ${JSON.stringify(Object.fromEntries(statuses))}`)
})

t.test('300 generated bodies over HTTP beside valid traffic: 202/400/422 only, and only the 202s are stored', async (t) => {
  const rand = prng(42)
  const cases = Array.from({ length: 300 }, () => body(rand))
  const good = Array.from({ length: 50 }, () => smsPayload())
  const [fuzzed, valid] = await Promise.all([
    Promise.all(cases.map(async (b) => await h.post('sms', b, { 'x-provider-signature-256': sign(b) }))),
    Promise.all(good.map(async (p) => await h.postSigned('sms', p)))
  ])
  t.ok(fuzzed.every((a) => [202, 400, 413, 422].includes(a.status)), `statuses: ${[...new Set(fuzzed.map((a) => a.status))].join(', ')}`)
  t.ok(fuzzed.every((a) => a.status === 202 || typeof a.json?.error?.code === 'string'), 'every refusal has a JSON error code')
  t.same(valid.map((a) => a.status), Array(50).fill(202), 'valid traffic beside it is accepted')
  const accepted = fuzzed.filter((a) => a.status === 202).length
  const stored = await h.db.query("SELECT count(*)::int AS n FROM message WHERE external_id NOT LIKE 't-%'")
  t.ok(stored.rows[0]!['n'] <= accepted, `${stored.rows[0]!['n']} fuzz rows stored for ${accepted} accepted (duplicates share a row)`)
  const good2 = await h.db.query("SELECT count(*)::int AS n FROM message WHERE external_id LIKE 't-%'")
  t.equal(good2.rows[0]!['n'], 50)
})

// ---------------------------------------------------------------------------
// The provider-native formats: Twilio forms, SendGrid Event Webhook batches, Inbound Parse multipart.

const twilioRule: ChannelRule = { name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets: [], format: 'twilio', authTokens: ['tok'] }
const parseRule: ChannelRule = { name: 'email', addressKind: 'email', maxAttachments: 25, secrets: [], format: 'sendgrid-parse', basicAuth: ['u:p'] }
const formPieces = ['MessageSid=SM1', 'From=%2B14155550001', 'To=%2B14155550002', 'Body=hi+there', 'NumMedia=1', 'NumMedia=11', 'MediaUrl0=https%3A%2F%2Fx.example%2F0',
  'MediaUrl3=ftp%3A%2F%2Fx', 'From=whatsapp%3A%2B1415', '%', '%G1=x', 'Body=%FF', 'Body=%C3%A9%F0%9F%92%A5', '=', '&&', 'To=', 'Body=' + '%00', 'MessageSid=' + 'x'.repeat(300)]

function twilioMeta (signature = ''): NativeMeta {
  return { path: '/webhooks/sms', query: '', host: 'h', contentType: 'application/x-www-form-urlencoded', authorization: 'Basic dTpw', twilioSignature: signature, emailSignature: '', emailTimestamp: '' }
}

function formCase (rand: () => number): Buffer {
  if (rand() < 0.1) return Buffer.from(Array.from({ length: Math.floor(rand() * 100) }, () => Math.floor(rand() * 256)))
  return Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => formPieces[Math.floor(rand() * formPieces.length)]).join('&'))
}

t.test('2000 generated Twilio forms, signed, through the worker function: 400/415/422 or a clean row, never an exception', async (t) => {
  const rand = prng(19)
  const statuses = new Map<number, number>()
  for (let i = 0; i < 2000; i++) {
    const b = formCase(rand)
    const form = parseForm(b)
    const signature = form.ok ? twilioSignature('tok', 'http://h/webhooks/sms', twilioParamString(form.params)) : 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='
    const verdict = processTwilioInbound({ channel: twilioRule, body: b, providerSignature: '', webhookId: '', webhookTimestamp: '', webhookSignature: '', receivedAtMs: Date.now() }, twilioMeta(signature), { toleranceSeconds: 300, nowMs: Date.now(), publicUrl: null })
    const status = verdict.ok ? 200 : verdict.status
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (!verdict.ok && verdict.status >= 500) t.fail(`5xx for form case ${i}`)
    if (verdict.ok && (verdict.row.includes('\u0000') || verdict.row.slice(0, -1).includes('\n'))) t.fail(`form case ${i}: not one clean COPY line`)
  }
  t.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(422) ?? 0) > 0 && (statuses.get(200) ?? 0) > 0, `a mix of outcomes: ${JSON.stringify(Object.fromEntries(statuses))}`)
})

t.test('600 generated Event Webhook bodies, signed: 400/413/422 or one receipt row, never an exception', async (t) => {
  const rand = prng(7)
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const provider: ProviderRule = { name: 'sendgrid', kind: 'sendgrid', authTokens: [], publicKeys: [publicKey.export({ type: 'spki', format: 'der' }).toString('base64')] }
  const statuses = new Map<number, number>()
  for (let i = 0; i < 600; i++) {
    const r = rand()
    const b = r < 0.3
      ? body(rand)
      : Buffer.from(JSON.stringify(Array.from({ length: Math.floor(rand() * 5) }, () => rand() < 0.7
        ? { event: edgeStrings[Math.floor(rand() * edgeStrings.length)], sg_event_id: `e${i}`, sg_message_id: value(rand, 2), timestamp: value(rand, 3), custom_args: value(rand, 2) }
        : value(rand, 1))))
    const signature = sign2('sha256', Buffer.concat([Buffer.from('1700000000'), b]), privateKey).toString('base64')
    const meta = { ...twilioMeta(), contentType: 'application/json', emailSignature: signature, emailTimestamp: '1700000000' }
    const verdict = processSendgridEvents(provider, b, meta, Date.now())
    const status = verdict.ok ? 200 : verdict.status
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (!verdict.ok && verdict.status >= 500) t.fail(`5xx for event case ${i}`)
    if (verdict.ok && (verdict.row.includes('\u0000') || verdict.row.slice(0, -1).includes('\n'))) t.fail(`event case ${i}: not one clean COPY line`)
  }
  t.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(422) ?? 0) > 0 && (statuses.get(200) ?? 0) > 0, `a mix of outcomes: ${JSON.stringify(Object.fromEntries(statuses))}`)
})

t.test('500 mutated Inbound Parse bodies: 400/401/415/422 or a clean row, never an exception', async (t) => {
  const rand = prng(11)
  const form = new FormData()
  form.append('from', 'Alice <alice@example.org>')
  form.append('to', 'bob@example.com')
  form.append('subject', 'hi')
  form.append('text', 'body')
  form.append('attachment1', new Blob([Buffer.from([0, 255, 1, 254])], { type: 'image/png' }), 'a.png')
  const request = new Request('http://x/', { method: 'POST', body: form })
  const valid = Buffer.from(await request.arrayBuffer())
  const contentType = request.headers.get('content-type')!
  const statuses = new Map<number, number>()
  for (let i = 0; i < 500; i++) {
    const b = Buffer.from(valid)
    const mutations = Math.floor(rand() * 4)
    for (let m = 0; m < mutations; m++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256)
    const cut = rand() < 0.2 ? b.subarray(0, Math.floor(rand() * b.length)) : b
    const meta = { ...twilioMeta(), contentType: rand() < 0.1 ? 'multipart/form-data' : contentType }
    const verdict = await processSendgridParse({ channel: parseRule, body: cut, providerSignature: '', webhookId: '', webhookTimestamp: '', webhookSignature: '', receivedAtMs: Date.now() }, meta)
    const status = verdict.ok ? 200 : verdict.status
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (!verdict.ok && verdict.status >= 500) t.fail(`5xx for multipart case ${i}: ${verdict.message}`)
    if (verdict.ok && (verdict.row.includes('\u0000') || verdict.row.slice(0, -1).includes('\n'))) t.fail(`multipart case ${i}: not one clean COPY line`)
  }
  t.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(200) ?? 0) > 0, `a mix of outcomes: ${JSON.stringify(Object.fromEntries(statuses))}`)
})

t.test('generated Twilio forms over HTTP beside valid JSON traffic: 4xx or 200 only, valid traffic untouched', async (t) => {
  const rand = prng(5)
  const cases = Array.from({ length: 100 }, () => formCase(rand))
  const good = Array.from({ length: 50 }, () => smsPayload())
  const [fuzzed, valid] = await Promise.all([
    Promise.all(cases.map(async (b) => {
      const form = parseForm(b)
      const url = `${h.base}/webhooks/twilio`
      const signature = form.ok ? twilioSignature('tok', url, twilioParamString(form.params)) : 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='
      return await send('POST', url, b, { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature })
    })),
    Promise.all(good.map(async (p) => await h.postSigned('sms', p)))
  ])
  t.ok(fuzzed.every((a) => [200, 400, 401, 422].includes(a.status)), `statuses: ${[...new Set(fuzzed.map((a) => a.status))].join(', ')}`)
  t.ok(fuzzed.every((a) => a.status === 200 || typeof a.json?.error?.code === 'string'), 'every refusal has a JSON error code')
  t.same(valid.map((a) => a.status), Array(50).fill(202), 'valid traffic beside it is accepted')
})

t.test('the input cases of issue 23 over HTTP: stored normalized, one party per mailbox, one message per id', async (t) => {
  const signed = (b: string): Record<string, string> => ({ 'x-provider-signature-256': sign(Buffer.from(b)) })
  const post = async (channel: string, payload: Record<string, unknown>): Promise<number> => {
    const b = JSON.stringify(payload)
    return (await h.post(channel, b, signed(b))).status
  }
  const tag = `i23-${process.pid}`
  t.equal(await post('mms', { id: `${tag}-url`, from: '+14155550001', to: '+14155550002', attachments: ['HTTPS://A.EXAMPLE/X.PNG', 'S3://bucket/Key'] }), 202, 'upper-case schemes are accepted')
  const urls = await h.db.query("SELECT a.url FROM attachment a JOIN message m ON m.id = a.message_id WHERE m.external_id = $1 ORDER BY a.position", [`${tag}-url`])
  t.same(urls.rows.map((r) => r['url']), ['https://A.EXAMPLE/X.PNG', 's3://bucket/Key'], 'and stored with the scheme lower-cased')

  const spellings = ['jos\u00e9@b\u00fccher.example', 'jose\u0301@XN--BCHER-KVA.example', 'JOS\u00c9@b\u00fccher.example']
  for (const [i, from] of spellings.entries()) t.equal(await post('email', { id: `${tag}-mail-${i}`, from, to: 'desk@example.com', body: 'hi' }), 202, JSON.stringify(from))
  const parties = await h.db.query("SELECT DISTINCT m.sender_id FROM message m WHERE m.external_id LIKE $1", [`${tag}-mail-%`])
  t.equal(parties.rows.length, 1, 'three spellings of one mailbox are one party')

  t.equal(await post('sms', { id: null, xillio_id: `${tag}-x`, from: '+14155550001', to: '+14155550002' }), 202)
  const x = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', [`${tag}-x`])
  t.equal(x.rows[0]!['n'], 1, 'a null id falls back to xillio_id')

  for (const raw of ['{"id":991500', '{"id":9.915e5', '{"id":"991500"']) {
    const b = `${raw},"from":"+14155550001","to":"+14155550002"}`
    t.equal((await h.post('sms', b, signed(b))).status, 202, raw)
  }
  const n = await h.db.query("SELECT count(*)::int AS n FROM message m JOIN channel c ON c.id = m.channel_id WHERE c.name = 'sms' AND m.external_id = '991500'")
  t.equal(n.rows[0]!['n'], 1, 'ids 991500, 9.915e5 and "991500" are one message')
})

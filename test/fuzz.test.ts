// Generated hostile bodies, at the worker's function and over HTTP: never a throw, never a 5xx,
// never a row from an invalid message, and good traffic beside them is untouched.
import t from 'tap'
import { createHmac } from 'node:crypto'
import { processWebhook } from '../src/process/process-webhook.js'
import type { ChannelRule } from '../src/process/types.js'
import { smsPayload, startTestHermes } from './helpers/hermes.js'

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

/** One generated body: mostly valid-looking payloads with one field broken, some raw garbage. */
function body (rand: () => number): Buffer {
  const r = rand()
  if (r < 0.1) return Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)))
  if (r < 0.15) return Buffer.from('['.repeat(50_000) + ']'.repeat(50_000))
  if (r < 0.2) return Buffer.from('{"id":"dup","id":"dup2","from":"+14155550001","to":"+14155550002","__proto__":{"polluted":true}}')
  const payload: Record<string, unknown> = { id: `fuzz-${Math.floor(rand() * 1e9)}`, from: '+14155550001', to: '+14155550002', body: 'hi' }
  if (r < 0.25) payload['id'] = null // a null id falls back to xillio_id
  const fields = ['id', 'from', 'to', 'body', 'attachments', 'timestamp', 'xillio_id']
  for (let i = 0; i < 1 + Math.floor(rand() * 3); i++) payload[fields[Math.floor(rand() * fields.length)]!] = value(rand, 0)
  return Buffer.from(JSON.stringify(payload))
}

const rule: ChannelRule = { name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets: ['test-secret'] }
const sign = (b: Buffer): string => `sha256=${createHmac('sha256', 'test-secret').update(b).digest('hex')}`

t.test('5000 generated bodies through the worker function: a verdict for each, never an exception', async (t) => {
  const rand = prng(20261129)
  const statuses = new Map<number, number>()
  for (let i = 0; i < 5000; i++) {
    const b = body(rand)
    const verdict = processWebhook({ channel: rule, body: b, providerSignature: sign(b), webhookId: '', webhookTimestamp: '', webhookSignature: '', receivedAtMs: Date.now() }, { toleranceSeconds: 300, nowMs: Date.now() })
    const status = verdict.ok ? 202 : verdict.status
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (!verdict.ok && verdict.status >= 500) t.fail(`5xx for case ${i}`)
    if (verdict.ok && (verdict.row.includes('\u0000') || !verdict.row.endsWith('\n') || verdict.row.slice(0, -1).includes('\n'))) t.fail(`case ${i}: an accepted row is not one clean COPY line`)
  }
  t.ok(!Object.prototype.hasOwnProperty.call({}, 'polluted') && ({} as Record<string, unknown>)['polluted'] === undefined, 'Object.prototype is untouched')
  t.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(422) ?? 0) > 0 && (statuses.get(202) ?? 0) > 0, `a mix of outcomes: ${JSON.stringify(Object.fromEntries(statuses))}`)
})

t.test('300 generated bodies over HTTP beside valid traffic: 202/400/422 only, and only the 202s are stored', async (t) => {
  const h = await startTestHermes(t, { maxBodyBytes: 200_000, buffer: { maxMessages: 100_000, maxBytes: 32 * 2 ** 20 } })
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

t.test('the input cases of issue 23 over HTTP: stored normalized, one party per mailbox, one message per id', async (t) => {
  const h = await startTestHermes(t)
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

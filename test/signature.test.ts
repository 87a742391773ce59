import { createHmac } from 'node:crypto'
import t from 'tap'
import { Rejection } from '../src/errors.js'
import { verifySignature } from '../src/process/signature.js'
import type { ChannelRule, RawWebhook } from '../src/process/types.js'

const nowMs = Date.UTC(2026, 10, 29, 10, 0, 0)
const nowSeconds = String(nowMs / 1000)
const options = { toleranceSeconds: 300, nowMs }
const body = Buffer.from('{"from":"+14155552671","to":"+12125551234","body":"hi"}')
// A Standard Webhooks secret as the libraries generate it: whsec_ + base64 of random bytes.
const whsecKey = Buffer.from('0123456789abcdef0123456789abcdef', 'hex')
const whsec = `whsec_${whsecKey.toString('base64')}`

function channel (secrets: string[]): ChannelRule {
  return { name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets }
}

function raw (fields: Partial<RawWebhook>): RawWebhook {
  return {
    channel: channel(['current-secret']),
    body,
    providerSignature: '',
    webhookId: '',
    webhookTimestamp: '',
    webhookSignature: '',
    receivedAtMs: nowMs,
    ...fields
  }
}

function seedSignature (key: string | Buffer, content: Uint8Array = body): string {
  return 'sha256=' + createHmac('sha256', key).update(content).digest('hex')
}

function standardSignature (key: string | Buffer, id: string, timestamp: string, content: Uint8Array = body): string {
  return 'v1,' + createHmac('sha256', key).update(`${id}.${timestamp}.`).update(content).digest('base64')
}

function standard (key: string | Buffer, fields: Partial<RawWebhook> = {}): RawWebhook {
  const id = fields.webhookId ?? 'msg_1'
  const timestamp = fields.webhookTimestamp ?? nowSeconds
  return raw({ webhookId: id, webhookTimestamp: timestamp, webhookSignature: standardSignature(key, id, timestamp), ...fields })
}

t.test('a seed-style signature made with the channel secret is accepted', async (t) => {
  t.equal(verifySignature(raw({ providerSignature: seedSignature('current-secret') }), options), null)
})

t.test('a seed-style signature in upper-case hex is accepted', async (t) => {
  const upper = 'sha256=' + seedSignature('current-secret').slice(7).toUpperCase()
  t.equal(verifySignature(raw({ providerSignature: upper }), options), null)
})

t.test('a seed-style signature made with another secret is invalid', async (t) => {
  const verdict = verifySignature(raw({ providerSignature: seedSignature('other-secret') }), options)
  t.match(verdict, { ok: false, ...Rejection.invalidSignature })
})

t.test('a seed-style signature over a different body is invalid', async (t) => {
  const verdict = verifySignature(raw({ providerSignature: seedSignature('current-secret', Buffer.from('{}')) }), options)
  t.match(verdict, Rejection.invalidSignature)
})

t.test('a seed-style header without the sha256= prefix is invalid', async (t) => {
  const bare = seedSignature('current-secret').slice(7)
  t.match(verifySignature(raw({ providerSignature: bare }), options), Rejection.invalidSignature)
})

t.test('a truncated or over-long signature is a mismatch, not a crash', async (t) => {
  const good = seedSignature('current-secret')
  t.match(verifySignature(raw({ providerSignature: good.slice(0, -2) }), options), Rejection.invalidSignature)
  t.match(verifySignature(raw({ providerSignature: good + '00' }), options), Rejection.invalidSignature)
  t.match(verifySignature(raw({ providerSignature: 'sha256=' }), options), Rejection.invalidSignature)
  const sw = standard('current-secret')
  t.match(verifySignature({ ...sw, webhookSignature: sw.webhookSignature.slice(0, -4) }, options), Rejection.invalidSignature)
  t.match(verifySignature({ ...sw, webhookSignature: 'v1,' }, options), Rejection.invalidSignature)
})

t.test('the second secret matches while secrets rotate, in both schemes', async (t) => {
  const rotating = channel(['new-secret', 'old-secret'])
  t.equal(verifySignature(raw({ channel: rotating, providerSignature: seedSignature('old-secret') }), options), null)
  t.equal(verifySignature({ ...standard('old-secret'), channel: rotating }, options), null)
  t.equal(verifySignature({ ...standard('new-secret'), channel: rotating }, options), null)
})

t.test('a Standard Webhooks signature made with the channel secret is accepted', async (t) => {
  t.equal(verifySignature(standard('current-secret'), options), null)
})

t.test('a whsec_ secret signs with its base64-decoded bytes', async (t) => {
  const ch = channel([whsec])
  t.equal(verifySignature({ ...standard(whsecKey), channel: ch }, options), null)
  t.equal(verifySignature(raw({ channel: ch, providerSignature: seedSignature(whsecKey) }), options), null)
  // Signing with the literal text of a whsec_ secret is the classic integration mistake; it must not pass.
  t.match(verifySignature({ ...standard(whsec), channel: ch }, options), Rejection.invalidSignature)
})

t.test('any other secret signs with its UTF-8 bytes', async (t) => {
  const ch = channel(['pässwörd-🔑'])
  t.equal(verifySignature({ ...standard(Buffer.from('pässwörd-🔑', 'utf8')), channel: ch }, options), null)
  t.match(verifySignature({ ...standard(Buffer.from('pässwörd-🔑', 'latin1')), channel: ch }, options), Rejection.invalidSignature)
})

t.test('any valid entry among several space-separated signatures is enough', async (t) => {
  const good = standard('current-secret')
  const wrong = standardSignature('other-secret', 'msg_1', nowSeconds)
  t.equal(verifySignature({ ...good, webhookSignature: `${wrong} ${good.webhookSignature}` }, options), null)
  t.equal(verifySignature({ ...good, webhookSignature: `v1a,xyz ${good.webhookSignature} ${wrong}` }, options), null)
  t.match(verifySignature({ ...good, webhookSignature: `${wrong} ${wrong}` }, options), Rejection.invalidSignature)
})

t.test('signatures of versions other than v1 are ignored', async (t) => {
  const good = standard('current-secret')
  const v1a = good.webhookSignature.replace('v1,', 'v1a,')
  const verdict = verifySignature({ ...good, webhookSignature: v1a }, options)
  t.match(verdict, { ...Rejection.invalidSignature, message: /no v1,<base64> signature/ })
})

t.test('the signed content binds the webhook id and timestamp', async (t) => {
  const good = standard('current-secret')
  t.match(verifySignature({ ...good, webhookId: 'msg_2' }, options), Rejection.invalidSignature)
  const earlier = String(Number(nowSeconds) - 1)
  t.match(verifySignature({ ...good, webhookTimestamp: earlier }, options), Rejection.invalidSignature)
})

t.test('a timestamp older than the tolerance is stale', async (t) => {
  const verdict = verifySignature(standard('current-secret', { webhookTimestamp: String(Number(nowSeconds) - 301) }), options)
  t.match(verdict, { ok: false, ...Rejection.staleTimestamp, message: /301 s in the past, outside the 300 s tolerance/ })
})

t.test('a timestamp further in the future than the tolerance is stale', async (t) => {
  const verdict = verifySignature(standard('current-secret', { webhookTimestamp: String(Number(nowSeconds) + 301) }), options)
  t.match(verdict, { ...Rejection.staleTimestamp, message: /301 s in the future/ })
})

t.test('timestamps exactly at the tolerance edge are accepted', async (t) => {
  t.equal(verifySignature(standard('current-secret', { webhookTimestamp: String(Number(nowSeconds) - 300) }), options), null)
  t.equal(verifySignature(standard('current-secret', { webhookTimestamp: String(Number(nowSeconds) + 300) }), options), null)
})

t.test('the tolerance comes from the options', async (t) => {
  const old = standard('current-secret', { webhookTimestamp: String(Number(nowSeconds) - 3600) })
  t.equal(verifySignature(old, { toleranceSeconds: 7200, nowMs }), null)
  t.match(verifySignature(old, { toleranceSeconds: 60, nowMs }), Rejection.staleTimestamp)
})

t.test('a timestamp that is not unix seconds is an invalid signature', async (t) => {
  for (const bad of ['soon', '1.5e9', '-1', '2026-11-29T10:00:00Z', '0x10']) {
    t.match(verifySignature(standard('current-secret', { webhookTimestamp: bad }), options), Rejection.invalidSignature, bad)
  }
})

t.test('a webhook-signature without webhook-id or webhook-timestamp is invalid', async (t) => {
  const good = standard('current-secret')
  t.match(verifySignature({ ...good, webhookId: '' }, options), { ...Rejection.invalidSignature, message: /webhook-id/ })
  t.match(verifySignature({ ...good, webhookTimestamp: '' }, options), Rejection.invalidSignature)
})

t.test('no signature headers at all is a missing signature, not an invalid one', async (t) => {
  t.match(verifySignature(raw({}), options), { ok: false, ...Rejection.missingSignature })
})

t.test('webhook-id and webhook-timestamp alone are not a signature', async (t) => {
  t.match(verifySignature(raw({ webhookId: 'msg_1', webhookTimestamp: nowSeconds }), options), Rejection.missingSignature)
})

t.test('when both schemes are present Standard Webhooks decides', async (t) => {
  const seedGood = seedSignature('current-secret')
  const swGood = standard('current-secret')
  t.equal(verifySignature({ ...swGood, providerSignature: 'sha256=00' }, options), null)
  const swBad = { ...swGood, webhookSignature: standardSignature('other-secret', 'msg_1', nowSeconds) }
  t.match(verifySignature({ ...swBad, providerSignature: seedGood }, options), Rejection.invalidSignature)
})

t.test('a channel without secrets accepts nothing', async (t) => {
  t.match(verifySignature(raw({ channel: channel([]), providerSignature: seedSignature('') }), options), Rejection.invalidSignature)
})

t.test('each channel rule is verified with its own secrets', async (t) => {
  const a = channel(['secret-a'])
  const b = channel(['secret-b'])
  t.equal(verifySignature(raw({ channel: a, providerSignature: seedSignature('secret-a') }), options), null)
  t.match(verifySignature(raw({ channel: b, providerSignature: seedSignature('secret-a') }), options), Rejection.invalidSignature)
  t.equal(verifySignature(raw({ channel: b, providerSignature: seedSignature('secret-b') }), options), null)
})

t.test('a body that is a view into shared memory verifies like any other', async (t) => {
  const shared = new Uint8Array(new SharedArrayBuffer(body.length + 16), 8, body.length)
  shared.set(body)
  t.equal(verifySignature(raw({ body: shared, providerSignature: seedSignature('current-secret') }), options), null)
})

t.test('rejection messages never contain a secret or an expected signature', async (t) => {
  const ch = channel(['current-secret', whsec])
  const expectedHex = seedSignature('current-secret').slice(7)
  const verdicts = [
    verifySignature(raw({ channel: ch, providerSignature: 'sha256=00' }), options),
    verifySignature({ ...standard('wrong'), channel: ch }, options),
    verifySignature({ ...standard('wrong', { webhookTimestamp: '1' }), channel: ch }, options),
    verifySignature(raw({ channel: ch }), options)
  ]
  for (const verdict of verdicts) {
    const text = JSON.stringify(verdict)
    t.notOk(text.includes('current-secret') || text.includes(whsec) || text.includes(expectedHex), text)
  }
})

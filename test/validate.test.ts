import { createHash } from 'node:crypto'
import t from 'tap'
import { Rejection } from '../src/errors.js'
import type { ChannelRule, RawWebhook } from '../src/process/types.js'
import { validateWebhook, type NormalizedMessage, type Validation } from '../src/process/validate.js'

/** The `t` a subtest callback receives (tap's plugin-built type). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const sms: ChannelRule = { name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets: ['s'] }
const email: ChannelRule = { name: 'email', addressKind: 'email', maxAttachments: 25, secrets: ['s'] }
const phones = { from: '+14155552671', to: '+12125551234' }
const emails = { from: 'alice@example.com', to: 'bob@example.org' }

function rawOf (body: Uint8Array | string, channel = sms, webhookId = ''): RawWebhook {
  return {
    channel,
    body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
    providerSignature: '',
    webhookId,
    webhookTimestamp: '',
    webhookSignature: '',
    receivedAtMs: 0
  }
}

function validate (payload: Record<string, unknown>, channel = sms): Validation {
  return validateWebhook(rawOf(JSON.stringify(payload), channel))
}

/** The normalized message, or a failed assertion naming what was rejected. */
function accepted (t: Test, verdict: Validation): NormalizedMessage {
  if (!verdict.ok) {
    t.fail(`expected acceptance, got ${verdict.code}: ${verdict.message} ${JSON.stringify(verdict.fields)}`)
    return { externalId: '', from: '', to: '', body: '', attachments: [], sentAt: null }
  }
  return verdict.message
}

/** Asserts a 422 whose only problem is `field` with a reason matching `reason`. */
function rejectsField (t: Test, verdict: Validation, field: string, reason: RegExp | string, what?: string): void {
  t.match(verdict, { ok: false, ...Rejection.invalidFields, fields: [{ field, reason }] }, what ?? field)
  if (!verdict.ok) t.equal(verdict.fields?.length, 1, `${what ?? field}: exactly one problem`)
}

t.test('an empty body is rejected before anything else', async (t) => {
  t.match(validateWebhook(rawOf('')), { ok: false, ...Rejection.emptyBody })
})

t.test('bytes that are not UTF-8 are rejected', async (t) => {
  const cases = {
    'a stray 0xff': [0x7b, 0xff, 0x7d],
    'an overlong slash': [0x22, 0xc0, 0xaf, 0x22],
    'an encoded surrogate': [0x22, 0xed, 0xa0, 0x80, 0x22],
    'a truncated sequence': [0x22, 0xe2, 0x82, 0x22],
    'a code point above U+10FFFF': [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]
  }
  for (const [name, bytes] of Object.entries(cases)) {
    t.match(validateWebhook(rawOf(new Uint8Array(bytes))), Rejection.invalidUtf8, name)
  }
})

t.test('a UTF-8 byte order mark before the JSON is tolerated', async (t) => {
  const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(phones))])
  t.equal(accepted(t, validateWebhook(rawOf(body))).from, phones.from)
})

t.test('malformed JSON is rejected and the message says where', async (t) => {
  const verdict = validateWebhook(rawOf('{"from": "+14155552671",'))
  t.match(verdict, { ok: false, ...Rejection.malformedJson, message: /^malformed JSON: .*position \d+/ })
})

t.test('malformed JSON messages do not quote the body', async (t) => {
  const verdict = validateWebhook(rawOf('private-customer-text'))
  t.match(verdict, Rejection.malformedJson)
  t.notMatch(verdict, { message: /customer/ })
})

t.test('a body that is not a JSON object is rejected', async (t) => {
  for (const [body, kind] of [['[]', 'an array'], ['null', 'null'], ['42', 'a number'], ['"text"', 'a string'], ['true', 'a boolean']]) {
    t.match(validateWebhook(rawOf(body as string)), { ...Rejection.notAnObject, message: `the body must be a JSON object, not ${kind as string}` })
  }
})

t.test('100000 nested arrays do not crash the validator', async (t) => {
  const deep = '['.repeat(100000) + ']'.repeat(100000)
  t.match(validateWebhook(rawOf(deep)), Rejection.notAnObject)
  const inField = `{"from":"+14155552671","to":"+12125551234","extra":${deep}}`
  t.equal(accepted(t, validateWebhook(rawOf(inField))).to, phones.to)
  const inAttachments = `{"from":"+14155552671","to":"+12125551234","attachments":[${deep}]}`
  rejectsField(t, validateWebhook(rawOf(inAttachments)), 'attachments[0]', 'must be a string')
  const deepObject = '{"a":'.repeat(100000) + '1' + '}'.repeat(100000)
  t.match(validateWebhook(rawOf(deepObject)), { ok: false })
})

t.test('a minimal webhook is normalized with defaults', async (t) => {
  const body = JSON.stringify(phones)
  const message = accepted(t, validateWebhook(rawOf(body)))
  t.same(message, {
    externalId: createHash('sha256').update(body).digest('hex'),
    from: phones.from,
    to: phones.to,
    body: '',
    attachments: [],
    sentAt: null
  })
})

t.test('a full webhook keeps every field', async (t) => {
  const message = accepted(t, validate({
    id: 'ext-123', ...phones, body: 'hi', attachments: ['https://cdn.example.com/a.png', 's3://bucket/key.jpg'], timestamp: '2026-11-29T10:00:00Z'
  }))
  t.same(message, {
    externalId: 'ext-123',
    ...phones,
    body: 'hi',
    attachments: ['https://cdn.example.com/a.png', 's3://bucket/key.jpg'],
    sentAt: '2026-11-29T10:00:00.000Z'
  })
})

t.test('unknown fields are ignored and null optional fields count as absent', async (t) => {
  const message = accepted(t, validate({ ...phones, id: null, body: null, attachments: null, timestamp: null, mood: 'happy' }))
  t.same({ body: message.body, attachments: message.attachments, sentAt: message.sentAt }, { body: '', attachments: [], sentAt: null })
})

t.test('the id may be a string or a safe integer', async (t) => {
  t.equal(accepted(t, validate({ id: 'ext-1', ...phones })).externalId, 'ext-1')
  t.equal(accepted(t, validate({ id: 42, ...phones })).externalId, '42')
  t.equal(accepted(t, validate({ id: 0, ...phones })).externalId, '0')
})

t.test('the seed name xillio_id is accepted, and id wins over it', async (t) => {
  t.equal(accepted(t, validate({ xillio_id: 'x-1', ...phones })).externalId, 'x-1')
  t.equal(accepted(t, validate({ id: 'i-1', xillio_id: 'x-1', ...phones })).externalId, 'i-1')
  rejectsField(t, validate({ xillio_id: '', ...phones }), 'xillio_id', 'must be a non-empty string or a safe integer')
})

t.test('an empty, non-string or imprecise id is an invalid field', async (t) => {
  for (const id of ['', true, 1.5, 2 ** 53, { a: 1 }, ['x']]) {
    rejectsField(t, validate({ id, ...phones }), 'id', 'must be a non-empty string or a safe integer', JSON.stringify(id))
  }
})

t.test('an id is at most 255 characters, counted as code points', async (t) => {
  t.equal(accepted(t, validate({ id: 'a'.repeat(255), ...phones })).externalId.length, 255)
  rejectsField(t, validate({ id: 'a'.repeat(256), ...phones }), 'id', 'must be at most 255 characters')
  t.equal(accepted(t, validate({ id: '😀'.repeat(255), ...phones })).externalId, '😀'.repeat(255))
  rejectsField(t, validate({ id: '😀'.repeat(256), ...phones }), 'id', 'must be at most 255 characters')
})

t.test('without an id the webhook-id header stands in, then the SHA-256 of the raw body', async (t) => {
  const body = JSON.stringify(phones)
  t.equal(accepted(t, validateWebhook(rawOf(body, sms, 'msg_2NbD'))).externalId, 'msg_2NbD')
  t.equal(accepted(t, validateWebhook(rawOf(body, sms, ''))).externalId, createHash('sha256').update(body).digest('hex'))
  t.equal(accepted(t, validateWebhook(rawOf(JSON.stringify({ id: 'own', ...phones }), sms, 'msg_2NbD'))).externalId, 'own')
  rejectsField(t, validateWebhook(rawOf(body, sms, 'w'.repeat(256))), 'webhook-id', 'must be at most 255 characters')
})

t.test('from and to are required strings', async (t) => {
  const verdict = validate({})
  t.match(verdict, { ...Rejection.invalidFields, fields: [{ field: 'from', reason: 'is required' }, { field: 'to', reason: 'is required' }] })
  rejectsField(t, validate({ from: 14155552671, to: phones.to }), 'from', 'must be a string')
  rejectsField(t, validate({ from: phones.from, to: null }), 'to', 'is required')
})

t.test('phone numbers must be E.164', async (t) => {
  for (const ok of ['+14155552671', '+442071838750', '+12', '+123456789012345']) {
    t.equal(accepted(t, validate({ from: ok, to: '+19999999999' })).from, ok, ok)
  }
  for (const bad of ['14155552671', '+0123456', '+1', '+1234567890123456', '+1 415 555 2671', '+1-415', '+１４１５５５５２６７１', '+1415\n5552671', 'tel:+14155552671', '']) {
    rejectsField(t, validate({ from: bad, to: '+19999999999' }), 'from', /E\.164/, JSON.stringify(bad))
  }
})

t.test('phone numbers are trimmed', async (t) => {
  t.equal(accepted(t, validate({ from: '  +14155552671 ', to: phones.to })).from, '+14155552671')
  t.equal(accepted(t, validate({ from: '\t+14155552671\r\n', to: phones.to })).from, '+14155552671')
})

t.test('email addresses are trimmed and stored lower-cased', async (t) => {
  const message = accepted(t, validate({ from: '  Alice.Smith+Tag@Example.COM ', to: 'BOB@example.org' }, email))
  t.equal(message.from, 'alice.smith+tag@example.com')
  t.equal(message.to, 'bob@example.org')
})

t.test('an internationalized email address is accepted, lower-cased, its domain in ASCII (punycode) form', async (t) => {
  t.equal(accepted(t, validate({ from: 'José@Exämple.Com', to: emails.to }, email)).from, 'josé@xn--exmple-cua.com')
})

t.test('malformed email addresses are rejected', async (t) => {
  const local64 = 'a'.repeat(64)
  t.equal(accepted(t, validate({ from: `${local64}@example.com`, to: emails.to }, email)).from, `${local64}@example.com`)
  const bad = [
    'alice', 'alice@', '@example.com', 'alice@example', 'alice@example.c', 'alice smith@example.com',
    'alice@@example.com', 'a@b@example.com', '<alice@example.com>', 'alice@example..com', 'alice@.example.com',
    `${'a'.repeat(65)}@example.com`, `a@${'b'.repeat(250)}.com`, 'alice@exam\tple.com', '+14155552671'
  ]
  for (const address of bad) {
    rejectsField(t, validate({ from: address, to: emails.to }, email), 'from', /email address/, JSON.stringify(address))
  }
})

t.test('an email address of at most 254 characters is accepted', async (t) => {
  const address = `${'a'.repeat(64)}@${'b'.repeat(185)}.com`
  t.equal(address.length, 254)
  t.equal(accepted(t, validate({ from: address, to: emails.to }, email)).from, address)
})

t.test('from must differ from to, after normalization', async (t) => {
  rejectsField(t, validate({ from: phones.from, to: phones.from }), 'to', 'must differ from from')
  rejectsField(t, validate({ from: 'Alice@Example.com', to: ' alice@example.COM' }, email), 'to', 'must differ from from')
})

t.test('the body is an optional string of at most 65536 characters', async (t) => {
  t.equal(accepted(t, validate({ ...phones, body: 'x'.repeat(65536) })).body.length, 65536)
  rejectsField(t, validate({ ...phones, body: 'x'.repeat(65537) }), 'body', 'must be at most 65536 characters')
  rejectsField(t, validate({ ...phones, body: 42 }), 'body', 'must be a string')
  rejectsField(t, validate({ ...phones, body: ['hi'] }), 'body', 'must be a string')
})

t.test('a body of 65536 astral characters is within the limit', async (t) => {
  const astral = '𝄞'.repeat(65536)
  t.equal(accepted(t, validate({ ...phones, body: astral })).body, astral)
  rejectsField(t, validate({ ...phones, body: astral + '𝄞' }), 'body', 'must be at most 65536 characters')
})

t.test('unicode text survives unchanged', async (t) => {
  const text = 'héllo 👋🏽 family 👨‍👩‍👧 e\u0301 \u200d\ufeff \u2028\u2029 日本語 \uffff \u{10ffff} \\ "q" \t\n\r'
  t.equal(accepted(t, validate({ ...phones, body: text, id: text.slice(0, 20) })).body, text)
})

t.test('NUL characters are rejected in every string field', async (t) => {
  const reason = 'must not contain NUL characters'
  rejectsField(t, validate({ ...phones, body: 'a\u0000b' }), 'body', reason)
  rejectsField(t, validate({ ...phones, id: 'ext\u0000' }), 'id', reason)
  rejectsField(t, validate({ from: '+14155552671\u0000', to: phones.to }), 'from', reason)
  rejectsField(t, validate({ ...emails, to: 'bob@example.org\u0000' }, email), 'to', reason)
  rejectsField(t, validate({ ...phones, attachments: ['https://a.example/\u0000'] }), 'attachments[0]', reason)
  rejectsField(t, validateWebhook(rawOf(JSON.stringify(phones), sms, 'msg\u0000')), 'webhook-id', reason)
})

t.test('unpaired surrogates are rejected, paired ones are kept', async (t) => {
  const reason = 'must not contain unpaired surrogates'
  for (const escaped of ['\\ud800', '\\udc00', 'a\\ud83dz', '\\ude00\\ud83d']) {
    const body = `{"from":"+14155552671","to":"+12125551234","body":"${escaped}"}`
    rejectsField(t, validateWebhook(rawOf(body)), 'body', reason, escaped)
  }
  const paired = '{"from":"+14155552671","to":"+12125551234","body":"\\ud83d\\ude00"}'
  t.equal(accepted(t, validateWebhook(rawOf(paired))).body, '😀')
})

t.test('attachments are at most maxAttachments per channel', async (t) => {
  const urls = (n: number): string[] => Array.from({ length: n }, (_, i) => `https://cdn.example.com/${i}.png`)
  t.equal(accepted(t, validate({ ...phones, attachments: urls(10) })).attachments.length, 10)
  rejectsField(t, validate({ ...phones, attachments: urls(11) }), 'attachments', 'must have at most 10 entries')
  t.equal(accepted(t, validate({ ...emails, attachments: urls(25) }, email)).attachments.length, 25)
  rejectsField(t, validate({ ...emails, attachments: urls(26) }, email), 'attachments', 'must have at most 25 entries')
})

t.test('attachments must be an array', async (t) => {
  rejectsField(t, validate({ ...phones, attachments: 'https://a.example/x' }), 'attachments', 'must be an array of URLs')
  rejectsField(t, validate({ ...phones, attachments: { 0: 'https://a.example/x' } }), 'attachments', 'must be an array of URLs')
})

t.test('attachments must be absolute http, https or s3 URLs with a host', async (t) => {
  const good = ['http://a.example/x', 'https://a.example:8443/x?y=1#z', 's3://bucket/key/with space%20.png', 'HTTPS://A.EXAMPLE/', 'https://[::1]/x']
  t.same(accepted(t, validate({ ...phones, attachments: good.slice(0, 2).concat(['s3://bucket/key.png']) })).attachments.length, 3)
  for (const url of good.slice(4)) t.equal(accepted(t, validate({ ...phones, attachments: [url] })).attachments[0], url, url)
  const bad = [
    'ftp://a.example/x', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/plain,hi', '/relative/path', 'a.example/x',
    'http:a.example', 's3:///key', 'https://', ' https://a.example/x', 'https://a.example/x y', 'https://a.exa mple/', 'http://[::1/', 'mailto:a@b.com'
  ]
  for (const url of bad) {
    rejectsField(t, validate({ ...phones, attachments: [url] }), 'attachments[0]', 'must be an absolute http, https or s3 URL', JSON.stringify(url))
  }
  rejectsField(t, validate({ ...phones, attachments: ['https://a.example/', 7] }), 'attachments[1]', 'must be a string')
})

t.test('an attachment URL is at most 2048 characters', async (t) => {
  const base = 'https://a.example/'
  t.equal(accepted(t, validate({ ...phones, attachments: [base + 'x'.repeat(2048 - base.length)] })).attachments[0]?.length, 2048)
  rejectsField(t, validate({ ...phones, attachments: [base + 'x'.repeat(2049 - base.length)] }), 'attachments[0]', 'must be at most 2048 characters')
})

t.test('a timestamp is an ISO-8601 date-time with a timezone, normalized to UTC milliseconds', async (t) => {
  const cases: Array<[string, string]> = [
    ['2026-11-29T10:00:00Z', '2026-11-29T10:00:00.000Z'],
    ['2026-11-29T10:00:00.5Z', '2026-11-29T10:00:00.500Z'],
    ['2026-11-29T10:00:00.123456789Z', '2026-11-29T10:00:00.123Z'],
    ['2026-11-29T12:30:00+02:30', '2026-11-29T10:00:00.000Z'],
    ['2026-11-29T05:00:00-05:00', '2026-11-29T10:00:00.000Z'],
    ['2026-11-29t10:00:00z', '2026-11-29T10:00:00.000Z'],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['2000-02-29T00:00:00Z', '2000-02-29T00:00:00.000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59Z', '9999-12-31T23:59:59.000Z']
  ]
  for (const [input, normalized] of cases) t.equal(accepted(t, validate({ ...phones, timestamp: input })).sentAt, normalized, input)
})

t.test('timestamps without a time, a timezone or a real calendar date are rejected', async (t) => {
  const bad = [
    '2026-11-29', '2026-11-29T10:00:00', '2026-11-29 10:00:00Z', '2026-11-29T10:00Z', '2026-02-30T00:00:00Z',
    '2027-02-29T00:00:00Z', '1900-02-29T00:00:00Z', '2026-13-01T00:00:00Z', '2026-00-10T00:00:00Z', '2026-11-00T00:00:00Z',
    '2026-11-29T24:00:00Z', '2026-11-29T10:60:00Z', '2026-11-29T10:00:60Z', '2026-11-29T10:00:00+24:00',
    '2026-11-29T10:00:00+0200', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59-01:00', '+012026-11-29T10:00:00Z',
    'Sun, 29 Nov 2026 10:00:00 GMT', 'now', ''
  ]
  for (const timestamp of bad) {
    rejectsField(t, validate({ ...phones, timestamp }), 'timestamp', /ISO-8601 date-time with a timezone/, timestamp)
  }
  rejectsField(t, validate({ ...phones, timestamp: 1795946400 }), 'timestamp', /ISO-8601/)
})

t.test('every problem is reported at once, named in the message', async (t) => {
  const verdict = validate({ from: 'nope', to: 42, attachments: ['https://a.example/', 'https://b.example/', 'ftp://c.example/'] })
  t.match(verdict, {
    ok: false,
    ...Rejection.invalidFields,
    message: '3 invalid fields: from, to, attachments[2]',
    fields: [
      { field: 'from', reason: /E\.164/ },
      { field: 'to', reason: 'must be a string' },
      { field: 'attachments[2]', reason: /absolute/ }
    ]
  })
})

t.test('a single problem is reported in the singular', async (t) => {
  t.match(validate({ from: phones.from }), { message: '1 invalid field: to' })
})

t.test('a __proto__ key neither pollutes Object.prototype nor stands in for a field', async (t) => {
  const body = `{"__proto__": {"from": "+14155552671", "polluted": true}, "to": "+12125551234"}`
  rejectsField(t, validateWebhook(rawOf(body)), 'from', 'is required')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  const ok = `{"__proto__": {"polluted": true}, "from": "+14155552671", "to": "+12125551234"}`
  t.equal(accepted(t, validateWebhook(rawOf(ok))).from, phones.from)
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('fields inherited from Object.prototype are never read', async (t) => {
  Object.defineProperty(Object.prototype, 'from', { value: '+14155552671', configurable: true, writable: true })
  try {
    rejectsField(t, validate({ to: phones.to }), 'from', 'is required')
  } finally {
    delete (Object.prototype as Record<string, unknown>).from
  }
})

t.test('keys named like Object.prototype members are plain unknown fields', async (t) => {
  const body = `{"constructor": 1, "toString": 2, "hasOwnProperty": 3, "from": "+14155552671", "to": "+12125551234"}`
  t.equal(accepted(t, validateWebhook(rawOf(body))).from, phones.from)
})

t.test('a payload with its own ok key is still validated as a payload', async (t) => {
  t.equal(accepted(t, validate({ ok: false, status: 400, ...phones })).from, phones.from)
})

t.test('an attachment URL is stored with its scheme lower-cased, the rest as sent (regression: HTTPS:// passed validation and failed the database)', async (t) => {
  const cases: Array<[string, string]> = [
    ['HTTPS://A.EXAMPLE/', 'https://A.EXAMPLE/'],
    ['S3://Bucket/Key.PNG', 's3://Bucket/Key.PNG'],
    ['Http://a.example/X?Y=Z', 'http://a.example/X?Y=Z'],
    ['https://a.example/x', 'https://a.example/x']
  ]
  for (const [input, stored] of cases) t.equal(accepted(t, validate({ ...phones, attachments: [input] })).attachments[0], stored, input)
})

t.test('an email address is one spelling per mailbox: NFC local part, ASCII (punycode) domain', async (t) => {
  const nfc = accepted(t, validate({ from: 'jos\u00e9@example.com', to: 'bob@example.org' }, email)).from
  const nfd = accepted(t, validate({ from: 'jose\u0301@example.com', to: 'bob@example.org' }, email)).from
  t.equal(nfd, nfc, 'NFD and NFC spellings are one address')
  t.equal(nfc, 'jos\u00e9@example.com')
  const unicode = accepted(t, validate({ from: 'a@b\u00fccher.example', to: 'bob@example.org' }, email)).from
  const puny = accepted(t, validate({ from: 'A@XN--BCHER-KVA.example', to: 'bob@example.org' }, email)).from
  t.equal(unicode, 'a@xn--bcher-kva.example', 'a Unicode domain is stored in its ASCII form')
  t.equal(puny, unicode, 'the punycode spelling is the same address')
  t.equal(accepted(t, validate({ from: 'a@\uff45xample.com', to: 'bob@example.org' }, email)).from, 'a@example.com', 'full-width letters map to ASCII (UTS #46)')
  rejectsField(t, validate({ from: 'jose\u0301@example.com', to: 'jos\u00e9@EXAMPLE.com' }, email), 'to', 'must differ from from', 'one mailbox spelt two ways is the same party')
  rejectsField(t, validate({ from: 'a@xn--.example', to: 'bob@example.org' }, email), 'from', /must be an email address/, 'a domain IDNA refuses')
})

t.test('a null id falls back to xillio_id as an absent one does (regression: it fell back to the body hash)', async (t) => {
  t.equal(accepted(t, validate({ id: null, xillio_id: 'X', ...phones })).externalId, 'X')
  t.equal(accepted(t, validate({ id: null, xillio_id: 7, ...phones })).externalId, '7')
})

t.test('ids 1500, 1.5e3, 1500.0 and "1500" are one message; other spellings of a string are not', async (t) => {
  for (const body of ['{"id":1500', '{"id":1.5e3', '{"id":1500.0', '{"id":"1500"', '{"id":15e2']) {
    const verdict = validateWebhook(rawOf(`${body},"from":"+14155552671","to":"+12125551234"}`))
    t.equal(accepted(t, verdict).externalId, '1500', body)
  }
  t.equal(accepted(t, validate({ id: '1.5e3', ...phones })).externalId, '1.5e3', 'a string id is taken literally')
  rejectsField(t, validate({ id: 1.5, ...phones }), 'id', 'must be a non-empty string or a safe integer')
})

// A SendGrid inbound domain pointed straight at Hermes: Inbound Parse posts in the default and the
// raw form, authenticated by basic auth and/or SendGrid's ECDSA signature over the raw bytes; the
// attachments' bytes are stored in PostgreSQL; bodies larger than the ring's record budget travel
// outside the ring up to the channel's own limit.
import t from 'tap'
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { send, startTestHermes, type HttpAnswer, type TestHermes } from './helpers/hermes.js'
import { sendgridSigner } from './helpers/sendgrid.js'

const signer = sendgridSigner()
const AUTH = { authorization: `Basic ${Buffer.from('parse:pw-1').toString('base64')}` }
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff, 0xfe, 0x80, 0x81])
let h: TestHermes

t.before(async () => {
  h = await startTestHermes(t, {
    channels: {
      email: { provider: 'mock', format: 'sendgrid-parse', basicAuth: ['parse:pw-0', 'parse:pw-1'], maxBodyBytes: 8 * 1024 * 1024 },
      signed: { type: 'email', provider: 'mock', format: 'sendgrid-parse', publicKeys: [signer.publicKey] },
      sms: { provider: 'mock', secrets: ['s'] }
    },
    providers: { mock: { kind: 'mock' } }
  })
})

type Fields = Record<string, string | { bytes: Buffer, filename: string, type: string }>

/** A multipart body as a real client encodes it (undici's FormData), with its content-type and boundary. */
async function multipart (fields: Fields): Promise<{ body: Buffer, contentType: string }> {
  const form = new FormData()
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === 'string') form.append(name, value)
    else form.append(name, new Blob([value.bytes], { type: value.type }), value.filename)
  }
  const request = new Request('http://localhost/', { method: 'POST', body: form })
  return { body: Buffer.from(await request.arrayBuffer()), contentType: request.headers.get('content-type')! }
}

let n = 0
function defaultForm (extra: Fields = {}): Fields {
  n++
  return {
    headers: `Received: by mx.sendgrid.net\r\nMessage-ID: <parse-${process.pid}-${n}@mail.example.org>\r\nDate: Mon, 30 Nov 2026 09:15:00 +0000\r\nSubject: Report ${n}\r\n`,
    dkim: '{@example.org : pass}',
    'content-ids': '{}',
    to: 'Support <Support@Inbound.Example.com>',
    from: 'Alice Example <Alice@Example.org>',
    subject: `Report ${n} ✓`,
    text: `Hello,\r\nsee attached. ${n}`,
    html: '<p>Hello</p>',
    sender_ip: '192.0.2.1',
    envelope: JSON.stringify({ to: ['support@inbound.example.com'], from: 'alice@example.org' }),
    attachments: '2',
    'attachment-info': JSON.stringify({ attachment1: { filename: 'chart.png', name: 'chart.png', type: 'image/png' }, attachment2: { filename: 'notes.txt', type: 'text/plain' } }),
    charsets: JSON.stringify({ to: 'UTF-8', from: 'UTF-8', subject: 'UTF-8', text: 'UTF-8' }),
    SPF: 'pass',
    attachment1: { bytes: PNG, filename: 'chart.png', type: 'image/png' },
    attachment2: { bytes: Buffer.from('line 1\nline 2\n'), filename: 'notes.txt', type: 'text/plain' },
    ...extra
  }
}

async function post (channel: string, fields: Fields, headers: Record<string, string> = AUTH): Promise<HttpAnswer> {
  const { body, contentType } = await multipart(fields)
  return await send('POST', `${h.base}/webhooks/${channel}`, body, { 'content-type': contentType, ...headers })
}

async function message (externalId: string): Promise<Record<string, any> | undefined> {
  return (await h.db.query(`SELECT m.id, m.body, m.subject, m.sent_at, s.email AS sender, r.email AS recipient
    FROM message m JOIN party s ON s.id = m.sender_id JOIN party r ON r.id = m.recipient_id WHERE m.external_id = $1`, [externalId])).rows[0]
}

async function files (messageId: string): Promise<Array<Record<string, any>>> {
  return (await h.db.query('SELECT position, filename, content_type, size, encode(sha256, \'hex\') AS sha256, content FROM attachment_file WHERE message_id = $1 ORDER BY position', [messageId])).rows
}

t.test('the default form is stored with its subject and the bytes of its attachments, then answered 200', async (t) => {
  const fields = defaultForm()
  const answer = await post('email', fields)
  t.equal(answer.status, 200)
  t.equal(answer.json.status, 'stored')
  const row = await message(`parse-${process.pid}-${n}@mail.example.org`)
  t.ok(row, 'stored under its Message-ID')
  t.match(row, { body: `Hello,\r\nsee attached. ${n}`, subject: `Report ${n} ✓`, sender: 'alice@example.org', recipient: 'support@inbound.example.com' })
  t.equal(row!['sent_at'].toISOString(), '2026-11-30T09:15:00.000Z', 'the Date header')
  const stored = await files(row!['id'])
  t.same(stored.map(({ content, ...f }) => f), [
    { position: 1, filename: 'chart.png', content_type: 'image/png', size: PNG.length, sha256: createHash('sha256').update(PNG).digest('hex') },
    { position: 2, filename: 'notes.txt', content_type: 'text/plain', size: 14, sha256: createHash('sha256').update('line 1\nline 2\n').digest('hex') }
  ])
  t.ok(Buffer.compare(stored[0]!['content'], PNG) === 0, 'the binary bytes, unchanged')
})

t.test('the same email posted again is stored once', async (t) => {
  const fields = defaultForm()
  t.equal((await post('email', fields)).status, 200)
  t.equal((await post('email', fields)).status, 200)
  t.equal((await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', [`parse-${process.pid}-${n}@mail.example.org`])).rows[0].n, 1)
})

t.test('the raw form is parsed as MIME', async (t) => {
  const mime = [
    'From: "Bob" <Bob@Example.net>', 'To: team@inbound.example.com', 'Subject: =?UTF-8?B?w5xiZXIgYWxsZXM=?=',
    `Message-ID: <raw-${process.pid}@example.net>`, 'Date: Tue, 01 Dec 2026 08:00:00 +0100', 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="XYZ"', '', '--XYZ', 'Content-Type: text/plain; charset=utf-8', '', 'Raw body text', '--XYZ',
    'Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="data.bin"', 'Content-Transfer-Encoding: base64', '',
    PNG.toString('base64'), '--XYZ--', ''
  ].join('\r\n')
  const answer = await post('email', { email: mime, envelope: JSON.stringify({ to: ['team@inbound.example.com'], from: 'bob@example.net' }), charsets: '{}' })
  t.equal(answer.status, 200)
  const row = await message(`raw-${process.pid}@example.net`)
  t.match(row, { body: 'Raw body text', subject: 'Über alles', sender: 'bob@example.net', recipient: 'team@inbound.example.com' })
  t.equal(row!['sent_at'].toISOString(), '2026-12-01T07:00:00.000Z')
  const stored = await files(row!['id'])
  t.same(stored.map((f) => [f['filename'], f['content_type'], f['size']]), [['data.bin', 'application/octet-stream', PNG.length]])
  t.ok(Buffer.compare(stored[0]!['content'], PNG) === 0)
})

t.test('basic auth: a wrong or missing password is a 401 and nothing is stored', async (t) => {
  const wrong = await post('email', defaultForm(), { authorization: `Basic ${Buffer.from('parse:nope').toString('base64')}` })
  t.match(wrong, { status: 401, json: { error: { code: 'HERMES_ERR_BASIC_AUTH_INVALID' } } })
  t.notMatch(wrong.text, /pw-/)
  t.match(await post('email', defaultForm(), {}), { status: 401, json: { error: { code: 'HERMES_ERR_BASIC_AUTH_INVALID' } } })
  t.equal(await message(`parse-${process.pid}-${n}@mail.example.org`), undefined)
  t.equal((await post('email', defaultForm(), { authorization: `Basic ${Buffer.from('parse:pw-0').toString('base64')}` })).status, 200, 'the other password of the rotation works')
})

t.test('ECDSA: the signature over the raw (binary) bytes verifies; a tampered body does not', async (t) => {
  const { body, contentType } = await multipart(defaultForm())
  const headers = signer.headers(body)
  t.equal((await send('POST', `${h.base}/webhooks/signed`, body, { 'content-type': contentType, ...headers })).status, 200)
  const tampered = Buffer.from(body)
  tampered[tampered.indexOf(PNG) + 9] ^= 1
  const refused = await send('POST', `${h.base}/webhooks/signed`, tampered, { 'content-type': contentType, ...signer.headers(body) })
  t.match(refused, { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_INVALID' } } })
})

t.test('a body above the ring budget travels out of band up to the channel limit; beyond it, 413', async (t) => {
  const big = Buffer.alloc(5 * 1024 * 1024, 0xab)
  const fields = defaultForm({ attachments: '1', 'attachment-info': '{}', attachment1: { bytes: big, filename: 'big.bin', type: 'application/octet-stream' } })
  delete fields['attachment2']
  const { body } = await multipart(fields)
  t.ok(body.length > h.config.maxBodyBytes * 16, 'far larger than the ring record budget')
  t.ok(body.length > h.hermes.ring.capacityBytes / 16)
  t.equal((await post('email', fields)).status, 200)
  const row = await message(`parse-${process.pid}-${n}@mail.example.org`)
  const stored = await files(row!['id'])
  t.equal(stored[0]!['size'], big.length)
  t.equal(stored[0]!['sha256'], createHash('sha256').update(big).digest('hex'))
  t.equal(h.hermes.ring.usedBytes, 0, 'the ring holds nothing afterwards')
  const huge = defaultForm({ attachment1: { bytes: Buffer.alloc(9 * 1024 * 1024), filename: 'huge.bin', type: 'application/octet-stream' } })
  t.match(await post('email', huge), { status: 413, json: { error: { code: 'HERMES_ERR_BODY_TOO_LARGE' } } })
  t.match(await post('sms', huge, { 'content-type': 'application/json' }), { status: 413 }, 'other channels keep the top-level limit')
})

t.test('broken multipart: no boundary, a truncated part, not multipart at all', async (t) => {
  const { body, contentType } = await multipart(defaultForm())
  t.match(await send('POST', `${h.base}/webhooks/email`, body, { 'content-type': 'multipart/form-data', ...AUTH }),
    { status: 400, json: { error: { code: 'HERMES_ERR_MALFORMED_MULTIPART', message: /no boundary/ } } })
  t.match(await send('POST', `${h.base}/webhooks/email`, body.subarray(0, body.length - 200), { 'content-type': contentType, ...AUTH }),
    { status: 400, json: { error: { code: 'HERMES_ERR_MALFORMED_MULTIPART' } } })
  t.match(await send('POST', `${h.base}/webhooks/email`, '{"from":"a@b.example"}', { 'content-type': 'application/json', ...AUTH }),
    { status: 415, json: { error: { code: 'HERMES_ERR_UNSUPPORTED_MEDIA_TYPE' } } })
  t.equal(await message(`parse-${process.pid}-${n}@mail.example.org`), undefined, 'nothing stored')
})

t.test('an email without envelope or Message-ID maps its from/to fields and hashes its body', async (t) => {
  const fields = defaultForm({ headers: 'Subject: x\r\n' })
  delete fields['envelope']
  const { body, contentType } = await multipart(fields)
  t.equal((await send('POST', `${h.base}/webhooks/email`, body, { 'content-type': contentType, ...AUTH })).status, 200)
  const row = await message(createHash('sha256').update(body).digest('hex'))
  t.match(row, { sender: 'alice@example.org', recipient: 'support@inbound.example.com' })
})

t.test('a sender that is not an email address is a 422 naming from', async (t) => {
  const answer = await post('email', defaultForm({ envelope: JSON.stringify({ to: ['support@inbound.example.com'], from: 'not-an-address' }) }))
  t.equal(answer.status, 422)
  t.same(answer.json.error.fields.map((f: { field: string }) => f.field), ['from'])
})

t.test('a worker loads the multipart and MIME parsers with its first email, not at start', async (t) => {
  // @fastify/busboy is CommonJS, so a child process's require.cache tells whether it was loaded.
  const script = `
    import { createRequire } from 'node:module'
    const { sendgridParse } = await import(${JSON.stringify(new URL('../src/process/process-range.js', import.meta.url).href)})
    const busboy = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/@fastify/busboy/'))
    const atStart = busboy()
    await sendgridParse()
    console.log(JSON.stringify({ atStart, afterFirstEmail: busboy() }))`
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.same(JSON.parse(child.stdout || '{}'), { atStart: false, afterFirstEmail: true }, `loaded when needed ${child.stderr}`)
})

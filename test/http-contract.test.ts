// The public HTTP contract of design.md: every status code, its JSON error body, and x-request-id.
import t from 'tap'
import { request } from 'node:http'
import { connect } from 'node:net'
import { send, smsPayload, startTestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'

const h = await startTestHermes(t, { maxBodyBytes: 2048 })

t.test('a signed valid webhook is answered 202 with a JSON body', async (t) => {
  const answer = await h.postSigned('sms', smsPayload())
  t.equal(answer.status, 202)
  t.equal(answer.json.status, 'stored')
  t.match(answer.headers['x-request-id'], /\S+/)
})

t.test('x-request-id is echoed when safe and replaced when it could inject anything', async (t) => {
  const echoed = await h.postSigned('sms', smsPayload(), { 'x-request-id': 'abc-123.X:9' })
  t.equal(echoed.headers['x-request-id'], 'abc-123.X:9')
  t.equal(echoed.json.requestId, 'abc-123.X:9')
  const hostile = await h.postSigned('sms', smsPayload(), { 'x-request-id': 'a b"c<script>' })
  t.not(hostile.headers['x-request-id'], 'a b"c<script>')
  t.match(hostile.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  const onError = await h.post('nowhere', '{}', { 'x-request-id': 'err-1' })
  t.equal(onError.headers['x-request-id'], 'err-1', 'error answers carry it too')
})

t.test('401: a missing signature and a wrong signature are told apart', async (t) => {
  const missing = await h.post('sms', smsPayload())
  t.equal(missing.status, 401)
  t.equal(missing.json.error.code, 'HERMES_ERR_SIGNATURE_MISSING')
  const body = JSON.stringify(smsPayload())
  const wrong = await h.post('sms', body, seedSignature('not-the-secret', body))
  t.equal(wrong.status, 401)
  t.equal(wrong.json.error.code, 'HERMES_ERR_SIGNATURE_INVALID')
  t.notMatch(wrong.text, /test-secret/, 'the secret never appears in an answer')
})

t.test('400: empty body, malformed JSON, invalid UTF-8, a JSON value that is not an object', async (t) => {
  const cases: Array<[string, string | Buffer, string]> = [
    ['empty', '', 'HERMES_ERR_EMPTY_BODY'],
    ['malformed', '{"id": ', 'HERMES_ERR_MALFORMED_JSON'],
    ['invalid utf-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 'HERMES_ERR_INVALID_UTF8'],
    ['array', '[1,2]', 'HERMES_ERR_NOT_AN_OBJECT'],
    ['null', 'null', 'HERMES_ERR_NOT_AN_OBJECT']
  ]
  for (const [name, body, code] of cases) {
    const answer = await h.post('sms', body, seedSignature('test-secret', body))
    t.equal(answer.status, 400, name)
    t.equal(answer.json.error.code, code, name)
  }
})

t.test('422 lists every invalid field and why', async (t) => {
  const answer = await h.postSigned('sms', { id: 'bad-1', from: '4155552671', to: 'nobody@example.com', attachments: ['ftp://x/y', ...Array(10).fill('https://a.example/b')] })
  t.equal(answer.status, 422)
  t.equal(answer.json.error.code, 'HERMES_ERR_INVALID_FIELDS')
  const fields = (answer.json.error.fields as Array<{ field: string, reason: string }>).map((f) => f.field)
  t.ok(fields.includes('from'), 'from is listed')
  t.ok(fields.includes('to'), 'to is listed')
  t.ok(fields.some((f) => f.startsWith('attachments')), 'attachments are listed')
  for (const f of answer.json.error.fields) t.type(f.reason, 'string')
})

t.test('404 for an unknown channel and for an unknown route', async (t) => {
  const channel = await h.postSigned('fax', smsPayload())
  t.equal(channel.status, 404)
  t.equal(channel.json.error.code, 'HERMES_ERR_UNKNOWN_CHANNEL')
  const route = await send('GET', `${h.base}/nothing-here`)
  t.equal(route.status, 404)
  t.equal(route.json.error.code, 'HERMES_ERR_NOT_FOUND')
})

t.test('405 for a wrong method on a known route', async (t) => {
  const get = await send('GET', `${h.base}/webhooks/sms`)
  t.equal(get.status, 405)
  t.equal(get.json.error.code, 'HERMES_ERR_METHOD_NOT_ALLOWED')
  const post = await send('POST', `${h.base}/healthz`, '{}')
  t.equal(post.status, 405)
})

t.test('413 when content-length is over the limit, before the body is read', async (t) => {
  const big = JSON.stringify(smsPayload({ body: 'x'.repeat(4000) }))
  const answer = await h.postSigned('sms', big)
  t.equal(answer.status, 413)
  t.equal(answer.json.error.code, 'HERMES_ERR_BODY_TOO_LARGE')
})

t.test('413 while streaming a chunked body that passes the limit (no content-length to trust)', async (t) => {
  const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = request(`${h.base}/webhooks/sms`, { method: 'POST', agent: false, headers: { 'transfer-encoding': 'chunked', ...seedSignature('test-secret', 'x') } }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    for (let i = 0; i < 8; i++) req.write('x'.repeat(1000))
    req.end()
  })
  t.equal(answer.status, 413)
  t.match(JSON.parse(answer.body).error.code, 'HERMES_ERR_BODY_TOO_LARGE')
})

t.test('a lying content-length (smaller than the body) cannot smuggle a bigger body past the limit', async (t) => {
  // Claims 100 bytes, sends 3000: the server reads 100 bytes as the body; the rest is
  // parsed as a next request on the connection and rejected, never stored as one webhook.
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(h.hermes.port, '127.0.0.1')
    let data = ''
    socket.on('data', (c) => { data += c.toString() })
    socket.on('close', () => resolve(data))
    socket.on('error', reject)
    socket.write(`POST /webhooks/sms HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\n${'y'.repeat(3000)}`)
    socket.setTimeout(5000, () => socket.destroy())
  })
  t.match(raw, /^HTTP\/1\.1 401/, 'the first 100 bytes are an unsigned body')
  const count = await h.db.query('SELECT count(*)::int AS n FROM message WHERE body LIKE $1', ['y%'])
  t.equal(count.rows[0]!['n'], 0)
})

t.test('healthz and readyz answer 200 while up', async (t) => {
  t.equal((await send('GET', `${h.base}/healthz`)).status, 200)
  const ready = await send('GET', `${h.base}/readyz`)
  t.equal(ready.status, 200)
  t.equal(ready.json.status, 'ready')
})

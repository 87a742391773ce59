// A Twilio number pointed straight at Hermes: inbound SMS/MMS in Twilio's own form encoding,
// signed by the official library, stored once and answered with empty TwiML after the commit.
import t from 'tap'
import { Agent, request } from 'node:http'
import { send, startTestHermes, type HttpAnswer, type TestHermes } from './helpers/hermes.js'
import { formBody, inboundSms, twilioHeaders, validateRequest, type Params } from './helpers/twilio.js'
import { until } from '../src/harness/wait.js'

const PUBLIC = 'https://hermes.example.com'
const TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

let h: TestHermes
t.before(async () => {
  h = await startTestHermes(t, {
    publicUrl: PUBLIC,
    channels: {
      sms: { provider: 'twilio', format: 'twilio' },
      mms: { provider: 'mock', format: 'twilio', authTokens: ['token-new', 'token-old'] },
      email: { provider: 'mock', secrets: ['x'] }
    },
    providers: { mock: { kind: 'mock' }, twilio: { kind: 'twilio', baseUrl: 'http://127.0.0.1:9', accountSid: 'AC123', authToken: 'token-sms' } }
  })
})

/** Posts a form signed (by the twilio library) for `signedUrl`, to `path` on Hermes. */
async function postTwilio (path: string, params: Params, token: string, signedUrl = PUBLIC + path, extra: Record<string, string> = {}): Promise<HttpAnswer> {
  return await send('POST', h.base + path, formBody(params), { ...twilioHeaders(token, signedUrl, params), ...extra })
}

async function stored (sid: string): Promise<Record<string, unknown>[]> {
  return (await h.db.query("SELECT m.external_id, m.body, s.phone AS sender, r.phone AS recipient, (SELECT array_agg(a.url ORDER BY a.position) FROM attachment a WHERE a.message_id = m.id) AS attachments FROM message m JOIN party s ON s.id = m.sender_id JOIN party r ON r.id = m.recipient_id WHERE external_id = $1", [sid])).rows
}

t.test('a signed inbound SMS is stored, then answered 200 with empty TwiML', async (t) => {
  const params = inboundSms()
  const answer = await postTwilio('/webhooks/sms', params, 'token-sms')
  t.equal(answer.status, 200)
  t.equal(answer.headers['content-type'], 'text/xml')
  t.equal(answer.text, TWIML)
  t.ok(answer.headers['x-request-id'])
  const rows = await stored(params['MessageSid'] as string)
  t.same(rows, [{ external_id: params['MessageSid'], body: params['Body'], sender: '+14155552671', recipient: '+12125551234', attachments: null }], 'committed before the answer')
  t.ok(validateRequest('token-sms', twilioHeaders('token-sms', PUBLIC + '/webhooks/sms', params)['x-twilio-signature']!, PUBLIC + '/webhooks/sms', params), 'the library agrees the request is genuine')
})

t.test('the URL Twilio called is publicUrl + path + raw query, with or without the default port', async (t) => {
  const query = '?tag=a%20b&x=1'
  t.equal((await postTwilio('/webhooks/sms' + query, inboundSms(), 'token-sms', `${PUBLIC}/webhooks/sms${query}`)).status, 200, 'with a query')
  t.equal((await postTwilio('/webhooks/sms', inboundSms(), 'token-sms', 'https://hermes.example.com:443/webhooks/sms')).status, 200, 'signed with :443')
  const local = await postTwilio('/webhooks/sms', inboundSms(), 'token-sms', `${h.base}/webhooks/sms`)
  t.equal(local.status, 401, 'signed for the address Hermes listens on, not the public one')
  t.match(local.json.error, { code: 'HERMES_ERR_SIGNATURE_INVALID', message: /for https:\/\/hermes\.example\.com\/webhooks\/sms$/ })
  t.equal((await postTwilio('/webhooks/sms' + query, inboundSms(), 'token-sms', `${PUBLIC}/webhooks/sms?x=1&tag=a%20b`)).status, 401, 'a reordered query is another URL')
})

t.test('both tokens work during a rotation, and no other', async (t) => {
  t.equal((await postTwilio('/webhooks/mms', inboundSms(), 'token-new')).status, 200)
  t.equal((await postTwilio('/webhooks/mms', inboundSms(), 'token-old')).status, 200)
  const other = await postTwilio('/webhooks/mms', inboundSms(), 'token-sms')
  t.equal(other.status, 401)
  t.notMatch(other.text, /token-/, 'no token in the answer')
})

t.test('MMS media become attachments in order', async (t) => {
  const params = inboundSms({ NumMedia: '2', MediaUrl0: 'https://api.twilio.com/m/0', MediaContentType0: 'image/png', MediaUrl1: 'https://api.twilio.com/m/1', MediaContentType1: 'image/jpeg' })
  t.equal((await postTwilio('/webhooks/mms', params, 'token-new')).status, 200)
  t.same((await stored(params['MessageSid'] as string))[0]!['attachments'], ['https://api.twilio.com/m/0', 'https://api.twilio.com/m/1'])
})

t.test('one keep-alive connection carries inbound SMS after inbound SMS, each answered with TwiML', async (t) => {
  // A proxy in front of Hermes reuses its connections: the request after a TwiML answer must be read too.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const reused: boolean[] = []
  for (let i = 0; i < 3; i++) {
    const params = inboundSms()
    const answer = await new Promise<{ status: number, text: string }>((resolve, reject) => {
      const req = request(`${h.base}/webhooks/sms`, { method: 'POST', agent, headers: twilioHeaders('token-sms', PUBLIC + '/webhooks/sms', params), timeout: 5000 }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`request ${i + 1} on the kept-alive connection was not answered within 5 s`)))
      req.on('error', reject)
      req.end(formBody(params))
      reused.push(req.reusedSocket)
    })
    t.same(answer, { status: 200, text: TWIML }, `request ${i + 1}`)
    t.equal((await stored(params['MessageSid'] as string)).length, 1, `request ${i + 1} stored`)
  }
  t.same(reused, [false, true, true], 'the second and third went over the first one\'s connection')
})

t.test('a repeated MessageSid is stored once and answered 200 each time', async (t) => {
  const params = inboundSms()
  for (let i = 0; i < 3; i++) t.equal((await postTwilio('/webhooks/sms', params, 'token-sms')).status, 200)
  t.equal((await stored(params['MessageSid'] as string)).length, 1)
})

t.test('a whatsapp: sender is a 422 naming From', async (t) => {
  const params = inboundSms({ From: 'whatsapp:+14155550100' })
  const answer = await postTwilio('/webhooks/sms', params, 'token-sms')
  t.equal(answer.status, 422)
  t.same(answer.json.error.fields.map((f: { field: string }) => f.field), ['From'])
  t.match(answer.json.error.fields[0].reason, /E\.164.*whatsapp:/)
  t.equal((await stored(params['MessageSid'] as string)).length, 0, 'nothing stored')
})

t.test('NumMedia that disagrees with the MediaUrl fields is a 422 naming them', async (t) => {
  const missing = await postTwilio('/webhooks/mms', inboundSms({ NumMedia: '2', MediaUrl0: 'https://x.example/0' }), 'token-new')
  t.equal(missing.status, 422)
  t.same(missing.json.error.fields, [{ field: 'MediaUrl1', reason: 'is required: NumMedia is 2' }])
  const extra = await postTwilio('/webhooks/mms', inboundSms({ NumMedia: '0', MediaUrl0: 'https://x.example/0' }), 'token-new')
  t.same(extra.json.error.fields, [{ field: 'MediaUrl0', reason: 'is beyond NumMedia (0)' }])
  const bad = await postTwilio('/webhooks/mms', inboundSms({ NumMedia: 'two' }), 'token-new')
  t.same(bad.json.error.fields, [{ field: 'NumMedia', reason: 'must be an integer from 0 to 10' }])
})

t.test('a missing MessageSid is a 422 naming it', async (t) => {
  const params = inboundSms()
  delete params['MessageSid']
  const answer = await postTwilio('/webhooks/sms', params, 'token-sms')
  t.equal(answer.status, 422)
  t.same(answer.json.error.fields, [{ field: 'MessageSid', reason: 'is required' }])
})

t.test('refusals: no signature, a signature of the wrong shape, not a form, broken percent-encoding', async (t) => {
  const body = formBody(inboundSms())
  const none = await send('POST', `${h.base}/webhooks/sms`, body, { 'content-type': 'application/x-www-form-urlencoded' })
  t.match(none, { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_MISSING' } } })
  const shape = await send('POST', `${h.base}/webhooks/sms`, body, { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': 'sha256=abc' })
  t.match(shape, { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_MALFORMED' } } })
  const json = await send('POST', `${h.base}/webhooks/sms`, '{}', { 'x-twilio-signature': '0/KCTR6DLpKmkAf8muzZqo1nDgQ=' })
  t.match(json, { status: 415, json: { error: { code: 'HERMES_ERR_UNSUPPORTED_MEDIA_TYPE' } } })
  const broken = await send('POST', `${h.base}/webhooks/sms`, 'Body=%G1&MessageSid=SMx', { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': '0/KCTR6DLpKmkAf8muzZqo1nDgQ=' })
  t.match(broken, { status: 400, json: { error: { code: 'HERMES_ERR_MALFORMED_FORM', message: /percent-encoding.*Body/ } } })
})

t.test('the channels of Hermes\' own format are unchanged', async (t) => {
  const answer = await send('POST', `${h.base}/webhooks/email`, '{"from":"a@example.com","to":"b@example.com"}', { 'x-provider-signature-256': 'sha256=00' })
  t.equal(answer.status, 401)
})

t.test('without publicUrl the URL is http:// + Host', async (t) => {
  const plain = await startTestHermes(t, {
    channels: { sms: { provider: 'mock', format: 'twilio', authTokens: ['tok'] } },
    providers: { mock: { kind: 'mock' } }
  })
  const params = inboundSms()
  const url = `${plain.base}/webhooks/sms`
  t.equal((await send('POST', url, formBody(params), twilioHeaders('tok', url, params))).status, 200)
  const viaProxy = await send('POST', url, formBody(params), { ...twilioHeaders('tok', 'https://hermes.example.com/webhooks/sms', params) })
  t.equal(viaProxy.status, 401)
  t.match(viaProxy.json.error.message, /set publicUrl when Hermes is behind a proxy/)
})

t.test('in enqueued mode the TwiML answer comes at once, and the message is still stored', async (t) => {
  const quick = await startTestHermes(t, {
    ack: 'enqueued',
    channels: { sms: { provider: 'mock', format: 'twilio', authTokens: ['tok'] } },
    providers: { mock: { kind: 'mock' } }
  })
  const params = inboundSms()
  const url = `${quick.base}/webhooks/sms`
  const answer = await send('POST', url, formBody(params), twilioHeaders('tok', url, params))
  t.equal(answer.status, 200)
  t.equal(answer.text, TWIML)
  const stored = await until('the message to be stored', 10_000, async () => (await quick.db.query('SELECT 1 FROM message WHERE external_id = $1', [params['MessageSid']])).rows[0])
  t.ok(stored)
})

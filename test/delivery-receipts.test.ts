// Delivery receipts on POST /callbacks/:provider: Twilio status callbacks and SendGrid Event Webhook
// batches, verified, stored once each, moving delivery_status forward only, applied even when they
// arrive before Hermes has stored the provider message id of its own send.
import t from 'tap'
import { metric, send, startTestHermes, type HttpAnswer, type TestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'
import { startFakeProvider, type FakeProvider } from '../src/harness/fake-provider.js'
import { formBody, twilioHeaders, type Params } from './helpers/twilio.js'
import { officialVerdict, sendgridSigner } from './helpers/sendgrid.js'
import { until } from '../src/harness/wait.js'

const PUBLIC = 'https://hermes.example.com'
const signer = sendgridSigner()
let fake: FakeProvider
let h: TestHermes

t.before(async () => {
  fake = await startFakeProvider(t)
  h = await startTestHermes(t, {
    publicUrl: PUBLIC,
    maxBodyBytes: 1024 * 1024,
    channels: {
      sms: { provider: 'twilio', secrets: ['s'] },
      email: { provider: 'sendgrid', secrets: ['s'] }
    },
    providers: {
      twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tw-token' },
      sendgrid: { kind: 'sendgrid', baseUrl: fake.url, apiKey: 'key', eventWebhookPublicKeys: [signer.publicKey] },
      mock: { kind: 'mock' }
    }
  })
})

let n = 0
/** Stores a message through Hermes' own format; resolves once dispatch has stored its provider message id. */
async function sent (channel: 'sms' | 'email'): Promise<{ id: string, pmid: string }> {
  n++
  const payload = channel === 'sms'
    ? { id: `r-${n}`, from: '+14155552671', to: `+1555123${String(n).padStart(4, '0')}`, body: 'hi' }
    : { id: `r-${n}`, from: 'alice@example.com', to: `bob${n}@example.com`, body: 'hi' }
  const body = JSON.stringify(payload)
  t.equal((await send('POST', `${h.base}/webhooks/${channel}`, body, seedSignature('s', body))).status, 202)
  return await until('the send to be stored', 15_000, async () => {
    const r = await h.db.query<{ id: string, pmid: string }>("SELECT id::text, provider_message_id AS pmid FROM message WHERE external_id = $1 AND dispatch_status = 'sent' AND provider_message_id IS NOT NULL", [payload.id])
    return r.rows[0]
  })
}

async function twilioCallback (params: Params, token = 'tw-token'): Promise<HttpAnswer> {
  return await send('POST', `${h.base}/callbacks/twilio`, formBody(params), twilioHeaders(token, `${PUBLIC}/callbacks/twilio`, params))
}

async function sendgridEvents (events: unknown[] | string): Promise<HttpAnswer> {
  const body = typeof events === 'string' ? events : JSON.stringify(events) + '\r\n'
  return await send('POST', `${h.base}/callbacks/sendgrid`, body, { ...signer.headers(body) })
}

async function statusOf (id: string): Promise<string | null> {
  return (await h.db.query('SELECT delivery_status FROM message WHERE id = $1', [id])).rows[0]?.delivery_status ?? null
}

async function eventsOf (id: string): Promise<string[]> {
  return (await h.db.query('SELECT event FROM delivery_event WHERE message_id = $1 ORDER BY id', [id])).rows.map((r) => r.event)
}

t.test('the Twilio client asked for status callbacks at publicUrl', async (t) => {
  await sent('sms')
  const request = fake.requests.filter((r) => r.api === 'twilio').at(-1)!
  t.equal(request.body.StatusCallback, `${PUBLIC}/callbacks/twilio`)
})

t.test('Twilio status callbacks move delivery_status forward, each event stored once', async (t) => {
  const { id, pmid } = await sent('sms')
  const callback = (status: string): Params => ({ MessageSid: pmid, SmsSid: pmid, MessageStatus: status, SmsStatus: status, AccountSid: 'AC1', From: '+14155552671', To: '+15551230000', ApiVersion: '2010-04-01' })
  const first = await twilioCallback(callback('sent'))
  t.equal(first.status, 200)
  t.equal(first.json.status, 'stored', 'answered after the commit')
  t.equal(await statusOf(id), 'sent')
  t.equal((await twilioCallback(callback('delivered'))).status, 200)
  t.equal(await statusOf(id), 'delivered')
  t.equal((await twilioCallback(callback('sent'))).status, 200, 'a repeated callback is answered 200')
  t.equal((await twilioCallback(callback('sending'))).status, 200, 'a late one too')
  t.equal(await statusOf(id), 'delivered', 'and neither moves the status back')
  t.same(await eventsOf(id), ['sent', 'delivered', 'sending'], 'each (MessageSid, MessageStatus) stored once')
})

t.test('a final status stays final', async (t) => {
  const { id, pmid } = await sent('sms')
  t.equal((await twilioCallback({ MessageSid: pmid, MessageStatus: 'undelivered', ErrorCode: '30003' })).status, 200)
  t.equal((await twilioCallback({ MessageSid: pmid, MessageStatus: 'delivered' })).status, 200)
  t.equal(await statusOf(id), 'undelivered')
  t.equal((await h.db.query("SELECT error FROM delivery_event WHERE message_id = $1 AND event = 'undelivered'", [id])).rows[0]?.error, '30003')
})

t.test('a callback that beats the API answer is kept and applied once the provider message id is stored', async (t) => {
  const to = '+15559870001'
  fake.scriptFor(to, { status: 201, delayMs: 1500, body: { sid: 'SMearly000000000000000000000000001', status: 'queued', to } })
  const body = JSON.stringify({ id: 'early-1', from: '+14155552671', to, body: 'quick' })
  t.equal((await send('POST', `${h.base}/webhooks/sms`, body, seedSignature('s', body))).status, 202)
  await until('the send to start', 10_000, async () => fake.requestsTo(to).length > 0 ? true : undefined)
  const early = await twilioCallback({ MessageSid: 'SMearly000000000000000000000000001', MessageStatus: 'delivered' })
  t.equal(early.status, 200, 'never an error to the provider')
  const waiting = await h.db.query("SELECT message_id FROM delivery_event WHERE provider_message_id = 'SMearly000000000000000000000000001'")
  t.same(waiting.rows, [{ message_id: null }], 'stored, waiting for its message')
  const status = await until('the waiting receipt to be applied', 15_000, async () => {
    const r = await h.db.query("SELECT delivery_status FROM message WHERE external_id = 'early-1' AND delivery_status IS NOT NULL")
    return r.rows[0]?.delivery_status as string | undefined
  })
  t.equal(status, 'delivered')
})

t.test('SendGrid events find their message by custom_args or X-Message-Id; engagement leaves the status alone', async (t) => {
  const { id, pmid } = await sent('email')
  const mail = fake.requests.filter((r) => r.api === 'sendgrid').at(-1)!
  t.same(mail.body.custom_args, { hermes_message_id: id }, 'the client sent custom_args')
  const base = { email: 'bob@example.com', timestamp: Math.floor(Date.now() / 1000), 'smtp-id': '<x@sendgrid.net>' }
  const events = [
    { ...base, event: 'processed', sg_event_id: `p-${id}`, sg_message_id: `${pmid}.filterdrecv-1`, hermes_message_id: id },
    { ...base, event: 'delivered', sg_event_id: `d-${id}`, sg_message_id: `${pmid}.filterdrecv-1` },
    { ...base, event: 'open', sg_event_id: `o-${id}`, sg_message_id: `${pmid}.filterdrecv-1`, hermes_message_id: id }
  ]
  const body = JSON.stringify(events) + '\r\n'
  const headers = signer.headers(body)
  t.ok(officialVerdict(signer.publicKey, body, headers), "SendGrid's library accepts the signature")
  const answer = await send('POST', `${h.base}/callbacks/sendgrid`, body, headers)
  t.equal(answer.status, 200)
  t.equal(await statusOf(id), 'delivered')
  t.same(await eventsOf(id), ['delivered', 'open', 'processed'])
  t.equal((await sendgridEvents(events)).status, 200, 'the batch again')
  t.equal((await h.db.query('SELECT count(*)::int AS n FROM delivery_event WHERE message_id = $1', [id])).rows[0].n, 3, 'stored once')
  t.equal((await sendgridEvents([{ ...base, event: 'click', sg_event_id: `c-${id}`, hermes_message_id: id }])).status, 200)
  t.equal(await statusOf(id), 'delivered', 'a click is engagement')
  t.equal((await sendgridEvents([{ ...base, event: 'bounce', sg_event_id: `b-${id}`, hermes_message_id: id, reason: '550 no such user' }])).status, 200)
  t.equal(await statusOf(id), 'bounce', 'a bounce after delivery is final')
})

t.test('receipts are counted by provider and status, and delivery time is observed', async (t) => {
  t.ok(await metric(h.base, 'hermes_delivery_receipts_total{provider="twilio",status="delivered"}') >= 1)
  t.ok(await metric(h.base, 'hermes_delivery_receipts_total{provider="sendgrid",status="engagement"}') >= 2)
  t.ok(await metric(h.base, 'hermes_delivery_seconds_count') >= 2)
  t.ok(await metric(h.base, 'hermes_inbound_total{format="twilio-status",outcome="accepted"}') >= 1)
})

t.test('NUL characters and lone surrogates in a payload are stored as U+FFFD, never refused by PostgreSQL', async (t) => {
  const { id, pmid } = await sent('sms')
  t.equal((await twilioCallback({ MessageSid: pmid, MessageStatus: 'sent', RawDlrDoneDate: 'a\u0000b' })).status, 200)
  const body = '[{"event":"open","sg_event_id":"nul-\\u0000-' + id + '","ua":"\\ud800 \\u0000","x\\u0000":1,"hermes_message_id":"' + id + '"}]'
  t.equal((await sendgridEvents(body)).status, 200)
  const rows = (await h.db.query("SELECT event_key, payload FROM delivery_event WHERE provider_message_id = $1 OR event_key LIKE 'nul-%' ORDER BY id", [pmid])).rows
  t.match(rows[0].payload, { RawDlrDoneDate: 'a\ufffdb' })
  t.equal(rows[1].event_key, `nul-\ufffd-${id}`)
  t.match(rows[1].payload, { ua: '\ufffd \ufffd', 'x\ufffd': 1 })
})

t.test('refusals name the problem and store nothing', async (t) => {
  const before = (await h.db.query('SELECT count(*)::int AS n FROM delivery_event')).rows[0].n
  const unknown = await send('POST', `${h.base}/callbacks/nope`, '[]')
  t.match(unknown, { status: 404, json: { error: { code: 'HERMES_ERR_UNKNOWN_PROVIDER' } } })
  t.match(await send('POST', `${h.base}/callbacks/mock`, '[]'), { status: 404 }, 'a provider that sends no receipts')
  t.match(await twilioCallback({ MessageSid: 'SMx', MessageStatus: 'sent' }, 'wrong-token'), { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_INVALID' } } })
  t.match(await twilioCallback({ MessageSid: 'SMx' }), { status: 422, json: { error: { fields: [{ field: 'MessageStatus' }] } } })
  t.match(await sendgridEvents('{"event":"delivered"}'), { status: 400, json: { error: { code: 'HERMES_ERR_NOT_AN_ARRAY' } } })
  t.match(await sendgridEvents('[{"event":'), { status: 400, json: { error: { code: 'HERMES_ERR_MALFORMED_JSON' } } })
  t.match(await sendgridEvents([{ event: 'delivered' }]), { status: 422, json: { error: { fields: [{ field: '[0].sg_event_id' }] } } })
  const batch = Array.from({ length: 10_001 }, (_, i) => ({ event: 'open', sg_event_id: `x${i}` }))
  t.match(await sendgridEvents(batch), { status: 413, json: { error: { code: 'HERMES_ERR_BATCH_TOO_LARGE' } } })
  const body = '[{"event":"delivered","sg_event_id":"forged"}]'
  t.match(await send('POST', `${h.base}/callbacks/sendgrid`, body, { ...signer.headers('[]') }), { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_INVALID' } } })
  t.match(await send('POST', `${h.base}/callbacks/sendgrid`, body, { 'x-twilio-email-event-webhook-signature': 'not base64!', 'x-twilio-email-event-webhook-timestamp': '1' }),
    { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_MALFORMED' } } })
  t.match(await send('POST', `${h.base}/callbacks/sendgrid`, body), { status: 401, json: { error: { code: 'HERMES_ERR_SIGNATURE_MISSING' } } })
  t.match(await send('GET', `${h.base}/callbacks/twilio`), { status: 405 })
  t.equal((await h.db.query('SELECT count(*)::int AS n FROM delivery_event')).rows[0].n, before, 'nothing stored')
})

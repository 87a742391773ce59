// Each provider client speaks its API as documented: path, auth, encoding, fields, and reads the provider's id.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { resolveConfig, type ProviderConfig } from '../src/config.js'
import { createProviderClient, loadProviderClients, type OutboundMessage } from '../src/dispatch/providers/index.js'
import { startFakeProvider } from '../src/harness/fake-provider.js'

const fake = await startFakeProvider(t)

function provider (name: string, fields: Record<string, unknown>, top: Record<string, unknown> = {}): ProviderConfig {
  const config = resolveConfig({
    channels: { sms: { provider: name, secrets: ['s'] } },
    providers: { [name]: { baseUrl: fake.url, concurrency: 2, timeoutMs: 2000, ...fields } },
    ...top
  }, {})
  return config.providers[name]!
}

function message (fields: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    id: '42',
    externalId: 'ext-42',
    channel: 'mms',
    type: 'mms',
    from: '+14155552671',
    to: '+12125551234',
    body: 'hi & bye = ünïcödé 🎉',
    attachments: ['https://cdn.example.com/a.png', 's3://bucket/b.jpg'],
    sentAt: '2026-11-29T10:00:00.000Z',
    ...fields
  }
}

t.test('twilio: form-encoded POST to the account Messages.json with basic auth and one MediaUrl per attachment', async (t) => {
  const client = await createProviderClient(provider('twilio', { kind: 'twilio', accountSid: 'AC123', authToken: 'tok' }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  const result = await client.send(message())
  const req = fake.requests[before]!
  t.equal(req.method, 'POST')
  t.equal(req.path, '/2010-04-01/Accounts/AC123/Messages.json')
  t.equal(req.headers['authorization'], `Basic ${Buffer.from('AC123:tok').toString('base64')}`)
  t.equal(req.headers['content-type'], 'application/x-www-form-urlencoded')
  t.same(req.body, {
    To: '+12125551234',
    From: '+14155552671',
    Body: 'hi & bye = ünïcödé 🎉',
    MediaUrl: ['https://cdn.example.com/a.png', 's3://bucket/b.jpg']
  })
  t.match(result, { ok: true, providerMessageId: /^SM[0-9a-f]{32}$/ }, "the 201's sid is the provider message id")
})

t.test('twilio: an SMS without attachments sends no MediaUrl; a configured From wins over the sender', async (t) => {
  const client = await createProviderClient(provider('twilio', { kind: 'twilio', accountSid: 'AC123', authToken: 'tok', from: '+15005550006' }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  await client.send(message({ attachments: [], type: 'sms' }))
  const req = fake.requests[before]!
  t.same(req.body, { To: '+12125551234', From: '+15005550006', Body: 'hi & bye = ünïcödé 🎉' })
})

t.test('twilio: with publicUrl set every message asks for status callbacks at /callbacks/{provider}', async (t) => {
  const client = await createProviderClient(provider('tw', { kind: 'twilio', accountSid: 'AC123', authToken: 'tok' }, { publicUrl: 'https://hermes.example.com/' }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  await client.send(message({ attachments: [], type: 'sms' }))
  t.equal(fake.requests[before]!.body.StatusCallback, 'https://hermes.example.com/callbacks/tw')
})

t.test('sendgrid: JSON to /v3/mail/send with a bearer key; the id is X-Message-Id', async (t) => {
  const client = await createProviderClient(provider('sendgrid', { kind: 'sendgrid', apiKey: 'SG.key' }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  const result = await client.send(message({ type: 'email', from: 'alice@example.com', to: 'bob@example.com', body: 'Lunch?\nAt noon.' }))
  const req = fake.requests[before]!
  t.equal(req.path, '/v3/mail/send')
  t.equal(req.headers['authorization'], 'Bearer SG.key')
  t.equal(req.headers['content-type'], 'application/json')
  t.same(req.body, {
    personalizations: [{ to: [{ email: 'bob@example.com' }] }],
    from: { email: 'alice@example.com' },
    subject: 'Lunch?',
    content: [{ type: 'text/plain', value: 'Lunch?\nAt noon.\n\nAttachments:\nhttps://cdn.example.com/a.png\ns3://bucket/b.jpg' }],
    custom_args: { hermes_message_id: '42' }
  })
  t.match(result, { ok: true, providerMessageId: /^[\w-]{10,}$/ })
})

t.test('sendgrid: a configured from address wins; an empty body still has a subject and content', async (t) => {
  const client = await createProviderClient(provider('sendgrid', { kind: 'sendgrid', apiKey: 'k', from: 'noreply@hermes.example' }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  await client.send(message({ type: 'email', from: 'alice@example.com', to: 'bob@example.com', body: '', attachments: [] }))
  const req = fake.requests[before]!
  t.same(req.body.from, { email: 'noreply@hermes.example' })
  t.equal(req.body.subject, '(no subject)')
  t.same(req.body.content, [{ type: 'text/plain', value: ' ' }], 'SendGrid refuses an empty value')
})

t.test('http: the seed JSON shape to /api/messages with a bearer key and an idempotency key', async (t) => {
  const client = await createProviderClient(provider('generic', { kind: 'http', apiKey: 'k1' }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  const result = await client.send(message())
  const req = fake.requests[before]!
  t.equal(req.path, '/api/messages')
  t.equal(req.headers['authorization'], 'Bearer k1')
  t.equal(req.headers['idempotency-key'], 'hermes-42')
  t.same(req.body, {
    from: '+14155552671',
    to: '+12125551234',
    type: 'mms',
    body: 'hi & bye = ünïcödé 🎉',
    attachments: ['https://cdn.example.com/a.png', 's3://bucket/b.jpg'],
    timestamp: '2026-11-29T10:00:00.000Z'
  })
  t.match(result, { ok: true, providerMessageId: /^msg-/ })
})

t.test('a base URL with a path prefix keeps its prefix', async (t) => {
  const client = await createProviderClient(provider('prefixed', { kind: 'http', apiKey: 'k', baseUrl: `${fake.url}/gateway/` }))
  t.teardown(() => client.close())
  const before = fake.requests.length
  await client.send(message())
  t.equal(fake.requests[before]!.path, '/gateway/api/messages')
})

t.test('mock: no network, a fresh id each time', async (t) => {
  const client = await createProviderClient(provider('mock', { kind: 'mock' }))
  const before = fake.requests.length
  const one = await client.send(message())
  const two = await client.send(message())
  t.equal(fake.requests.length, before, 'nothing reached the network')
  t.match(one, { ok: true, providerMessageId: /^mock-/ })
  t.not((one as { providerMessageId: string }).providerMessageId, (two as { providerMessageId: string }).providerMessageId)
})

t.test('a kind\'s client module loads only when a provider of that kind is configured', async (t) => {
  // undici is CommonJS, so a child process's require.cache tells whether it was loaded (it costs the dispatch thread ~0.2 s of CPU).
  const script = `
    import { createRequire } from 'node:module'
    const { loadProviderClients } = await import(${JSON.stringify(new URL('../src/dispatch/providers/index.js', import.meta.url).href)})
    const undici = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/undici/'))
    await loadProviderClients(['mock'])
    const afterMock = undici()
    await loadProviderClients(['twilio'])
    console.log(JSON.stringify({ afterMock, afterTwilio: undici() }))`
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.same(JSON.parse(child.stdout || '{}'), { afterMock: false, afterTwilio: true }, `mock alone loads no HTTP client ${child.stderr}`)
  const mockOnly = await loadProviderClients(['mock'])
  t.throws(() => mockOnly(provider('tw', { kind: 'twilio', accountSid: 'AC1', authToken: 't' })), /provider kind "twilio" was not among the kinds loaded/)
  await t.rejects(loadProviderClients(['smoke' as never]), /unknown provider kind "smoke"/)
})

t.test('answers become outcomes', async (t) => {
  const client = await createProviderClient(provider('twilio', { kind: 'twilio', accountSid: 'AC1', authToken: 't', timeoutMs: 300 }))
  t.teardown(() => client.close())
  const cases: Array<[string, Parameters<typeof fake.script>[0], Record<string, unknown>]> = [
    ['400 is permanent, with the provider\'s message and code', { status: 400, body: { code: 21211, message: "The 'To' number is not a valid phone number.", status: 400 } },
      { ok: false, retryable: false, reason: "HTTP 400 Bad Request: The 'To' number is not a valid phone number. (code 21211)" }],
    ['401 is permanent', { status: 401, body: 'nope' }, { ok: false, retryable: false, reason: 'HTTP 401 Unauthorized: nope' }],
    ['500 is retryable', { status: 500, body: '' }, { ok: false, retryable: true, reason: 'HTTP 500 Internal Server Error' }],
    ['503 with Retry-After is retryable after that long', { status: 503, headers: { 'retry-after': '7' } }, { ok: false, retryable: true, retryAfterMs: 7000 }],
    ['429 is retryable, rate-limited, with its Retry-After', { status: 429, headers: { 'retry-after': '1' }, body: { message: 'Too Many Requests' } },
      { ok: false, retryable: true, rateLimited: true, retryAfterMs: 1000 }],
    ['a timeout is retryable', { delayMs: 1000 }, { ok: false, retryable: true, reason: /^timeout: no complete answer within 300 ms/ }],
    ['a connection dropped before any answer is retryable', { close: 'before-response' }, { ok: false, retryable: true }],
    ['a 500 cut off mid-body is retryable', { status: 500, close: 'mid-response', body: '{"message":"oops, this is long"}' }, { ok: false, retryable: true }],
    ['a 201 cut off mid-body was accepted: sent, no id, a note', { status: 201, close: 'mid-response' },
      { ok: true, providerMessageId: null, note: /accepted the message \(HTTP 201\) but its answer broke off/ }],
    ['a 201 with malformed JSON was accepted: sent, no id, a note', { status: 201, body: '{"sid": SM-not-json' },
      { ok: true, providerMessageId: null, note: 'provider accepted the message (HTTP 201) but its answer had no readable sid' }],
    ['a 301 is permanent (a wrong base URL is not fixed by retrying)', { status: 301, headers: { location: 'https://elsewhere' } }, { ok: false, retryable: false }]
  ]
  for (const [name, reply, expected] of cases) {
    fake.script(reply)
    t.match(await client.send(message()), expected, name)
  }
})

t.test('a refused connection is retryable and names the error', async (t) => {
  const client = await createProviderClient(provider('refused', { kind: 'http', apiKey: 'k', baseUrl: 'http://127.0.0.1:1' }))
  t.teardown(() => client.close())
  t.match(await client.send(message()), { ok: false, retryable: true, reason: /^ECONNREFUSED/ })
})

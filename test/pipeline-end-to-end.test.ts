// The whole pipeline: a signed webhook is stored, answered 202, and delivered through its channel's provider.
import t from 'tap'
import { send, smsPayload, startTestHermes } from './helpers/hermes.js'
import { startFakeProvider } from '../src/harness/fake-provider.js'
import { spawnHermes, writeConfigFile } from './helpers/process.js'
import { until } from '../src/harness/wait.js'

const fake = await startFakeProvider(t)
const h = await startTestHermes(t, {
  channels: {
    sms: { provider: 'twilio', secrets: ['test-secret'] },
    mms: { provider: 'twilio', secrets: ['test-secret'] },
    email: { provider: 'sendgrid', secrets: ['test-secret'] }
  },
  providers: {
    twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 } },
    sendgrid: { kind: 'sendgrid', baseUrl: fake.url, apiKey: 'key', from: 'noreply@example.com' }
  }
})

t.test('a stored webhook is delivered to its provider and its dispatch state is kept', async (t) => {
  const payload = smsPayload({ to: '+15551230001', attachments: ['https://cdn.example.com/p.png'] })
  t.equal((await h.postSigned('mms', payload)).status, 202)
  const row = await until('the message to be sent', 10_000, async () => {
    const r = await h.db.query("SELECT dispatch_status, provider_message_id, dispatch_attempts FROM message WHERE external_id = $1 AND dispatch_status = 'sent'", [payload['id']])
    return r.rows[0]
  })
  t.match(row['provider_message_id'], /^SM/)
  t.equal(row['dispatch_attempts'], 1)
  const delivered = fake.requestsTo('+15551230001')
  t.equal(delivered.length, 1, 'sent exactly once')
  t.same(delivered[0]!.body, { To: '+15551230001', From: '+14155552671', Body: payload['body'], MediaUrl: 'https://cdn.example.com/p.png' })
})

t.test('a message the provider refuses becomes a dead letter, and the redispatch command re-queues it', async (t) => {
  fake.scriptFor('+15551230002', { status: 400, body: { code: 21211, message: "The 'To' number is not a valid phone number." } })
  const payload = smsPayload({ to: '+15551230002' })
  t.equal((await h.postSigned('sms', payload)).status, 202)
  const failed = await until('the message to fail', 10_000, async () => {
    const r = await h.db.query("SELECT last_error FROM message WHERE external_id = $1 AND dispatch_status = 'failed'", [payload['id']])
    return r.rows[0]
  })
  t.match(failed['last_error'], /400/)

  const config = writeConfigFile(t.testdir(), {
    database: { url: h.db.url },
    logLevel: 'info',
    channels: { sms: { provider: 'twilio', secrets: ['x'] }, mms: { provider: 'twilio', secrets: ['x'] }, email: { provider: 'sendgrid', secrets: ['x'] } },
    providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok' }, sendgrid: { kind: 'sendgrid', baseUrl: fake.url, apiKey: 'key' } }
  })
  const run = spawnHermes(t, ['redispatch', '--status', 'failed', '--provider', 'twilio', '--config', config])
  const done = await run.waitForLog((e) => e['msg'] === 'messages re-queued for dispatch')
  t.equal(done['count'], 1)
  t.equal((await run.exited).code, 0)
  await until('the re-queued message to be sent', 10_000, async () => {
    const r = await h.db.query("SELECT 1 FROM message WHERE external_id = $1 AND dispatch_status = 'sent'", [payload['id']])
    return r.rows[0]
  })
  t.equal(fake.requestsTo('+15551230002').length, 2, 'one refused attempt, one delivery after redispatch')
})

t.test('readyz stays 200 while dispatch runs', async (t) => {
  t.equal((await send('GET', `${h.base}/readyz`)).status, 200)
})

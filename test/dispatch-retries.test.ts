// Failed sends are retried with backoff (Retry-After wins), permanent failures and exhausted retries end in 'failed'
// with the reason, and redispatch replays them: the wiring, through real HTTP and PostgreSQL. The delays' arithmetic is
// pinned on a fake clock in test/lane-core.test.ts; the Retry-After checks here are lower bounds, which load cannot break.
import t from 'tap'
import pg from 'pg'
import { redispatch } from '../src/dispatch/redispatch.js'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { until } from '../src/harness/wait.js'

const fake = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' }, email: { provider: 'sendgrid' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 4, timeoutMs: 300,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 }
    },
    sendgrid: {
      kind: 'sendgrid', baseUrl: fake.url, apiKey: 'k', concurrency: 4, timeoutMs: 300,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 }
    }
  }
})
await fx.startDispatcher({ pollMs: 100 })

t.test('a 500 then a success: delivered on the second attempt', async (t) => {
  const to = '+12125550001'
  fake.scriptFor(to, { status: 500, body: { message: 'try later' } })
  const [id] = await fx.insert('sms', 1, { to })
  const row = (await fx.waitForStatus([id!], 'sent')).get(id!)!
  t.equal(fake.requestsTo(to).length, 2)
  t.equal(row.attempts, 2, 'both sends counted')
  t.match(row.providerMessageId, /^SM/)
  t.equal(row.lastError, null, 'a delivered message carries no error')
  t.ok(row.dispatchedAt)
})

t.test('a 429 with Retry-After: 1: the next attempt comes at least a second later, and counts as an attempt', async (t) => {
  const to = '+12125550002'
  fake.scriptFor(to, { status: 429, headers: { 'retry-after': '1' }, body: { message: 'Too Many Requests', code: 20429 } })
  const [id] = await fx.insert('sms', 1, { to })
  const row = (await fx.waitForStatus([id!], 'sent')).get(id!)!
  const [first, second] = fake.requestsTo(to)
  t.ok(second!.at - first!.at >= 1000, `second attempt ${second!.at - first!.at} ms after the first`)
  t.equal(row.attempts, 2, 'the 429 and the successful send both count against maxAttempts')
})

t.test('a 429 slows the whole provider down: nothing else goes to it until Retry-After has passed', async (t) => {
  const to = '+12125550012'
  fake.scriptFor(to, { status: 429, headers: { 'retry-after': '1' } })
  const [id] = await fx.insert('sms', 1, { to })
  await until('the 429 to be stored', 10_000, async () => (await fx.rows([id!])).get(id!)!.lastError ?? undefined)
  t.match((await fx.rows([id!])).get(id!)!.lastError, /^HTTP 429 Too Many Requests/, 'the 429 is stored before the others are inserted')
  const others = await fx.insert('sms', 3, { to: (i) => `+1212555002${i}` })
  await fx.waitForStatus([id!, ...others], 'sent')
  const limitedAt = fake.requestsTo(to)[0]!.at
  const next = others.map((_, i) => fake.requestsTo(`+1212555002${i}`)[0]!.at)
  t.ok(next.every((at) => at >= limitedAt + 1000), `the other messages went out ${Math.min(...next) - limitedAt} ms after the 429`)
})

t.test('a 400 fails at once, with the reason in last_error', async (t) => {
  const to = '+12125550003'
  fake.scriptFor(to, { status: 400, body: { code: 21211, message: "The 'To' number +12125550003 is not a valid phone number." } })
  const [id] = await fx.insert('sms', 1, { to })
  const row = (await fx.waitForStatus([id!], 'failed')).get(id!)!
  t.equal(row.lastError, "HTTP 400 Bad Request: The 'To' number +12125550003 is not a valid phone number. (code 21211)")
  t.equal(row.attempts, 1)
  t.equal(fake.requestsTo(to).length, 1, 'never retried')
  t.equal(row.claimedUntil, null, 'no claim left behind')
})

t.test('a timeout is retried', async (t) => {
  const to = '+12125550004'
  fake.scriptFor(to, { delayMs: 1000 })
  const [id] = await fx.insert('sms', 1, { to })
  const row = (await fx.waitForStatus([id!], 'sent')).get(id!)!
  t.equal(fake.requestsTo(to).length, 2)
  t.equal(row.attempts, 2)
})

t.test('a 201 with a broken body counts as sent: no second SMS, no id, a note', async (t) => {
  const to = '+12125550005'
  fake.scriptFor(to, { status: 201, body: 'not json' })
  const [id] = await fx.insert('sms', 1, { to })
  const row = (await fx.waitForStatus([id!], 'sent')).get(id!)!
  t.equal(fake.requestsTo(to).length, 1)
  t.equal(row.providerMessageId, null)
  t.equal(row.lastError, 'provider accepted the message (HTTP 201) but its answer had no readable sid')
})

t.test('after maxAttempts retryable failures the message is failed (the dead letter) with the last reason', async (t) => {
  const to = '+12125550006'
  const boom = { status: 503, body: { message: 'upstream down' } }
  fake.scriptFor(to, boom, boom, boom, boom)
  const [id] = await fx.insert('sms', 1, { to })
  const row = (await fx.waitForStatus([id!], 'failed')).get(id!)!
  t.equal(fake.requestsTo(to).length, 3, 'exactly maxAttempts sends')
  t.equal(row.attempts, 3)
  t.equal(row.lastError, 'gave up after 3 attempts: HTTP 503 Service Unavailable: upstream down')
})

t.test('redispatch puts failed messages back, optionally for one provider, and they are delivered', async (t) => {
  const sms = '+12125550007'
  const mail = 'dead@example.com'
  fake.scriptFor(sms, { status: 400, body: { message: 'bad' } })
  fake.scriptFor(mail, { status: 400, body: { errors: [{ message: 'bad' }] } })
  const [smsId] = await fx.insert('sms', 1, { to: sms })
  const [mailId] = await fx.insert('email', 1, { to: mail })
  await fx.waitForStatus([smsId!, mailId!], 'failed')

  const client = new pg.Client({ connectionString: fx.db.url })
  await client.connect()
  t.teardown(() => client.end())
  const failedBefore = (await fx.db.query("SELECT count(*)::int AS n FROM message m JOIN channel c ON c.id = m.channel_id WHERE dispatch_status = 'failed' AND c.name = 'email'")).rows[0]!['n']
  t.equal(await redispatch(client, { status: 'failed', provider: 'sendgrid' }), failedBefore, 'only the sendgrid messages')
  const mailRow = (await fx.waitForStatus([mailId!], 'sent')).get(mailId!)!
  t.equal(mailRow.lastError, null)
  t.equal(mailRow.attempts, 1, 'a fresh retry budget')
  t.equal((await fx.rows([smsId!])).get(smsId!)!.status, 'failed', 'the twilio message is untouched')

  t.ok(await redispatch(client, { status: 'failed' }) >= 1, 'all providers')
  await fx.waitForStatus([smsId!], 'sent')
  t.equal(fake.requestsTo(sms).length, 2)

  await t.rejects(redispatch(client, { status: 'failed', provider: 'nope' }), { code: 'HERMES_ERR_UNKNOWN_PROVIDER', message: 'no provider named "nope" in the database' })
  await t.rejects(redispatch(client, { status: 'sent' as 'failed' }), new TypeError('redispatch only replays status "failed", not "sent"'))
})

// Back-pressure end to end: a stalled database fills the writer queue, then the ring, then the front end answers 503.
import t from 'tap'
import pg from 'pg'
import { send, smsPayload, startTestHermes } from './helpers/hermes.js'

// Each subtest has its own Hermes and database, so they run side by side.
t.jobs = 3

t.test('a full ring answers 503 with Retry-After, and everything accepted is stored once the database moves again', async (t) => {
  const h = await startTestHermes(t, {
    buffer: { maxMessages: 4, maxBytes: 2 * (65536 + 4096) },
    taskRecords: 1,
    workers: 1,
    writer: { maxBatchRows: 1, maxBatchDelayMs: 0, maxQueuedRows: 1 }
  })
  // Stall the writer: its merge needs the message table, which this transaction holds.
  const locker = new pg.Client({ connectionString: h.db.url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE message IN ACCESS EXCLUSIVE MODE')

  const payloads = Array.from({ length: 30 }, () => smsPayload())
  const pending = payloads.map(async (p) => await h.postSigned('sms', p))
  // Requests beyond writer queue + tasks in flight + ring capacity are refused at once.
  const refused = await Promise.race([
    Promise.any(pending.map(async (p) => { const a = await p; if (a.status === 503) return a; throw new Error('not 503') })),
    new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('no 503 within 10 s')), 10_000))
  ])
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '1', 'Retry-After in whole seconds')
  t.equal(refused.json.error.code, 'HERMES_ERR_BUFFER_FULL')
  t.ok(h.hermes.ring.usedRecords <= 4, 'the ring never holds more than its capacity')

  await locker.query('COMMIT')
  const answers = await Promise.all(pending)
  const accepted = payloads.filter((_, i) => answers[i]!.status === 202).map((p) => p['id'])
  const rejected = payloads.filter((_, i) => answers[i]!.status === 503).map((p) => p['id'])
  t.ok(accepted.length >= 4, `some were accepted (${accepted.length})`)
  t.equal(accepted.length + rejected.length, 30, 'every request got 202 or 503, none hung')
  const stored = await h.db.query('SELECT external_id FROM message WHERE external_id = ANY($1)', [payloads.map((p) => p['id'])])
  t.same(stored.rows.map((r) => r['external_id']).sort(), accepted.sort(), 'exactly the 202s are stored')
})

t.test('a durable request whose commit takes longer than the ack timeout gets 503, and its retry is deduplicated', async (t) => {
  // 2 s: the retry below must commit within it while the other subtests load the same process.
  const h = await startTestHermes(t, { ackTimeoutMs: 2000 })
  const locker = new pg.Client({ connectionString: h.db.url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE message IN ACCESS EXCLUSIVE MODE')
  const payload = smsPayload()
  const answer = await h.postSigned('sms', payload)
  t.equal(answer.status, 503)
  t.equal(answer.json.error.code, 'HERMES_ERR_ACK_TIMEOUT')
  t.ok(answer.headers['retry-after'])
  await locker.query('COMMIT')
  const retry = await h.postSigned('sms', payload)
  t.equal(retry.status, 202, `the retry is accepted ${retry.text}`)
  const stored = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', [payload['id']])
  t.equal(stored.rows[0]!['n'], 1, 'and the message is stored once')
})

t.test('the ring wraps around many times under steady traffic without losing or mixing records', async (t) => {
  const h = await startTestHermes(t, { maxBodyBytes: 1024, buffer: { maxMessages: 64, maxBytes: 10240 } })
  const payloads = Array.from({ length: 300 }, (_, i) => smsPayload({ body: `wrap ${i} ${'z'.repeat(i % 200)}` }))
  for (let i = 0; i < payloads.length; i += 20) {
    const answers = await Promise.all(payloads.slice(i, i + 20).map(async (p) => await h.postSigned('sms', p)))
    for (const a of answers) if (a.status !== 202) t.fail(`unexpected ${a.status} ${a.text}`)
  }
  t.ok(h.hermes.ring.written >= 300)
  const stored = await h.db.query('SELECT external_id, body FROM message WHERE external_id = ANY($1)', [payloads.map((p) => p['id'])])
  const byId = new Map(stored.rows.map((r) => [r['external_id'], r['body']]))
  t.equal(byId.size, 300)
  t.ok(payloads.every((p) => byId.get(p['id']) === p['body']), 'every body is intact')
  t.equal(h.hermes.ring.usedRecords, 0, 'the ring is empty again')
  t.equal((await send('GET', `${h.base}/readyz`)).status, 200)
})

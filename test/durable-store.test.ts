// What a durable 202 promises: the message, its parties, conversation and attachments are committed when it arrives.
import t from 'tap'
import { smsPayload, startTestHermes } from './helpers/hermes.js'
import { standardSignature } from '../src/harness/sign.js'

const h = await startTestHermes(t)

async function messageRow (externalId: string): Promise<Record<string, any> | undefined> {
  const result = await h.db.query(
    `SELECT m.*, ch.name AS channel, s.address AS sender, r.address AS recipient
       FROM message m JOIN channel ch ON ch.id = m.channel_id
       JOIN party s ON s.id = m.sender_id JOIN party r ON r.id = m.recipient_id
      WHERE m.external_id = $1`, [externalId])
  return result.rows[0]
}

t.test('a 202 message is already in the database when the 202 arrives', async (t) => {
  const payload = smsPayload({ body: 'tab\there, newline\nthere, backslash \\ and ünïcödé 🎉', timestamp: '2026-11-29T10:00:00+02:00' })
  const answer = await h.postSigned('sms', payload)
  t.equal(answer.status, 202)
  const row = await messageRow(payload['id'] as string)
  t.ok(row, 'stored before the answer')
  t.equal(row!['body'], payload['body'], 'the body survives COPY escaping byte for byte')
  t.equal(row!['sender'], '+14155552671')
  t.equal(row!['recipient'], '+12125551234')
  t.equal(row!['channel'], 'sms')
  t.equal(new Date(row!['sent_at']).toISOString(), '2026-11-29T08:00:00.000Z')
  t.match(row!['dispatch_status'], /^(pending|sending|sent)$/, 'queued for dispatch (or already delivered by the mock provider)')
})

t.test('A→B and B→A land in one conversation with an ordered pair', async (t) => {
  const a = '+15550001111'
  const b = '+15550002222'
  const first = smsPayload({ from: a, to: b })
  const second = smsPayload({ from: b, to: a })
  t.equal((await h.postSigned('sms', first)).status, 202)
  t.equal((await h.postSigned('sms', second)).status, 202)
  const one = await messageRow(first['id'] as string)
  const two = await messageRow(second['id'] as string)
  t.equal(one!['conversation_id'], two!['conversation_id'])
  const conv = await h.db.query('SELECT party_a_id < party_b_id AS ordered FROM conversation WHERE id = $1', [one!['conversation_id']])
  t.equal(conv.rows[0]!['ordered'], true)
  const parties = await h.db.query('SELECT count(*)::int AS n FROM party WHERE phone IN ($1, $2)', [a, b])
  t.equal(parties.rows[0]!['n'], 2, 'one party per address')
})

t.test('email addresses are stored lower-cased and are the same party whatever their case', async (t) => {
  const one = { id: 'mail-1', from: 'Alice@Example.COM', to: 'bob@example.com', body: 'hi' }
  const two = { id: 'mail-2', from: 'BOB@example.com', to: 'alice@example.com', body: 'hello' }
  t.equal((await h.postSigned('email', one)).status, 202)
  t.equal((await h.postSigned('email', two)).status, 202)
  const row = await messageRow('mail-1')
  t.equal(row!['sender'], 'alice@example.com')
  const parties = await h.db.query("SELECT email FROM party WHERE email LIKE '%@example.com' ORDER BY email")
  t.same(parties.rows.map((r) => r['email']), ['alice@example.com', 'bob@example.com'])
  t.equal((await messageRow('mail-2'))!['conversation_id'], row!['conversation_id'])
})

t.test('attachments are stored in order', async (t) => {
  const payload = smsPayload({ attachments: ['https://cdn.example.com/a.png', 's3://bucket/key.jpg', 'http://x.example/c?d=e'] })
  t.equal((await h.postSigned('mms', payload)).status, 202)
  const rows = await h.db.query(
    'SELECT a.position, a.url FROM attachment a JOIN message m ON m.id = a.message_id WHERE m.external_id = $1 ORDER BY a.position', [payload['id']])
  t.same(rows.rows.map((r) => r['url']), payload['attachments'])
})

t.test('the same (channel, id) posted again is answered 202 and stored once', async (t) => {
  const payload = smsPayload({ attachments: ['https://cdn.example.com/once.png'] })
  const answers = await Promise.all([1, 2, 3].map(async () => await h.postSigned('sms', payload)))
  answers.push(await h.postSigned('sms', payload))
  for (const answer of answers) t.equal(answer.status, 202)
  const count = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', [payload['id']])
  t.equal(count.rows[0]!['n'], 1)
  const attachments = await h.db.query('SELECT count(*)::int AS n FROM attachment a JOIN message m ON m.id = a.message_id WHERE m.external_id = $1', [payload['id']])
  t.equal(attachments.rows[0]!['n'], 1)
  t.equal((await h.postSigned('mms', payload)).status, 202, 'the same id on another channel is another message')
  const both = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', [payload['id']])
  t.equal(both.rows[0]!['n'], 2)
})

t.test('the seed name xillio_id is accepted as the id', async (t) => {
  const payload = { xillio_id: 'seed-style-1', from: '+14155550100', to: '+14155550101', body: 'seed' }
  t.equal((await h.postSigned('sms', payload)).status, 202)
  t.ok(await messageRow('seed-style-1'))
})

t.test('without an id, the webhook-id header stands in, and without that the SHA-256 of the body', async (t) => {
  const body = JSON.stringify({ from: '+14155550200', to: '+14155550201', body: 'no id here' })
  const headers = standardSignature('test-secret', body, 'msg_header_id_1')
  t.equal((await h.post('sms', body, headers)).status, 202)
  t.ok(await messageRow('msg_header_id_1'), 'webhook-id became the external id')
  const again = standardSignature('test-secret', body, 'msg_header_id_1')
  t.equal((await h.post('sms', body, again)).status, 202, 'a redelivery is accepted')
  const count = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', ['msg_header_id_1'])
  t.equal(count.rows[0]!['n'], 1, 'and stored once')

  const bare = JSON.stringify({ from: '+14155550300', to: '+14155550301', body: 'hash me' })
  t.equal((await h.postSigned('sms', bare)).status, 202)
  t.equal((await h.postSigned('sms', bare)).status, 202)
  const { createHash } = await import('node:crypto')
  const digest = createHash('sha256').update(bare).digest('hex')
  const hashed = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = $1', [digest])
  t.equal(hashed.rows[0]!['n'], 1)
})

t.test('Standard Webhooks signatures, secret rotation and stale timestamps over HTTP', async (t) => {
  const payload = { id: 'std-1', from: 'carol@example.com', to: 'dave@example.com', body: 'std' }
  const body = JSON.stringify(payload)
  t.equal((await h.post('email', body, standardSignature('second-secret', body, 'std-1'))).status, 202, 'the second active secret matches')
  const other = await h.post('email', body, standardSignature('rotated-out-secret', body, 'std-1'))
  t.equal(other.status, 401, 'a secret that is not active does not match')
  const stale = await h.post('email', body, standardSignature('test-secret', body, 'std-1', Math.floor(Date.now() / 1000) - 3600))
  t.equal(stale.status, 401)
  t.equal(stale.json.error.code, 'HERMES_ERR_TIMESTAMP_STALE')
  const future = await h.post('email', body, standardSignature('test-secret', body, 'std-1', Math.floor(Date.now() / 1000) + 3600))
  t.equal(future.json.error.code, 'HERMES_ERR_TIMESTAMP_STALE')
})

t.test('rejected webhooks leave no rows behind and do not disturb good ones sent alongside', async (t) => {
  const good = Array.from({ length: 20 }, () => smsPayload())
  const answers = await Promise.all([
    ...good.map(async (p) => await h.postSigned('sms', p)),
    ...Array.from({ length: 20 }, async (_, i) => await h.postSigned('sms', { id: `bad-${i}`, from: 'nope', to: '+1' })),
    ...Array.from({ length: 20 }, async (_, i) => await h.post('sms', { id: `unsigned-${i}`, from: '+14155550001', to: '+14155550002' }))
  ])
  t.same(answers.slice(0, 20).map((a) => a.status), Array(20).fill(202))
  t.same(answers.slice(20, 40).map((a) => a.status), Array(20).fill(422))
  t.same(answers.slice(40).map((a) => a.status), Array(20).fill(401))
  const stored = await h.db.query("SELECT count(*)::int AS n FROM message WHERE external_id LIKE 'bad-%' OR external_id LIKE 'unsigned-%'")
  t.equal(stored.rows[0]!['n'], 0)
})

t.test('every message references an existing channel, conversation and parties (integrity without FKs)', async (t) => {
  const orphans = await h.db.query(`
    SELECT count(*)::int AS n FROM message m
    WHERE NOT EXISTS (SELECT 1 FROM channel c WHERE c.id = m.channel_id)
       OR NOT EXISTS (SELECT 1 FROM conversation c WHERE c.id = m.conversation_id
                      AND c.party_a_id = least(m.sender_id, m.recipient_id) AND c.party_b_id = greatest(m.sender_id, m.recipient_id))
       OR NOT EXISTS (SELECT 1 FROM party p WHERE p.id = m.sender_id)
       OR NOT EXISTS (SELECT 1 FROM party p WHERE p.id = m.recipient_id)`)
  t.equal(orphans.rows[0]!['n'], 0)
  const total = await h.db.query('SELECT count(*)::int AS n FROM message')
  t.ok(total.rows[0]!['n'] >= 30, `over everything this file stored (${total.rows[0]!['n']})`)
})

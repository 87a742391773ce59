// Pre-claims (src/preclaim-credit.ts): while dispatch has room and nothing older is due, the writer
// inserts new messages already claimed for it and hands them over, so they need no claim statement.
// They must reach the provider exactly as claimed ones do, exactly once, within the credit granted,
// and a stop must leave none of them claimed.
import t from 'tap'
import { creditSlotOf, CreditLedger } from '../src/preclaim-credit.js'
import { Preclaimer } from '../src/store/preclaim-batch.js'
import { busiestWindow, dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { metric, smsPayload, startTestHermes, type TestHermes } from './helpers/hermes.js'
import { postAll, type Webhook } from './helpers/load.js'
import { until } from '../src/harness/wait.js'

// The subtests are independent (each its own Hermes and database, its own recipients at the shared fake
// provider), so most run side by side: their time goes to waiting on rate limits and polls.
t.jobs = 4
const sideBySide: Array<Promise<unknown>> = []
const fake = await startFakeProvider(t)

/**
 * Posts one webhook and waits until it is sent: by then dispatch has made its first claim, found
 * nothing more due and granted the writer credit (webhooks racing its start are simply claimed).
 */
async function untilDispatchIsIdle (h: TestHermes): Promise<void> {
  const payload = smsPayload({ to: '+15550000000' })
  if ((await h.postSigned('sms', payload)).status !== 202) throw new Error('the first webhook was not accepted')
  await until('the first webhook to be sent', 10_000, async () => {
    const { rows } = await h.db.query("SELECT 1 FROM message WHERE external_id = $1 AND dispatch_status = 'sent'", [payload['id']])
    return rows[0]
  })
}

function webhooks (count: number, prefix: string): Webhook[] {
  return Array.from({ length: count }, (_, i) => {
    const payload = smsPayload({ to: `+1${prefix}${String(i).padStart(4, '0')}` })
    return { id: payload['id'] as string, body: JSON.stringify(payload) }
  })
}

sideBySide.push(t.test('a transaction claims no more than the credit granted, per provider, and says how much it took', async (t) => {
  const credit = CreditLedger.create(2)
  const preclaimer = new Preclaimer({ credit: credit.buffer, channels: { sms: { slot: 0, leaseMs: 60_000 }, mms: { slot: 0, leaseMs: 60_000 }, email: { slot: 1, leaseMs: 90_000 } } })
  credit.grant(0, 3)
  const batch = preclaimer.batch(10)!
  const leases = ['sms', 'sms', 'email', 'mms', 'mms', 'fax'].map(batch.claimMs)
  t.same(leases, [60_000, 60_000, undefined, 60_000, undefined, undefined], 'two channels share their provider\'s credit; no credit, no claim')
  t.same([...batch.taken], [[0, 3], [1, 0]])
  t.match(batch.report(null), { type: 'preclaimed', taken: [[0, 3], [1, 0]], rows: null }, 'the report says what was taken')
  t.equal(credit.available(0), 0, 'the credit taken is gone from the pool')
  credit.grant(1, 5)
  t.equal(credit.revoke(1), 5, 'a revoke takes back what the writer has not taken')
  t.equal(preclaimer.batch(10), undefined, 'no credit anywhere: no row is claimed, and none is even looked at')
}))

sideBySide.push(t.test('a provider\'s credit slot is its place among the configured providers, whoever asks', async (t) => {
  const providers = [{ name: 'twilio', kind: 'twilio' }, { name: 'sendgrid', kind: 'sendgrid' }]
  t.equal(creditSlotOf(providers, 'sendgrid'), 1)
  // The dispatcher gets its providers through a thread's structured clone, not the writer's objects.
  t.equal(creditSlotOf(structuredClone(providers), 'sendgrid'), 1, 'by name, not by object identity')
  t.equal(creditSlotOf(providers, 'fax'), -1, 'no such provider')
}))

sideBySide.push(t.test('credit is granted while nothing older is due, taken back when a claim comes back full, granted again once it is short', async (t) => {
  const perSecond = 20
  const fx = await dispatchFixture(t, {
    channels: { sms: { provider: 'twilio' } },
    providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', rateLimit: { perSecond, burst: 5 } } }
  })
  const credit = CreditLedger.create(1)
  const dispatcher = await fx.startDispatcher({ preclaimCredit: credit.buffer, pollMs: 60_000 })
  // Its first claim finds nothing due: the writer may pre-claim about a second of sends.
  const granted = await until('credit for the writer', 5000, async () => credit.available(0) > 0 ? credit.available(0) : undefined)
  t.ok(granted <= perSecond + 5, `${granted} granted: what the lane can start within its claim horizon`)
  // Older work appears (retries come due, another instance's leases run out): three seconds' worth.
  const ids = await fx.insert('sms', 3 * perSecond)
  dispatcher.wake()
  await until('the credit to be taken back', 5000, async () => credit.available(0) === 0 ? true : undefined)
  t.pass('a full claim takes the credit back, so new messages do not overtake the backlog')
  await fx.waitForStatus(ids, 'sent', 20_000)
  await until('credit again once the backlog is claimed', 5000, async () => credit.available(0) > 0 ? true : undefined)
  t.pass('a short claim grants credit again')
}))

sideBySide.push(t.test('a pre-claimed message is sent with every field, once, and stored as sent', async (t) => {
  // A long poll keeps claims (and so a full claim's revoke) out of the way: on an idle instance
  // whose dispatch has found nothing due, a new webhook is certainly pre-claimed.
  const h = await startTestHermes(t, {
    dispatch: { pollMs: 60_000 },
    channels: {
      sms: { provider: 'generic', secrets: ['test-secret'] },
      mms: { provider: 'twilio', secrets: ['test-secret'] },
      email: { provider: 'generic', secrets: ['test-secret'] }
    },
    providers: {
      twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok' },
      generic: { kind: 'http', baseUrl: fake.url, apiKey: 'key' }
    }
  })
  await untilDispatchIsIdle(h)
  const twilioBefore = await metric(h.base, 'hermes_dispatch_preclaimed_total{provider="twilio"}')
  const genericBefore = await metric(h.base, 'hermes_dispatch_preclaimed_total{provider="generic"}')
  const mms = smsPayload({ to: '+15557770001', attachments: ['https://cdn.example.com/a.png', 's3://bucket/b.jpg'] })
  const sms = smsPayload({ to: '+15557770002', timestamp: '2026-11-30T05:06:07.123Z' })
  t.equal((await h.postSigned('mms', mms)).status, 202)
  t.equal((await h.postSigned('sms', sms)).status, 202)
  const rows = await until('both messages to be sent', 10_000, async () => {
    const r = await h.db.query("SELECT external_id, dispatch_attempts, provider_message_id, claimed_until FROM message WHERE external_id = ANY($1) AND dispatch_status = 'sent' ORDER BY external_id", [[mms['id'], sms['id']]])
    return r.rows.length === 2 ? r.rows : undefined
  })
  t.equal(await metric(h.base, 'hermes_dispatch_preclaimed_total{provider="twilio"}') - twilioBefore, 1, 'the mms was pre-claimed')
  t.equal(await metric(h.base, 'hermes_dispatch_preclaimed_total{provider="generic"}') - genericBefore, 1, 'the sms was pre-claimed')
  for (const row of rows) {
    t.equal(row['dispatch_attempts'], 1)
    t.ok(row['provider_message_id'], 'the provider\'s id is stored')
    t.equal(row['claimed_until'], null, 'the claim is let go once the outcome is stored')
  }
  const twilio = fake.requestsTo('+15557770001')
  t.equal(twilio.length, 1, 'the mms was sent once')
  t.same(twilio[0]!.body, { To: '+15557770001', From: '+14155552671', Body: mms['body'], MediaUrl: ['https://cdn.example.com/a.png', 's3://bucket/b.jpg'] })
  const generic = fake.requestsTo('+15557770002')
  t.equal(generic.length, 1, 'the sms was sent once')
  t.match(generic[0]!.body, { from: '+14155552671', to: '+15557770002', type: 'sms', body: sms['body'], attachments: [], timestamp: '2026-11-30T05:06:07.123Z' })
}))

sideBySide.push(t.test('a stop leaves no message claimed: pre-claimed ones not yet sent are given back', async (t) => {
  const h = await startTestHermes(t, {
    channels: {
      sms: { provider: 'twilio', secrets: ['test-secret'] },
      mms: { provider: 'twilio', secrets: ['test-secret'] },
      email: { provider: 'twilio', secrets: ['test-secret'] }
    },
    providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', rateLimit: { perSecond: 4, burst: 4 } } }
  })
  await untilDispatchIsIdle(h)
  const series = 'hermes_dispatch_preclaimed_total{provider="twilio"}'
  const before = await metric(h.base, series)
  const load = webhooks(40, '777')
  const result = await postAll(`${h.base}/webhooks/sms`, load)
  t.equal(result.acknowledged.length, load.length)
  // The writer hands pre-claims over after the batch's 202s, so the count may trail the answers.
  await until('some of them to be pre-claimed', 10_000, async () => await metric(h.base, series) > before ? true : undefined)
  t.pass('some were pre-claimed')
  await h.hermes.stop()
  const { rows } = await h.db.query('SELECT dispatch_status AS status, count(*)::int AS n, count(claimed_until)::int AS leased FROM message WHERE external_id = ANY($1) GROUP BY 1 ORDER BY 1', [load.map((w) => w.id)])
  const byStatus = Object.fromEntries(rows.map((r) => [r['status'], r['n']]))
  t.notOk('sending' in byStatus, `no message left claimed (${JSON.stringify(byStatus)})`)
  t.equal(rows.reduce((n, r) => n + (r['leased'] as number), 0), 0, 'no lease left behind')
  t.equal((byStatus['sent'] ?? 0) + (byStatus['pending'] ?? 0), load.length, 'each message sent or pending')
}))

// The rate-limit check runs alone: subtests beside it would delay the fake provider's readings of the
// arrival times (they share this process's event loop) and bunch them into one second.
await Promise.all(sideBySide)
t.jobs = 1

t.test('under load pre-claims and claims share the work: every message sent exactly once, within the rate limit', async (t) => {
  const perSecond = 50
  const burst = 10
  const h = await startTestHermes(t, {
    // Dispatch at the HTTP thread's priority (default nice +10): on a machine saturated by the suite's other files a
    // nicer dispatch thread's requests leave late and bunch at the provider (docs/architecture.md, "Dispatch yields to ingest").
    dispatch: { nice: 0 },
    channels: {
      sms: { provider: 'twilio', secrets: ['test-secret'] },
      mms: { provider: 'twilio', secrets: ['test-secret'] },
      email: { provider: 'twilio', secrets: ['test-secret'] }
    },
    providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', rateLimit: { perSecond, burst } } }
  })
  // Four seconds of sends at the limit, posted far faster: the credit (about a second's worth)
  // cannot cover them all, so the rest are committed pending and claimed.
  await untilDispatchIsIdle(h)
  const series = 'hermes_dispatch_preclaimed_total{provider="twilio"}'
  const before = await metric(h.base, series)
  const load = webhooks(200, '666')
  const result = await postAll(`${h.base}/webhooks/sms`, load)
  t.equal(result.acknowledged.length, load.length, 'every webhook answered 202')
  await until('every message to be sent', 30_000, async () => {
    const r = await h.db.query("SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1) AND dispatch_status = 'sent'", [load.map((w) => w.id)])
    return r.rows[0]['n'] === load.length ? true : undefined
  })
  const preclaimed = await metric(h.base, series) - before
  t.ok(preclaimed > 0 && preclaimed < load.length, `${preclaimed} of ${load.length} pre-claimed, the rest claimed`)
  const requests = fake.requests.filter((r) => r.to?.startsWith('+1666') === true)
  t.equal(requests.length, load.length, 'no message sent twice')
  t.equal(new Set(requests.map((r) => r.to)).size, load.length, 'every message sent')
  const busiest = busiestWindow(requests.map((r) => r.at))
  t.ok(busiest <= perSecond + burst, `busiest second at the provider: ${busiest} (limit ${perSecond} + burst ${burst})`)
})

// Dispatch claims in batches, not once per commit. Every commit of the writer wakes dispatch; a
// rate-limited lane whose queue is topped up one send at a time must not answer each wake with a
// claim of the one or two rows it lacks (a statement per commit, for a few messages a second):
// it claims once at least half its target is missing.
import t from 'tap'
import { startFakeProvider } from '../src/harness/fake-provider.js'
import { metric, smsPayload, startTestHermes } from './helpers/hermes.js'
import { until } from '../src/harness/wait.js'

const fake = await startFakeProvider(t)

t.test('a backlog for a provider held at 20/s, webhooks committed one by one meanwhile: a claim takes several messages', async (t) => {
  const h = await startTestHermes(t, {
    channels: { sms: { provider: 'twilio', secrets: ['test-secret'] } },
    providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', rateLimit: { perSecond: 20, burst: 5 } } }
  })
  const backlog = 60
  const trickle = 120
  const count = backlog + trickle
  const payloads = Array.from({ length: count }, (_, i) => smsPayload({ to: `+1555123${String(i).padStart(4, '0')}` }))
  const ids = payloads.map((p) => p['id'] as string)
  // First a backlog (three seconds of sends), so that claims come back full and nothing is
  // pre-claimed; then one webhook at a time while it drains: each is its own commit, so dispatch
  // is woken about once per message while its queue goes down one send at a time.
  const first = await Promise.all(payloads.slice(0, backlog).map(async (p) => (await h.postSigned('sms', p)).status))
  t.same(first, Array(backlog).fill(202), 'the backlog accepted')
  for (const payload of payloads.slice(backlog)) {
    const answer = await h.postSigned('sms', payload)
    t.equal(answer.status, 202, `accepted${answer.status === 202 ? '' : `: ${answer.text}`}`)
    await new Promise((resolve) => setTimeout(resolve, 30)) // pacing the load, not waiting for a result
  }
  await until('every message to be sent', 30_000, async () => {
    const { rows } = await h.db.query("SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1) AND dispatch_status = 'sent'", [ids])
    return rows[0]!['n'] === count ? true : undefined
  })
  t.equal(fake.requests.length, count, 'each message sent once')
  const claims = await metric(h.base, 'hermes_dispatch_claims_total{provider="twilio"}')
  const claimed = await metric(h.base, 'hermes_dispatch_claimed_total{provider="twilio"}')
  const preclaimed = await metric(h.base, 'hermes_dispatch_preclaimed_total{provider="twilio"}')
  t.equal(claimed + preclaimed, count, `every message came from a claim (${claimed}) or a pre-claim (${preclaimed})`)
  // Measured under two CPU burners: the old rule (a claim at every wake that lacks a row) ran
  // 104-105 claims here, the new one 21-22. One per 4 messages (45) leaves ~2x on both sides.
  t.ok(claims <= count / 4, `${claims} claim statements for ${count} messages (at most one per 4)`)
})

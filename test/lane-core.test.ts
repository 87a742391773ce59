// The dispatch core's rules (src/dispatch/lane-core.ts) on a fake clock: rate limit and start window, concurrency cap,
// isolation between providers, retry delays and Retry-After, linger and the slot-held flush, claim sizing, pre-claim
// credit, stop, and limits changed at run time. No database, no HTTP, no real time: every run is the same.
import t from 'tap'
import { LaneCore, kMaxClaimRows, type LaneDecision } from '../src/dispatch/lane-core.js'
import type { Claimed } from '../src/dispatch/claimed.js'
import { CreditLedger } from '../src/preclaim-credit.js'
import { busiest, message, ok, provider, Sim } from './helpers/lane-sim.js'

const of = <T extends LaneDecision['type']>(decisions: readonly LaneDecision[], type: T): Array<Extract<LaneDecision, { type: T }>> =>
  decisions.filter((d): d is Extract<LaneDecision, { type: T }> => d.type === type)

/** A lane on its own, with a clock the test moves. */
function lane (overrides: Parameters<typeof provider>[1] = {}, credit?: CreditLedger): { core: LaneCore, clock: { t: number } } {
  const clock = { t: 0 }
  const core = new LaneCore({
    provider: provider('p', overrides),
    leaseMs: 60_000,
    pollMs: 500,
    now: () => clock.t,
    random: () => 0.5,
    ...(credit === undefined ? {} : { credit: { ledger: credit, slot: 0 } })
  })
  return { core, clock }
}

/** A claim pass for one lane: plans it, and answers with `got` fresh messages. */
function claim (core: LaneCore, got: number, clock = 0): { asked: number, decisions: LaneDecision[] } {
  const plan = core.planClaim()
  if (plan?.type !== 'claim') throw new Error(`no claim planned (${JSON.stringify(plan)})`)
  const items = Array.from({ length: Math.min(got, plan.n) }, (_, i) => message(`+1555000${i}`, 0, clock))
  return { asked: plan.n, decisions: core.handle({ type: 'claimed', got: items.length, items }) }
}

t.test('the rate limit: no 1-second window holds more than burst + perSecond sends, the limit is used, each message goes once', async (t) => {
  const sim = new Sim({ providers: [provider('twilio', { rateLimit: { perSecond: 20, burst: 5 }, concurrency: 16 })], poll: true })
  const twilio = sim.lane('twilio')
  twilio.respond = () => ok(20)
  sim.insert('twilio', 200)
  sim.wake()
  sim.run(() => twilio.outcomes.length === 200)
  const times = twilio.sends.map((s) => s.at)
  t.equal(twilio.sends.length, 200, 'exactly 200 sends')
  t.equal(new Set(twilio.sends.map((s) => s.item.to)).size, 200, 'each message once')
  const most = busiest(times)
  t.ok(most <= 25 && most >= 20, `the busiest 1-second window holds ${most} sends: at most burst + perSecond = 25, and the limit is used`)
  t.ok(busiest(times, 1250) <= 25, 'the start window keeps that bound over 1.25 s too, room for arrival jitter')
  t.ok(times.at(-1)! - times[0]! >= (200 - 5) / 20 * 1000 - 50, `200 sends span ${times.at(-1)! - times[0]!} ms (about (200 - 5) / 20 s)`)
  t.ok(of(twilio.decisions, 'rateLimitWait').length > 0, 'the waits for tokens are reported (a metric)')
})

t.test('the concurrency cap: never more sends in flight (or outcomes unstored) than the cap, and the cap is used', async (t) => {
  const sim = new Sim({ providers: [provider('sendgrid', { concurrency: 4 })] })
  const sendgrid = sim.lane('sendgrid')
  sendgrid.respond = () => ok(150)
  sim.insert('sendgrid', 40)
  sim.wake()
  let peak = 0
  const took = sim.run(() => { peak = Math.max(peak, sendgrid.core.sending); return sendgrid.outcomes.length === 40 })
  t.equal(peak, 4, 'exactly the cap in flight at the busiest')
  t.equal(sendgrid.maxHeld, 4, 'sends plus unstored outcomes never pass the cap')
  t.equal(sendgrid.sends.length, 40, 'each message sent once')
  t.ok(took >= 1500 && took < 1700, `10 rounds of 150 ms take about 1.5 s (${took} ms): the cap is used, not serialised`)
})

t.test('isolation: a hanging provider holds only its own slots and claims only what it can use; the other delivers meanwhile', async (t) => {
  const sim = new Sim({ providers: [provider('twilio', { concurrency: 2 }), provider('sendgrid', { concurrency: 4 })], poll: true, pollMs: 100 })
  const twilio = sim.lane('twilio')
  const sendgrid = sim.lane('sendgrid')
  twilio.respond = () => null // hangs
  sendgrid.respond = () => ok(5)
  sim.insert('twilio', 100)
  sim.insert('sendgrid', 30)
  sim.wake()
  const took = sim.run(() => sendgrid.outcomes.length === 30, 60_000)
  t.equal(sendgrid.outcomes.filter((o) => o.decision.status === 'sent').length, 30, '30 emails delivered')
  t.ok(took < 200, `in ${took} ms of simulated time while SMS hang`)
  t.equal(twilio.core.sending, 2, 'the hanging provider holds its own 2 slots')
  const claimed = twilio.claims.reduce((n, c) => n + c.got, 0)
  t.ok(claimed <= 10, `the hanging provider claimed only what it could use soon (${claimed} of 100)`)
})

t.test('isolation: a provider failing and retrying hard does not slow the other', async (t) => {
  const sim = new Sim({ providers: [provider('twilio', { concurrency: 2, retry: { maxAttempts: 1000, baseDelayMs: 20, maxDelayMs: 50 } }), provider('sendgrid')], poll: true, pollMs: 100, random: () => 0.5 })
  const twilio = sim.lane('twilio')
  const sendgrid = sim.lane('sendgrid')
  twilio.respond = () => ({ afterMs: 2, result: { ok: false, retryable: true, reason: 'HTTP 500' } })
  sendgrid.respond = () => ok(5)
  sim.insert('twilio', 50)
  sim.insert('sendgrid', 30)
  sim.wake()
  const took = sim.run(() => sendgrid.outcomes.length === 30, 60_000)
  t.ok(took < 200, `30 emails delivered in ${took} ms of simulated time while every SMS fails`)
  sim.runUntil(took + 200)
  t.ok(twilio.sends.length >= 10, `the failing provider was retried meanwhile (${twilio.sends.length} sends)`)
})

t.test('retries: a retryable failure comes back after its backoff, claimed at its time when that is before the next poll', async (t) => {
  const sim = new Sim({ providers: [provider('twilio', { retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 } })], pollMs: 10_000, random: () => 0.5 })
  const twilio = sim.lane('twilio')
  let first = true
  twilio.respond = () => {
    if (!first) return ok(1)
    first = false
    return { afterMs: 1, result: { ok: false, retryable: true, reason: 'HTTP 500 Internal Server Error: try later' } }
  }
  sim.insert('twilio', 1)
  sim.wake()
  sim.run(() => twilio.outcomes.some((o) => o.decision.status === 'sent'))
  const [failed, sent] = twilio.outcomes
  t.match(failed!.decision, { status: 'pending', delayMs: 10, counted: 1, lastError: 'HTTP 500 Internal Server Error: try later' }, 'backoff: random · min(maxDelay, base · 2^0) = 0.5 · 20')
  const retryAt = twilio.sends[1]!.at
  t.ok(retryAt >= failed!.at + 10, `the second send came ${retryAt - failed!.at} ms after the outcome was stored`)
  t.ok(retryAt <= failed!.at + 10 + 5, 'at its time, not at the poll (10 s away)')
  t.equal(of(twilio.decisions, 'claimAt').length, 1, 'a claim was scheduled for its time')
  t.equal(sent!.item.attempts, 1, 'the second send knows one attempt came before')
})

t.test('retries: a retry due after the next poll is left to the poll', async (t) => {
  const { core, clock } = lane({ retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 } })
  const [item] = of(claim(core, 1).decisions, 'send').map((d) => d.item)
  const [store] = of(core.handle({ type: 'sent', item: item!, result: { ok: false, retryable: true, reason: 'x', retryAfterMs: 600 } }), 'store')
  clock.t = 5
  t.same(of(core.handle({ type: 'stored', item: item!, decision: store!.decision }), 'claimAt'), [], 'nothing scheduled for 600 ms with a 500 ms poll')
})

t.test('a 429 with Retry-After pauses the whole provider until it has passed, and the attempt counts', async (t) => {
  const sim = new Sim({ providers: [provider('twilio', { rateLimit: { perSecond: 1000, burst: 100 } })], poll: true, pollMs: 100 })
  const twilio = sim.lane('twilio')
  let limited = false
  twilio.respond = (item) => {
    if (item.to === '+1limited' && !limited) {
      limited = true
      return { afterMs: 1, result: { ok: false, retryable: true, rateLimited: true, retryAfterMs: 1000, reason: 'HTTP 429 Too Many Requests' } }
    }
    return ok(1)
  }
  sim.insert('twilio', 1, () => '+1limited')
  sim.wake()
  sim.run(() => twilio.outcomes.length === 1)
  const limitedAt = twilio.sends[0]!.at
  t.match(twilio.outcomes[0]!.decision, { status: 'pending', delayMs: 1000, counted: 1 }, 'Retry-After is the delay, and it counts as an attempt')
  sim.insert('twilio', 3)
  sim.wake()
  sim.run(() => twilio.outcomes.filter((o) => o.decision.status === 'sent').length === 4)
  const later = twilio.sends.slice(1).map((s) => s.at)
  t.ok(later.every((at) => at >= limitedAt + 1000), `every other send waited for Retry-After (first ${Math.min(...later) - limitedAt} ms after the 429)`)
  t.equal(twilio.releases.length, 0, 'a pause within the claim horizon keeps the queue claimed')
})

t.test('a 429 pausing longer than the claim horizon gives the queue back rather than hold it claimed', async (t) => {
  const { core } = lane({ concurrency: 1 })
  const sends = of(claim(core, 1).decisions, 'send')
  core.handle({ type: 'preclaimed', items: [message('+1a'), message('+1b')] })
  const decisions = core.handle({ type: 'sent', item: sends[0]!.item, result: { ok: false, retryable: true, rateLimited: true, retryAfterMs: 5000, reason: 'HTTP 429' } })
  t.equal(of(decisions, 'release').length, 2, 'both queued messages released')
  t.equal(core.queued, 0)
  t.match(of(decisions, 'store')[0], { rateLimited: true, decision: { status: 'pending', delayMs: 5000 } })
})

t.test('failures: permanent at once, retryable until maxAttempts (the dead letter), each with its reason', async (t) => {
  const { core } = lane({ retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 } })
  const [a, b] = of(claim(core, 2).decisions, 'send').map((d) => d.item)
  const permanent = of(core.handle({ type: 'sent', item: a!, result: { ok: false, retryable: false, reason: 'HTTP 400 Bad Request: bad number' } }), 'store')[0]!
  t.match(permanent.decision, { status: 'failed', counted: 1, lastError: 'HTTP 400 Bad Request: bad number' })
  const third = message('+1c', 2)
  core.handle({ type: 'preclaimed', items: [third] })
  const exhausted = of(core.handle({ type: 'sent', item: third, result: { ok: false, retryable: true, reason: 'HTTP 503 Service Unavailable: down' } }), 'store')[0]!
  t.match(exhausted.decision, { status: 'failed', lastError: 'gave up after 3 attempts: HTTP 503 Service Unavailable: down' })
  const accepted = of(core.handle({ type: 'sent', item: b!, result: { ok: true, providerMessageId: null, note: 'no sid' } }), 'store')[0]!
  t.match(accepted.decision, { status: 'sent', providerMessageId: null, lastError: 'no sid' }, 'accepted without an id: sent, with a note')
})

t.test('outcomes linger for company; one that holds the last slot with work queued behind it is flushed at once', async (t) => {
  const sim = new Sim({ providers: [provider('mock', { concurrency: 1 })], lingerMs: 50 })
  const mock = sim.lane('mock')
  mock.respond = () => ok(1)
  sim.insert('mock', 1)
  sim.wake()
  sim.run(() => mock.outcomes.length === 1)
  t.equal(mock.flushes.length, 0, 'nothing queued behind it: no flush')
  t.ok(mock.outcomes[0]!.at >= mock.sends[0]!.at + 1 + 50, `the lone outcome lingered (stored at ${mock.outcomes[0]!.at} ms)`)

  const busy = new Sim({ providers: [provider('mock', { concurrency: 1 })], lingerMs: 60_000 })
  const lane2 = busy.lane('mock')
  lane2.respond = () => ok(1)
  busy.insert('mock', 2)
  busy.wake()
  const took = busy.run(() => lane2.outcomes.length >= 1 && lane2.sends.length === 2)
  t.equal(lane2.flushes.length, 1, 'asked for a write once: its one slot is held by the first outcome, the second waits')
  t.ok(took < 100, `so the second was sent at ${took} ms, not after the 60 s linger`)
  t.equal(lane2.maxHeld, 1, 'and not before the first outcome was stored')
})

t.test('a message held too close to its lease\'s end is given back, not sent', async (t) => {
  const { core, clock } = lane({ concurrency: 1, timeoutMs: 10_000 })
  const stale = message('+1stale', 0, 0)
  clock.t = core.staleAfterMs + 1
  const decisions = core.handle({ type: 'preclaimed', items: [stale] })
  t.same(decisions.filter((d) => d.type === 'send' || d.type === 'release').map((d) => d.type), ['release'])
  t.equal(core.staleAfterMs, 60_000 * 0.9 - 10_000, 'stale after 90% of the lease less a whole request')
})

t.test('claim sizing: the free slots until a first answer, then what the lane can start within the horizon', async (t) => {
  const { core, clock } = lane({ concurrency: 4, rateLimit: { perSecond: 20, burst: 5 } })
  const first = claim(core, 100)
  t.equal(first.asked, 4, 'no latency known yet: only the free slots')
  const sends = of(first.decisions, 'send').map((d) => d.item)
  clock.t = 100
  for (const item of sends) core.handle({ type: 'sent', item, result: { ok: true, providerMessageId: 'x' } })
  for (const item of sends) core.handle({ type: 'stored', item, decision: { status: 'sent', counted: 1, delayMs: 0, providerMessageId: 'x', lastError: null } })
  // 100 ms a send, 4 at a time: 40 a second, but the bucket allows 20 a second, after the 4 of its burst spent.
  t.equal(core.wanted(), Math.floor(1 + 100 * 20 / 1000 + 20), 'the bucket\'s capacity within the horizon bounds it')
  const fast = lane({ concurrency: 4 })
  const s2 = of(claim(fast.core, 4).decisions, 'send').map((d) => d.item)
  fast.clock.t = 100
  for (const item of s2) fast.core.handle({ type: 'sent', item, result: { ok: true, providerMessageId: 'x' } })
  t.equal(fast.core.wanted(), 40, 'latency 100 ms, 4 slots: 40 within a second')
  const huge = lane({ concurrency: 1000 })
  t.equal(huge.core.wanted(), 1000, 'the free slots')
  const s3 = of(claim(huge.core, 1000).decisions, 'send').map((d) => d.item)
  huge.clock.t = 1
  for (const item of s3) huge.core.handle({ type: 'sent', item, result: { ok: true, providerMessageId: 'x' } })
  t.equal(huge.core.wanted(), kMaxClaimRows, 'at most kMaxClaimRows per claim')
})

t.test('a lane claims only when at least half its target is missing', async (t) => {
  const { core } = lane({ concurrency: 4 })
  t.ok(core.hungry(), 'empty: hungry')
  core.handle({ type: 'preclaimed', items: [message('+1a'), message('+1b'), message('+1c'), message('+1d')] })
  t.equal(core.sending, 4)
  t.notOk(core.hungry(), 'slots full, nothing to claim')
  t.equal(core.planClaim(), null, 'no claim planned')
})

t.test('a short claim drains the lane unless a wake came in while it ran; a wake or a retry\'s time opens it again', async (t) => {
  const { core } = lane()
  claim(core, 0)
  t.equal(core.mode, 'drained', 'nothing due: drained')
  t.equal(core.planClaim(), null, 'drained: no claim until something may be due')
  core.handle({ type: 'wake' })
  t.equal(core.mode, 'claiming', 'a wake opens it')
  const plan = core.planClaim()
  core.handle({ type: 'wake' }) // new work committed while the claim ran
  core.handle({ type: 'claimed', got: 0, items: [] })
  t.ok(plan?.type === 'claim')
  t.equal(core.mode, 'claiming', 'a wake during the claim keeps it claiming: the claim may have missed that work')
  claim(core, 0)
  t.equal(core.mode, 'drained')
  t.same(of(core.handle({ type: 'due' }), 'claim').length, 1, 'a retry coming due asks for a claim')
  t.equal(core.mode, 'claiming')
})

t.test('pre-claim credit: granted only while drained, what the lane wants beyond the credit out; a full claim takes it back', async (t) => {
  const ledger = CreditLedger.create(1)
  const { core } = lane({ concurrency: 4 }, ledger)
  t.equal(ledger.available(0), 0, 'none at first')
  const short = claim(core, 0)
  t.same(of(short.decisions, 'grant'), [{ type: 'grant', n: 4 }], 'a short claim grants what the lane can start')
  t.equal(ledger.available(0), 4)
  t.equal(core.granted, 4, 'outstanding until the writer reports')
  t.equal(core.planClaim(), null, 'the credit out covers what it wants: nothing more')
  t.equal(ledger.take(0, 3), 3, 'the writer takes 3')
  ledger.settle({ type: 'preclaimed', taken: [[0, 3]], rows: null, startedAtMs: 0 })
  t.equal(core.granted, 1, 'the report settles what it took')
  t.same(core.planClaim(), { type: 'grant', n: 3 }, 'and more may be granted')
  t.equal(ledger.available(0), 4)
  core.handle({ type: 'wake' })
  const full = claim(core, 100)
  t.equal(full.asked, 4)
  t.equal(ledger.available(0), 0, 'a full claim (older work is due) takes the untaken credit back')
  t.equal(core.granted, 0)
  t.equal(core.mode, 'claiming', 'and the lane keeps claiming')
  t.equal(of(full.decisions, 'grant').length, 0)
})

t.test('stop: queued claims go back, credit is revoked, sends in flight finish and are stored; abandon gives up on them', async (t) => {
  const ledger = CreditLedger.create(1)
  const { core } = lane({ concurrency: 2 }, ledger)
  claim(core, 0)
  t.ok(ledger.available(0) > 0)
  core.handle({ type: 'wake' })
  const sends = of(claim(core, 2).decisions, 'send').map((d) => d.item)
  core.handle({ type: 'preclaimed', items: [message('+1q1'), message('+1q2')] })
  const stop = core.handle({ type: 'stop' })
  t.equal(core.mode, 'stopping')
  t.equal(of(stop, 'release').length, 2, 'the queue is released')
  t.equal(ledger.available(0), 0, 'credit revoked')
  t.same(of(core.handle({ type: 'preclaimed', items: [message('+1late')] }), 'release').length, 1, 'a pre-claim reported after the stop goes back')
  t.equal(core.planClaim(), null, 'no claims')
  const done = core.handle({ type: 'sent', item: sends[0]!, result: { ok: true, providerMessageId: 'x' } })
  t.same(done.map((d) => d.type), ['store'], 'a send finishing is stored, nothing new starts')
  t.ok(core.busy, 'one send still in flight')
  const abandon = core.handle({ type: 'abandon' })
  t.equal(core.mode, 'stopped')
  t.same(of(abandon, 'release').map((d) => d.item), [sends[1]], 'the send in flight is given back')
  t.ok(sends[1]!.abandoned)
  t.same(core.handle({ type: 'sent', item: sends[1]!, result: { ok: true, providerMessageId: 'y' } }), [], 'its late answer is ignored')
})

t.test('limits changed: tokens already spent stay spent, the new rate holds from then on', async (t) => {
  const { core, clock } = lane({ concurrency: 100, rateLimit: { perSecond: 10, burst: 10 } })
  const items: Claimed[] = Array.from({ length: 40 }, (_, i) => message(`+1${i}`))
  const started = of(core.handle({ type: 'preclaimed', items }), 'send')
  t.equal(started.length, 10, 'the burst of 10 is spent')
  const raised = core.handle({ type: 'limits', limits: { rateLimit: { perSecond: 10, burst: 30 }, concurrency: 100 } })
  t.equal(of(raised, 'send').length, 0, 'a larger burst grants no tokens already spent')
  t.same(core.limits, { rateLimit: { perSecond: 10, burst: 30 }, concurrency: 100 })
  clock.t = 1000
  const lowered = core.handle({ type: 'limits', limits: { rateLimit: { perSecond: 2, burst: 2 }, concurrency: 100 } })
  t.equal(of(lowered, 'send').length, 0, 'lowered to 2/s, burst 2: the 10 sends of the last 1.25 s already exceed the new bound')
  t.same(of(lowered, 'sleepUntil'), [{ type: 'sleepUntil', at: 1250 }], 'so nothing starts until they leave the start window')
  clock.t = 1250
  const resumed = core.handle({ type: 'tick' })
  t.equal(of(resumed, 'send').length, 2, 'then the tokens saved, cut to the new burst of 2')
  t.same(of(resumed, 'sleepUntil'), [{ type: 'sleepUntil', at: 1750 }], 'and one every 500 ms at the new rate')
})

t.test('limits changed: sends in flight over a lowered cap finish; none starts until the lane is below it; a raised cap is used at once', async (t) => {
  const { core } = lane({ concurrency: 4 })
  const items: Claimed[] = Array.from({ length: 10 }, (_, i) => message(`+1${i}`))
  const sends = of(core.handle({ type: 'preclaimed', items }), 'send').map((d) => d.item)
  t.equal(sends.length, 4)
  core.handle({ type: 'limits', limits: { rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, concurrency: 2 } })
  t.equal(core.sending, 4, 'in flight over the new cap: not cut off')
  const settle = (item: Claimed): LaneDecision[] => {
    core.handle({ type: 'sent', item, result: { ok: true, providerMessageId: 'x' } })
    return core.handle({ type: 'stored', item, decision: { status: 'sent', counted: 1, delayMs: 0, providerMessageId: 'x', lastError: null } })
  }
  t.same(of(settle(sends[0]!), 'send'), [], '3 held, cap 2: nothing starts')
  t.same(of(settle(sends[1]!), 'send'), [], '2 held, cap 2: nothing starts')
  t.equal(of(settle(sends[2]!), 'send').length, 1, '1 held: one starts')
  const raised = core.handle({ type: 'limits', limits: { rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, concurrency: 8 } })
  t.equal(of(raised, 'send').length, 5, 'cap raised to 8 with 2 in flight: the 5 queued start at once')
})

t.test('limits changed while drained: the credit out is sized anew', async (t) => {
  const ledger = CreditLedger.create(1)
  const { core } = lane({ concurrency: 8 }, ledger)
  claim(core, 0)
  t.equal(ledger.available(0), 8)
  const lowered = core.handle({ type: 'limits', limits: { rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, concurrency: 2 } })
  t.equal(ledger.available(0), 2, 'untaken credit revoked and granted again for the new cap')
  t.same(of(lowered, 'grant'), [{ type: 'grant', n: 2 }])
})

t.test('the core reads only the clock it is given', async (t) => {
  const realNow = performance.now
  const realDate = Date.now
  performance.now = () => { throw new Error('performance.now() called') }
  Date.now = () => { throw new Error('Date.now() called') }
  try {
    const sim = new Sim({ providers: [provider('p', { rateLimit: { perSecond: 50, burst: 5 }, concurrency: 3 })], lingerMs: 10, poll: true })
    const p = sim.lane('p')
    p.respond = (item) => item.to.endsWith('7') ? { afterMs: 3, result: { ok: false, retryable: true, reason: 'x' } } : ok(3)
    sim.insert('p', 50)
    sim.wake()
    sim.run(() => p.outcomes.filter((o) => o.decision.status !== 'pending').length === 50)
    t.pass('a whole run without either')
  } finally {
    performance.now = realNow
    Date.now = realDate
  }
})

t.test('a message claimed again after its stored outcome (claimedAgain) is sent like a claimed one, and goes back once stopping', async (t) => {
  const { core } = lane({ concurrency: 1 })
  const [first] = of(claim(core, 1).decisions, 'send').map((d) => d.item)
  const failed = of(core.handle({ type: 'sent', item: first!, result: { ok: false, retryable: true, reason: 'HTTP 500' } }), 'store')
  t.equal(failed[0]?.decision.status, 'pending', 'the failed send is a retry')
  core.handle({ type: 'stored', item: first!, decision: failed[0]!.decision })
  const again = message('+15550000', 1)
  t.same(of(core.handle({ type: 'claimedAgain', items: [again] }), 'send').map((d) => d.item), [again], 'its new claim is sent at once')
  core.handle({ type: 'stop' })
  t.same(of(core.handle({ type: 'claimedAgain', items: [message('+1late', 1)] }), 'release').length, 1, 'one handed over after the stop goes back')
})

/**
 * The dispatch core: one provider's lane as a pure state machine. It takes
 * events and returns decisions; it runs no SQL, no HTTP and no timers, and
 * reads time only from the clock it is given (the shell passes
 * performance.now, tests a fake). src/dispatch/dispatcher.ts is the shell
 * that turns decisions into claims, sends, writes and timers. The one
 * thing it touches outside itself is the CreditLedger it is given
 * (src/preclaim-credit.ts: counters in memory shared with the writer).
 *
 * Modes (LaneCore.mode) and what each does:
 *
 *   mode       | claims                        | pre-claim credit           | sends
 *   -----------+-------------------------------+----------------------------+------------------------------
 *   'claiming' | when hungry (claim n)         | none granted; a full claim | start while the cap and the
 *              |                               | revokes what is out        | bucket allow (send, sleepUntil)
 *   'drained'  | none: the last claim was      | granted up to what the     | the same
 *              | short, nothing came due since | lane wants (grant n)       |
 *   'stopping' | none                          | revoked; reports settle    | none started; the queue is
 *              |                               |                            | released, sends in flight finish
 *   'stopped'  | none                          | none                       | sends in flight are abandoned
 *                                                                            (released, answers ignored)
 *
 * Transitions:
 *
 *   claiming --claimed (fewer than asked, no wake while it ran)--> drained
 *   claiming --claimed (as many as asked, or a wake meanwhile)---> claiming
 *   drained  --wake | due----------------------------------------> claiming
 *   claiming | drained --stop--> stopping --abandon--> stopped
 *
 * Events (LaneEvent): wake (new work may be due: a commit, a poll), due
 * (a retry's time came), claimed (a claim's rows), preclaimed (messages
 * the writer inserted claimed for us), claimedAgain (a claim's rows for
 * messages whose previous outcome the shell had not yet heard was stored;
 * handed over once it was), sent (a send's result), stored (an
 * outcome or release is in the database), tick (the clock reached a time
 * the lane asked to sleep until), limits (new rate limit and concurrency),
 * dueIn (claim again after ms: the shell's claim failed), stop, abandon.
 *
 * Decisions (LaneDecision): send (start this send), release (give this
 * claim back unsent), store (write this outcome), claim (the lane is
 * hungry: run a claim pass, which asks planClaim() for n at its turn and
 * reports the rows with a claimed event; in 'drained' mode planClaim()
 * grants credit instead), grant (credit
 * granted to the writer, already in the ledger), flush (write outcomes now,
 * a slot waits for one), sleepUntil (tick at t), claimAt (run a claim pass
 * at t), rateLimitWait (sends waited ms for a token; a metric).
 *
 * The rules, each pinned by test/lane-core.test.ts:
 *  - a send starts only while sends in flight plus outcomes not yet stored
 *    are below the concurrency cap, and the token bucket (with its start
 *    window, token-bucket.ts) has a token; otherwise the lane sleeps until
 *    one is due;
 *  - a finished send keeps its slot until its outcome is stored, so a crash
 *    re-sends at most `concurrency` messages; when queued work waits for a
 *    slot held that way, the lane asks for a flush (outcomes otherwise
 *    linger for company, status-writer.ts);
 *  - a message held longer than staleAfterMs (its send could outlast the
 *    lease) is released, not sent;
 *  - a claim asks for what the lane can start within the claim horizon:
 *    the bucket's capacity, and the free slots until the first answer
 *    (then the slots times horizon / latency), less what is queued; a lane
 *    claims only when at least half its target is missing;
 *  - a 429 pauses the bucket for Retry-After (or the base delay); a pause
 *    longer than the claim horizon releases the queue;
 *  - a retry due before the next poll asks for a claim at its time;
 *  - credit for pre-claims is granted only in 'drained' mode, up to what
 *    the lane wants beyond the credit still outstanding (CreditLedger);
 *  - new limits apply at once: tokens already spent stay spent, and sends
 *    in flight over a lowered cap finish (none starts until below it).
 */
import type { ProviderConfig, RetryPolicy } from '../config.js'
import type { CreditLedger } from '../preclaim-credit.js'
import type { ProviderLimits } from '../messages.js'
import type { Claimed } from './claimed.js'
import { decide, type Decision } from './outcome.js'
import type { SendResult } from './providers/index.js'
import { TokenBucket, type Clock } from './token-bucket.js'

export type LaneMode = 'claiming' | 'drained' | 'stopping' | 'stopped'

export type LaneEvent =
  | { readonly type: 'wake' }
  | { readonly type: 'due' }
  | { readonly type: 'dueIn', readonly ms: number }
  | { readonly type: 'claimed', readonly got: number, readonly items: readonly Claimed[] }
  | { readonly type: 'preclaimed', readonly items: readonly Claimed[] }
  | { readonly type: 'claimedAgain', readonly items: readonly Claimed[] }
  | { readonly type: 'sent', readonly item: Claimed, readonly result: SendResult }
  | { readonly type: 'stored', readonly item: Claimed, readonly decision: Decision | null }
  | { readonly type: 'tick' }
  | { readonly type: 'limits', readonly limits: ProviderLimits }
  | { readonly type: 'stop' }
  | { readonly type: 'abandon' }

export type LaneDecision =
  | { readonly type: 'send', readonly item: Claimed }
  | { readonly type: 'release', readonly item: Claimed }
  | { readonly type: 'store', readonly item: Claimed, readonly decision: Decision, readonly rateLimited: boolean, readonly retryAfterMs?: number }
  | { readonly type: 'claim', readonly n: number }
  | { readonly type: 'grant', readonly n: number }
  | { readonly type: 'flush' }
  | { readonly type: 'sleepUntil', readonly at: number }
  | { readonly type: 'claimAt', readonly at: number }
  | { readonly type: 'rateLimitWait', readonly ms: number }

/** The lease a lane's claims carry: room for a whole request well inside it (see staleAfterMs). */
export function laneLeaseMs (provider: ProviderConfig, leaseMs: number): number {
  return Math.max(leaseMs, 3 * provider.timeoutMs)
}

/** How far ahead a lane claims: what it can start within this many ms. */
export const kClaimHorizonMs = 1000
/** Rows per claim statement, and the most a lane holds queued. */
export const kMaxClaimRows = 1000
export const kMaxQueued = 5000
/** A retry's claim comes this much after its time: next_attempt_at is the database's now() at write time + delay. */
export const kDueSlackMs = 2

export interface LaneCoreOptions {
  readonly provider: ProviderConfig
  /** The lease the lane's claims carry (laneLeaseMs). */
  readonly leaseMs: number
  /** The shell polls this often; a retry due later than that is left to the poll. */
  readonly pollMs: number
  readonly now: Clock
  /** For the retry delays' jitter (backoff.ts). */
  readonly random?: () => number
  /** The ledger and this provider's slot in it; absent: the writer never pre-claims the lane's messages. */
  readonly credit?: { readonly ledger: CreditLedger, readonly slot: number }
}

export class LaneCore {
  readonly name: string
  private state: LaneMode = 'claiming'
  private concurrency: number
  private readonly retry: RetryPolicy
  private readonly bucket: TokenBucket
  private readonly now: Clock
  private readonly random: () => number
  private readonly pollMs: number
  private readonly baseDelayMs: number
  private readonly credit: { readonly ledger: CreditLedger, readonly slot: number } | null
  /** A message held this long is released instead of sent: its send could outlast the lease (leaseMs >= 3 × timeoutMs). */
  readonly staleAfterMs: number
  /** Counts wakes, so a claim that was already running when new work arrived cannot mark the lane drained. */
  private wakes = 0
  private wakesAtClaim = 0
  /** What the claim planned last asked for: fewer back means nothing more is due. */
  private askedAtClaim = 0
  private queue: Claimed[] = []
  private head = 0
  /** Sends in flight, with the time each started. */
  private readonly inFlight = new Map<Claimed, number>()
  /** Sends that finished but whose outcome is not stored yet: they keep their slot until it is. */
  private readonly unsettled = new Set<Claimed>()
  private latencyMs = Number.NaN // moving average of send latency (NaN until the first answer); sizes claims for slow providers
  private blockedSince: number | null = null // when the bucket last made a ready send wait
  private sleepingUntil = Infinity
  private dueAt = Infinity

  constructor (options: LaneCoreOptions) {
    const { provider } = options
    this.name = provider.name
    this.concurrency = provider.concurrency
    this.retry = provider.retry
    this.baseDelayMs = provider.retry.baseDelayMs
    this.now = options.now
    this.random = options.random ?? Math.random
    this.pollMs = options.pollMs
    this.bucket = new TokenBucket(provider.rateLimit.perSecond, provider.rateLimit.burst, options.now)
    this.credit = options.credit ?? null
    this.staleAfterMs = options.leaseMs * 0.9 - provider.timeoutMs
  }

  get mode (): LaneMode { return this.state }
  get queued (): number { return this.queue.length - this.head }
  get sending (): number { return this.inFlight.size }
  /** Finished sends whose outcome is not stored yet. */
  get unstored (): number { return this.unsettled.size }
  get limits (): ProviderLimits {
    return { rateLimit: { perSecond: this.bucket.perSecond, burst: this.bucket.burst }, concurrency: this.concurrency }
  }

  /** Credit granted to the writer and not yet reported or revoked. */
  get granted (): number {
    return this.credit === null ? 0 : this.credit.ledger.outstanding(this.credit.slot)
  }

  /** Still waiting on something before it can be abandoned: a send in flight, or credit the writer may have taken. */
  get busy (): boolean { return this.inFlight.size > 0 || this.granted > 0 }

  handle (event: LaneEvent): LaneDecision[] {
    const out: LaneDecision[] = []
    switch (event.type) {
      case 'wake': this.undrain(); break
      case 'due':
        this.dueAt = Infinity
        this.undrain()
        if (this.open) out.push({ type: 'claim', n: this.wanted() })
        break
      case 'dueIn': this.scheduleDue(event.ms, out); break
      case 'claimed': this.claimed(event.got, event.items, out); break
      case 'preclaimed': case 'claimedAgain': this.enqueue(event.items, out); break
      case 'sent': this.sent(event.item, event.result, out); break
      case 'stored':
        if (event.decision !== null && this.unsettled.delete(event.item)) this.pump(out)
        if (event.decision?.status === 'pending') this.scheduleDue(event.decision.delayMs, out)
        break
      case 'tick':
        this.sleepingUntil = Infinity
        this.pump(out)
        break
      case 'limits': this.setLimits(event.limits, out); break
      case 'stop': this.stop(out); break
      case 'abandon': this.abandon(out); break
    }
    return out
  }

  /**
   * What a claim pass should do for this lane now: claim n rows, or (in
   * 'drained' mode) grant the writer credit, which is done in the ledger
   * before this returns; null: nothing.
   */
  planClaim (): LaneDecision | null {
    if (!this.open) return null
    if (this.state === 'drained') {
      const n = this.grant()
      return n > 0 ? { type: 'grant', n } : null
    }
    if (!this.hungry()) return null
    this.wakesAtClaim = this.wakes
    this.askedAtClaim = this.wanted()
    return { type: 'claim', n: this.askedAtClaim }
  }

  /**
   * Worth a claim (or, when drained and pre-claims are on, a grant of
   * credit): at least half the target is missing (or anything at all for a
   * small target).
   */
  hungry (): boolean {
    return this.hungryFor() > 0
  }

  /** What a claim would ask for if the lane is hungry (see hungry()), else 0. */
  private hungryFor (): number {
    if (!this.open) return 0
    if (this.state === 'drained') {
      const more = this.credit === null ? 0 : this.grantable()
      return more > 0 && more >= (this.queued + this.granted + more) / 2 ? more : 0
    }
    const want = this.wanted()
    return want > 0 && want >= (this.queued + want) / 2 ? want : 0
  }

  /** How many messages to claim now (0 or less: none). */
  wanted (): number {
    if (!this.open) return 0
    const byRate = this.bucket.capacityWithin(kClaimHorizonMs)
    // Until a first answer shows how fast the provider is, only fill the free slots.
    const byLatency = Number.isNaN(this.latencyMs) ? 0 : Math.ceil(this.concurrency * kClaimHorizonMs / Math.max(1, this.latencyMs))
    const target = Math.min(kMaxQueued, byRate, Math.max(this.concurrency - this.inFlight.size - this.unsettled.size, byLatency))
    return Math.min(kMaxClaimRows, target - this.queued)
  }

  private get open (): boolean { return this.state === 'claiming' || this.state === 'drained' }

  private undrain (): void {
    if (!this.open) return
    this.state = 'claiming'
    this.wakes++
  }

  /**
   * A claim's result: short means drained, unless a wake came in while it
   * ran. A full claim means older work is waiting in the database: new
   * messages stop jumping it (the writer's credit is taken back) until a
   * claim comes back short, which grants credit again.
   */
  private claimed (got: number, items: readonly Claimed[], out: LaneDecision[]): void {
    if (this.open) {
      const asked = this.askedAtClaim
      this.state = got < asked && this.wakes === this.wakesAtClaim ? 'drained' : 'claiming'
      if (got >= asked) this.revoke()
      else if (this.state === 'drained') {
        const n = this.grant()
        if (n > 0) out.push({ type: 'grant', n })
      }
    }
    this.enqueue(items, out)
  }

  /** Grants the writer what the lane wants beyond the credit out; returns how much. */
  private grant (): number {
    if (this.credit === null || !this.open) return 0
    const n = this.grantable()
    if (n <= 0) return 0
    this.credit.ledger.grant(this.credit.slot, n)
    return n
  }

  /**
   * How much more credit to grant: what the lane wants beyond the credit
   * already out. Claims do not count that credit (so credit left untaken
   * never keeps due work from being claimed); the lane then holds at most
   * twice its target.
   */
  private grantable (): number {
    return this.wanted() - this.granted
  }

  private revoke (): void {
    if (this.credit !== null) this.credit.ledger.revoke(this.credit.slot)
  }

  private enqueue (items: readonly Claimed[], out: LaneDecision[]): void {
    if (!this.open) {
      // Stopping: whatever arrives now (a claim that was running, a pre-claim report) goes back.
      for (const item of items) out.push({ type: 'release', item })
      return
    }
    if (items.length === 0) return
    for (const item of items) this.queue.push(item)
    this.pump(out)
  }

  /** Starts sends while the cap and the bucket allow. */
  private pump (out: LaneDecision[]): void {
    if (!this.open) return
    const concurrency = this.concurrency
    while (this.inFlight.size + this.unsettled.size < concurrency && this.head < this.queue.length) {
      const item = this.queue[this.head]!
      const t = this.now()
      if (t - item.claimedAt > this.staleAfterMs) {
        this.shift()
        out.push({ type: 'release', item })
        continue
      }
      const wait = this.bucket.take()
      if (wait > 0) {
        this.blockedSince ??= t
        this.sleep(t + wait, out)
        break
      }
      if (this.blockedSince !== null) {
        out.push({ type: 'rateLimitWait', ms: t - this.blockedSince })
        this.blockedSince = null
      }
      this.shift()
      this.inFlight.set(item, t)
      out.push({ type: 'send', item })
    }
    // Queued work waits for a slot that only a stored outcome can free: the outcomes should not linger.
    const slotsFull = this.inFlight.size + this.unsettled.size >= concurrency
    if (slotsFull && this.unsettled.size > 0 && this.head < this.queue.length) out.push({ type: 'flush' })
    const want = this.hungryFor()
    if (want > 0) out.push({ type: 'claim', n: want })
  }

  private sent (item: Claimed, result: SendResult, out: LaneDecision[]): void {
    const started = this.inFlight.get(item)
    if (started === undefined) return // abandoned at stop: its claim was given back, its answer means nothing now
    this.inFlight.delete(item)
    this.unsettled.add(item)
    const latency = this.now() - started
    this.latencyMs = Number.isNaN(this.latencyMs) ? latency : this.latencyMs + (latency - this.latencyMs) / 8
    const rateLimited = !result.ok && result.rateLimited === true
    if (rateLimited) this.slowDown(result.retryAfterMs ?? this.baseDelayMs, out)
    // A 429's Retry-After goes with its outcome: the fleet pauses the provider for as long (src/fleet/coordinator.ts).
    const retryAfter = rateLimited && !result.ok && result.retryAfterMs !== undefined ? { retryAfterMs: result.retryAfterMs } : {}
    out.push({ type: 'store', item, decision: decide(result, item.attempts, this.retry, this.random), rateLimited, ...retryAfter })
    this.pump(out)
  }

  /** A 429: pause the bucket; if the pause outlasts the claim horizon, give the queue back rather than hold it claimed. */
  private slowDown (ms: number, out: LaneDecision[]): void {
    this.bucket.pause(ms)
    if (ms <= kClaimHorizonMs) return
    while (this.head < this.queue.length) {
      const item = this.queue[this.head]!
      this.shift()
      out.push({ type: 'release', item })
    }
  }

  /** Claims again once `ms` have passed (a retry's delay), unless the poll comes first. */
  private scheduleDue (ms: number, out: LaneDecision[]): void {
    if (!this.open || ms >= this.pollMs) return
    const at = this.now() + ms + kDueSlackMs
    if (this.dueAt <= at) return
    this.dueAt = at
    out.push({ type: 'claimAt', at })
  }

  private sleep (at: number, out: LaneDecision[]): void {
    if (this.sleepingUntil <= at) return
    this.sleepingUntil = at
    out.push({ type: 'sleepUntil', at })
  }

  private setLimits (limits: ProviderLimits, out: LaneDecision[]): void {
    this.bucket.setLimits(limits.rateLimit.perSecond, limits.rateLimit.burst)
    this.concurrency = limits.concurrency
    if (!this.open) return
    // Credit out was sized by the old limits: take back what is untaken and size it anew.
    this.revoke()
    if (this.state === 'drained') {
      const n = this.grant()
      if (n > 0) out.push({ type: 'grant', n })
    }
    // The bucket's timer was set for the old rate; a sooner token is found at once by the pump.
    this.sleepingUntil = Infinity
    this.pump(out)
  }

  private stop (out: LaneDecision[]): void {
    if (!this.open) return
    this.revoke()
    this.state = 'stopping'
    this.sleepingUntil = Infinity
    this.dueAt = Infinity
    for (let i = this.head; i < this.queue.length; i++) out.push({ type: 'release', item: this.queue[i]! })
    this.queue = []
    this.head = 0
  }

  private abandon (out: LaneDecision[]): void {
    this.stop(out)
    this.state = 'stopped'
    for (const item of this.inFlight.keys()) {
      item.abandoned = true
      out.push({ type: 'release', item })
    }
    this.inFlight.clear()
  }

  private shift (): void {
    this.head++
    // Compact now and then instead of Array#shift on every message.
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }
}

/**
 * A simulated dispatch shell around LaneCore (src/dispatch/lane-core.ts) on
 * a fake clock: a database backlog per lane, one claim pass at a time over
 * all lanes (as Dispatcher runs them), scripted provider answers, an outcome
 * writer that lingers unless flushed, and timers as events in time order.
 * Nothing waits for real time: a simulated minute runs in milliseconds, and
 * a run is the same every time.
 */
import type { ProviderConfig } from '../../src/config.js'
import type { Claimed } from '../../src/dispatch/claimed.js'
import { LaneCore, laneLeaseMs, type LaneDecision, type LaneEvent } from '../../src/dispatch/lane-core.js'
import type { Decision } from '../../src/dispatch/outcome.js'
import type { SendResult } from '../../src/dispatch/providers/index.js'
import { CreditLedger } from '../../src/preclaim-credit.js'

/** How the provider answers one send: after this long, with this; null: it never answers. */
export type Answer = { readonly afterMs: number, readonly result: SendResult } | null
export const ok = (afterMs = 0): Answer => ({ afterMs, result: { ok: true, providerMessageId: 'SM1' } })

export function provider (name: string, overrides: Partial<ProviderConfig> = {}): ProviderConfig {
  return {
    name,
    kind: 'mock',
    baseUrl: null,
    accountSid: null,
    authToken: null,
    apiKey: null,
    from: null,
    rateLimit: { perSecond: 1_000_000, burst: 1_000_000 },
    concurrency: 4,
    retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100 },
    timeoutMs: 10_000,
    eventWebhookPublicKeys: [],
    callbackUrl: null,
    ...overrides
  }
}

let seq = 0
export function message (to: string, attempts = 0, claimedAt = 0): Claimed {
  seq++
  return {
    id: String(seq),
    externalId: `x-${seq}`,
    channel: 'sms',
    type: 'sms',
    from: '+15550000000',
    to,
    body: 'hi',
    attachments: [],
    sentAt: null,
    lease: `lease-${seq}`,
    attempts,
    claimedAt,
    receivedAtMs: 0,
    abandoned: false
  }
}

export interface SimLane {
  readonly name: string
  readonly core: LaneCore
  /** Due work in the "database": claims take from here, in order, once due. */
  readonly backlog: Array<{ to: string, attempts: number, dueAt: number }>
  respond: (item: Claimed) => Answer
  readonly sends: Array<{ item: Claimed, at: number }>
  readonly outcomes: Array<{ item: Claimed, decision: Decision, at: number }>
  readonly releases: Array<{ item: Claimed, at: number }>
  readonly claims: Array<{ at: number, asked: number, got: number }>
  readonly flushes: number[]
  readonly decisions: LaneDecision[]
  /** Sends in flight plus outcomes not stored, at their most. */
  maxHeld: number
  sleepGen: number
  dueGen: number
}

export interface SimOptions {
  readonly providers: readonly ProviderConfig[]
  readonly pollMs?: number
  readonly leaseMs?: number
  /** Grant pre-claim credit through a ledger. */
  readonly credit?: boolean
  /** How long a claim statement takes. */
  readonly claimMs?: number
  /** How long an outcome write takes. */
  readonly writeMs?: number
  /** How long an outcome waits for company unless flushed (the shell's status writer); 0: written at once. */
  readonly lingerMs?: number
  readonly random?: () => number
  /** Poll (a wake every pollMs) as the shell does. */
  readonly poll?: boolean
}

export class Sim {
  clock = 0
  readonly lanes: SimLane[] = []
  readonly ledger = CreditLedger.create(4)
  private readonly queue: Array<{ at: number, seq: number, run: () => void }> = []
  private seq = 0
  private claiming = false
  private claimAgain = false
  private writing = false
  private lingering = false
  private urgent = false
  private unwritten: Array<{ lane: SimLane, item: Claimed, decision: Decision | null }> = []
  private readonly options: Required<Omit<SimOptions, 'random'>> & { random?: () => number }

  constructor (options: SimOptions) {
    this.options = { pollMs: 500, leaseMs: 60_000, credit: false, claimMs: 1, writeMs: 1, lingerMs: 0, poll: false, ...options }
    options.providers.forEach((p, slot) => {
      const core = new LaneCore({
        provider: p,
        leaseMs: laneLeaseMs(p, this.options.leaseMs),
        pollMs: this.options.pollMs,
        now: () => this.clock,
        ...(options.random === undefined ? {} : { random: options.random }),
        ...(this.options.credit ? { credit: { ledger: this.ledger, slot } } : {})
      })
      this.lanes.push({ name: p.name, core, backlog: [], respond: () => ok(), sends: [], outcomes: [], releases: [], claims: [], flushes: [], decisions: [], maxHeld: 0, sleepGen: 0, dueGen: 0 })
    })
    if (this.options.poll) this.schedulePoll()
  }

  lane (name: string): SimLane {
    return this.lanes.find((l) => l.name === name)!
  }

  /** Puts `count` messages due now into a lane's backlog (recipients +1<prefix>0000…). */
  insert (name: string, count: number, to: (i: number) => string = (i) => `+1555${String(i).padStart(7, '0')}`): void {
    const lane = this.lane(name)
    for (let i = 0; i < count; i++) lane.backlog.push({ to: to(i), attempts: 0, dueAt: this.clock })
  }

  /** New work committed: every lane wakes, one claim pass. */
  wake (): void {
    for (const lane of this.lanes) this.handle(lane, { type: 'wake' })
    this.requestClaims()
  }

  handle (lane: SimLane, event: LaneEvent): LaneDecision[] {
    const decisions = lane.core.handle(event)
    this.apply(lane, decisions)
    return decisions
  }

  /** Runs events in time order until `done` holds (checked after each) or the clock passes `limitMs`; returns the clock. */
  run (done: () => boolean, limitMs = 600_000): number {
    while (!done()) {
      const next = this.pop()
      if (next === undefined || next.at > limitMs) break
      this.clock = Math.max(this.clock, next.at)
      next.run()
    }
    return this.clock
  }

  /** Runs everything due up to `t` (the clock ends at t). */
  runUntil (t: number): void {
    for (;;) {
      const next = this.peek()
      if (next === undefined || next.at > t) break
      this.pop()
      this.clock = Math.max(this.clock, next.at)
      next.run()
    }
    this.clock = Math.max(this.clock, t)
  }

  /** Everything sent, across lanes, in order. */
  get allSends (): Array<{ item: Claimed, at: number }> {
    return this.lanes.flatMap((l) => l.sends).sort((a, b) => a.at - b.at)
  }

  at (t: number, run: () => void): void {
    this.queue.push({ at: t, seq: this.seq++, run })
  }

  private peek (): { at: number, seq: number, run: () => void } | undefined {
    let best: number = -1
    for (let i = 0; i < this.queue.length; i++) {
      const e = this.queue[i]!
      if (best < 0 || e.at < this.queue[best]!.at || (e.at === this.queue[best]!.at && e.seq < this.queue[best]!.seq)) best = i
    }
    return best < 0 ? undefined : this.queue[best]
  }

  private pop (): { at: number, seq: number, run: () => void } | undefined {
    const next = this.peek()
    if (next !== undefined) this.queue.splice(this.queue.indexOf(next), 1)
    return next
  }

  private apply (lane: SimLane, decisions: readonly LaneDecision[]): void {
    for (const d of decisions) {
      lane.decisions.push(d)
      switch (d.type) {
        case 'send': {
          lane.sends.push({ item: d.item, at: this.clock })
          const answer = lane.respond(d.item)
          if (answer !== null) this.at(this.clock + answer.afterMs, () => this.handle(lane, { type: 'sent', item: d.item, result: answer.result }))
          break
        }
        case 'release':
          lane.releases.push({ item: d.item, at: this.clock })
          this.addOutcome(lane, d.item, null)
          break
        case 'store': this.addOutcome(lane, d.item, d.decision); break
        case 'claim': this.requestClaims(); break
        case 'flush':
          lane.flushes.push(this.clock)
          this.urgent = true
          this.write()
          break
        case 'grant': break
        case 'sleepUntil': {
          const gen = ++lane.sleepGen
          this.at(d.at, () => { if (lane.sleepGen === gen) this.handle(lane, { type: 'tick' }) })
          break
        }
        case 'claimAt': {
          const gen = ++lane.dueGen
          this.at(d.at, () => { if (lane.dueGen === gen) this.handle(lane, { type: 'due' }) })
          break
        }
        case 'rateLimitWait': break
      }
    }
    lane.maxHeld = Math.max(lane.maxHeld, lane.core.sending + lane.core.unstored)
  }

  private addOutcome (lane: SimLane, item: Claimed, decision: Decision | null): void {
    this.unwritten.push({ lane, item, decision })
    if (this.options.lingerMs === 0 || this.urgent) this.write()
    else if (!this.lingering && !this.writing) {
      this.lingering = true
      this.at(this.clock + this.options.lingerMs, () => { this.lingering = false; this.write() })
    }
  }

  /** One write of every outcome waiting, taking writeMs; what arrives meanwhile waits for the next. */
  private write (): void {
    if (this.writing || this.unwritten.length === 0) return
    this.writing = true
    this.urgent = false
    const batch = this.unwritten
    this.unwritten = []
    this.at(this.clock + this.options.writeMs, () => {
      this.writing = false
      for (const { lane, item, decision } of batch) {
        if (decision === null) {
          lane.backlog.push({ to: item.to, attempts: item.attempts, dueAt: this.clock }) // released: due again
          continue
        }
        lane.outcomes.push({ item, decision, at: this.clock })
        if (decision.status === 'pending') lane.backlog.push({ to: item.to, attempts: item.attempts + 1, dueAt: this.clock + decision.delayMs })
        this.handle(lane, { type: 'stored', item, decision })
      }
      if (this.unwritten.length > 0) {
        if (this.options.lingerMs === 0 || this.urgent) this.write()
        else if (!this.lingering) {
          this.lingering = true
          this.at(this.clock + this.options.lingerMs, () => { this.lingering = false; this.write() })
        }
      }
    })
  }

  private requestClaims (): void {
    if (this.claiming) { this.claimAgain = true; return }
    this.claiming = true
    this.at(this.clock, () => this.claimPass(0))
  }

  /** One lane's turn of the claim pass, then the next lane's, as Dispatcher.claimPass runs them. */
  private claimPass (index: number): void {
    if (index === 0) this.claimAgain = false
    if (index >= this.lanes.length) {
      if (this.claimAgain) this.at(this.clock, () => this.claimPass(0))
      else this.claiming = false
      return
    }
    const lane = this.lanes[index]!
    const plan = lane.core.planClaim()
    if (plan?.type !== 'claim') { this.claimPass(index + 1); return }
    this.at(this.clock + this.options.claimMs, () => {
      const due = lane.backlog.filter((m) => m.dueAt <= this.clock).slice(0, Math.max(0, plan.n))
      for (const m of due) lane.backlog.splice(lane.backlog.indexOf(m), 1)
      lane.claims.push({ at: this.clock, asked: plan.n, got: due.length })
      this.handle(lane, { type: 'claimed', got: due.length, items: due.map((m) => message(m.to, m.attempts, this.clock)) })
      this.claimPass(index + 1)
    })
  }

  private schedulePoll (): void {
    this.at(this.clock + this.options.pollMs, () => { this.wake(); this.schedulePoll() })
  }
}

/** The most events in any window of `windowMs` (the fake provider's busiestWindow, on simulated times). */
export function busiest (times: readonly number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! - sorted[i]! < windowMs) j++
    most = Math.max(most, j - i)
  }
  return most
}

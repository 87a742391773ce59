/**
 * One provider's lane: its own queue of claimed messages, token bucket,
 * concurrency cap and client. Lanes share nothing but the dispatcher's
 * database session, so a slow or failing provider only ever fills its own
 * lane. A lane asks for as much work as it can start within the claim
 * horizon, so messages never sit claimed for long.
 */
import type { ProviderConfig } from '../config.js'
import type { Claimed } from './claimed.js'
import { failureFromError } from './providers/classify.js'
import type { ProviderClient, SendResult } from './providers/index.js'
import { TokenBucket } from './token-bucket.js'

export interface LaneHooks {
  /** A send finished (not called for abandoned sends). */
  readonly onResult: (lane: ProviderLane, item: Claimed, result: SendResult) => void
  /** A claimed message that will not be sent now (stale, or stopping): give it back. */
  readonly onRelease: (lane: ProviderLane, item: Claimed) => void
  /** The queue runs low and the database may have more. */
  readonly onHungry: (lane: ProviderLane) => void
  /** Sends waited this long for a token of the bucket (reported when the wait ends). */
  readonly onRateLimitWait?: (lane: ProviderLane, ms: number) => void
  /** Queued work waits for a slot that only a stored outcome frees: outcomes should be written now. */
  readonly onSlotsHeld?: (lane: ProviderLane) => void
}

/** The lease a lane's claims carry: room for a whole request well inside it (see staleAfterMs). */
export function laneLeaseMs (provider: ProviderConfig, leaseMs: number): number {
  return Math.max(leaseMs, 3 * provider.timeoutMs)
}

/** How far ahead a lane claims: what it can start within this many ms. */
const kClaimHorizonMs = 1000
/** Rows per claim statement, and the most a lane holds queued. */
const kMaxClaimRows = 1000
const kMaxQueued = 5000

export class ProviderLane {
  readonly name: string
  readonly bucket: TokenBucket
  /** The most sends in flight: the provider's concurrency, or this instance's share of it in a fleet (setLimits). */
  concurrency: number
  private isDrained = false
  /** Counts undrain() calls, so a claim that was already running when new work arrived cannot mark the lane drained. */
  private wakes = 0
  /**
   * Pre-claim credit granted to the writer and not yet reported back
   * (src/preclaim-credit.ts): messages that may arrive claimed without a
   * claim of ours, so no more is granted while it covers what the lane wants.
   */
  granted = 0
  private queue: Claimed[] = []
  private head = 0
  private readonly inFlight = new Set<Claimed>()
  /**
   * Sends that finished but whose outcome is not stored yet. They keep their
   * concurrency slot until it is: a crash can then re-send at most
   * `concurrency` messages (at-least-once, bounded by the in-flight cap).
   */
  private readonly unsettled = new Set<Claimed>()
  private timer: NodeJS.Timeout | null = null
  private timerAt = Infinity
  private latencyMs = Number.NaN // moving average of send latency (NaN until the first answer); sizes claims for slow providers
  private stopped = false
  private blockedSince: number | null = null // when the bucket last made a ready send wait
  /** A message held this long is given back instead of sent: its send could outlast the lease (leaseMs >= 3 × timeoutMs). */
  private readonly staleAfterMs: number

  constructor (
    readonly config: ProviderConfig,
    readonly channelIds: readonly number[],
    readonly leaseMs: number,
    private readonly client: ProviderClient,
    private readonly hooks: LaneHooks,
    /** The lane's slot of pre-claim credit (src/preclaim-credit.ts), or null: the writer never pre-claims its messages. */
    readonly preclaimSlot: number | null = null
  ) {
    this.name = config.name
    this.bucket = new TokenBucket(config.rateLimit.perSecond, config.rateLimit.burst)
    this.concurrency = config.concurrency
    this.staleAfterMs = leaseMs * 0.9 - config.timeoutMs
  }

  /** There may be new due work (a wake, a poll, a retry's time). */
  undrain (): void {
    this.isDrained = false
    this.wakes++
  }

  /** Records a claim's result: short means drained, unless a wake came in while the claim ran. */
  claimed (asked: number, got: number, wakesBefore: number): void {
    this.isDrained = got < asked && this.wakes === wakesBefore
  }

  /** The last claim came back short: nothing more is due until a wake, a poll or a retry's time. */
  get drained (): boolean { return this.isDrained }

  get wakeCount (): number { return this.wakes }

  get queued (): number { return this.queue.length - this.head }
  get sending (): number { return this.inFlight.size }

  /** How many messages to claim now (0 or less: none). */
  wanted (): number {
    if (this.stopped) return 0
    const concurrency = this.concurrency
    const byRate = this.bucket.capacityWithin(kClaimHorizonMs)
    // Until a first answer shows how fast the provider is, only fill the free slots.
    const byLatency = Number.isNaN(this.latencyMs) ? 0 : Math.ceil(concurrency * kClaimHorizonMs / Math.max(1, this.latencyMs))
    const target = Math.min(kMaxQueued, byRate, Math.max(concurrency - this.inFlight.size - this.unsettled.size, byLatency))
    return Math.min(kMaxClaimRows, target - this.queued)
  }

  /**
   * How much more pre-claim credit to grant: what the lane wants beyond the
   * credit already out. Claims do not count that credit (so credit left
   * untaken never keeps due work from being claimed); the lane then holds at
   * most twice its target.
   */
  grantable (): number {
    return this.wanted() - this.granted
  }

  /**
   * Worth a claim (or, when drained and pre-claims are on, a grant of
   * credit): at least half the target is missing (or anything at all for a
   * small target).
   */
  hungry (): boolean {
    if (this.stopped) return false
    if (this.isDrained) {
      const more = this.preclaimSlot === null ? 0 : this.grantable()
      return more > 0 && more >= (this.queued + this.granted + more) / 2
    }
    const want = this.wanted()
    return want > 0 && want >= (this.queued + want) / 2
  }

  /** New limits (a fleet share, src/fleet/); concurrency 0 holds every send until it is raised again. */
  setLimits (perSecond: number, burst: number, concurrency: number): void {
    this.bucket.setLimits(perSecond, burst)
    this.concurrency = concurrency
    this.pump()
  }

  enqueue (items: readonly Claimed[]): void {
    for (const item of items) this.queue.push(item)
    this.pump()
  }

  /** Starts sends while the cap and the bucket allow. */
  pump (): void {
    if (this.stopped) return
    const concurrency = this.concurrency
    while (this.inFlight.size + this.unsettled.size < concurrency && this.head < this.queue.length) {
      const item = this.queue[this.head]!
      if (performance.now() - item.claimedAt > this.staleAfterMs) {
        this.shift()
        this.hooks.onRelease(this, item)
        continue
      }
      const wait = this.bucket.take()
      if (wait > 0) {
        this.blockedSince ??= performance.now()
        this.arm(wait)
        break
      }
      if (this.blockedSince !== null) {
        this.hooks.onRateLimitWait?.(this, performance.now() - this.blockedSince)
        this.blockedSince = null
      }
      this.shift()
      this.send(item)
    }
    // Queued work waits for a slot that only a stored outcome can free: the outcomes should not linger.
    const slotsFull = this.inFlight.size + this.unsettled.size >= concurrency
    if (slotsFull && this.unsettled.size > 0 && this.head < this.queue.length) this.hooks.onSlotsHeld?.(this)
    if (this.hungry()) this.hooks.onHungry(this)
  }

  /** The outcome of a finished send is stored: its concurrency slot is free again. */
  settled (item: Claimed): void {
    if (this.unsettled.delete(item)) this.pump()
  }

  /** Stops sending; returns the queued (unsent) messages. */
  stop (): Claimed[] {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const rest = this.queue.slice(this.head)
    this.queue = []
    this.head = 0
    return rest
  }

  /** Gives up on sends still in flight (their answers will be ignored) and closes the pool. */
  abandon (): Claimed[] {
    const rest = [...this.inFlight]
    for (const item of rest) item.abandoned = true
    this.inFlight.clear()
    this.client.close()
    return rest
  }

  private send (item: Claimed): void {
    this.inFlight.add(item)
    const started = performance.now()
    this.client.send(item).catch(failureFromError).then((result) => {
      if (item.abandoned) return
      this.inFlight.delete(item)
      this.unsettled.add(item)
      const latency = performance.now() - started
      this.latencyMs = Number.isNaN(this.latencyMs) ? latency : this.latencyMs + (latency - this.latencyMs) / 8
      if (!result.ok && result.rateLimited === true) this.slowDown(result.retryAfterMs ?? this.config.retry.baseDelayMs)
      this.hooks.onResult(this, item, result)
      this.pump()
    })
  }

  /** A 429: pause the bucket; if the pause outlasts the claim horizon, give the queue back rather than hold it claimed. */
  private slowDown (ms: number): void {
    this.bucket.pause(ms)
    if (ms <= kClaimHorizonMs) return
    while (this.head < this.queue.length) {
      const item = this.queue[this.head]!
      this.shift()
      this.hooks.onRelease(this, item)
    }
  }

  private shift (): void {
    this.head++
    // Compact now and then instead of Array#shift on every message.
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }

  private arm (ms: number): void {
    const at = performance.now() + ms
    if (this.timer !== null && this.timerAt <= at) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(() => { this.timer = null; this.timerAt = Infinity; this.pump() }, ms)
  }
}

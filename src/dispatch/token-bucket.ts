/**
 * A token bucket: `burst` tokens at most, refilled at `perSecond`. Over any
 * interval of t seconds it lets at most burst + perSecond·t sends through,
 * which is the bound the rate-limit tests measure at the fake provider.
 * A StartWindow keeps that bound for the provider's arrivals too (see
 * start-window.ts). Time comes from a monotonic clock (injectable for
 * tests), never Date.now(), so a wall-clock step cannot release a burst.
 */
import { StartWindow } from './start-window.js'

export type Clock = () => number

const monotonic: Clock = () => performance.now()

/** Throws a RangeError naming the first limit a bucket cannot run with. */
export function checkBucketLimits (perSecond: number, burst: number): void {
  if (!(Number.isFinite(perSecond) && perSecond > 0)) throw new RangeError('perSecond must be a positive number')
  if (!(Number.isFinite(burst) && burst >= 1)) throw new RangeError('burst must be a number >= 1')
}

export class TokenBucket {
  private rate: number
  private size: number
  private tokens: number
  private last: number
  private pausedUntil = -Infinity
  private readonly now: Clock
  private window: StartWindow | null

  constructor (perSecond: number, burst: number, now: Clock = monotonic) {
    checkBucketLimits(perSecond, burst)
    this.rate = perSecond
    this.size = burst
    this.now = now
    this.tokens = burst
    this.last = now()
    this.window = StartWindow.for(perSecond, burst, now)
  }

  get perSecond (): number { return this.rate }
  get burst (): number { return this.size }

  /**
   * New limits from now on. Tokens already spent stay spent: what is left
   * (refilled at the old rate up to now) is kept, cut to the new burst; a
   * pause keeps its end; the start window keeps the starts it has seen, so
   * raising the limits never releases more than the new bound allows.
   */
  setLimits (perSecond: number, burst: number): void {
    checkBucketLimits(perSecond, burst)
    this.refill(this.now())
    this.rate = perSecond
    this.size = burst
    this.tokens = Math.min(this.tokens, burst)
    const window = StartWindow.for(perSecond, burst, this.now)
    if (window !== null && this.window !== null) window.carry(this.window)
    this.window = window
  }

  /** Takes one token and returns 0, or takes nothing and returns how many ms until one is due. */
  take (): number {
    const t = this.now()
    if (t < this.pausedUntil) return Math.ceil(this.pausedUntil - t)
    this.refill(t)
    const windowWait = this.window?.waitMs() ?? 0
    if (this.tokens >= 1) {
      if (windowWait > 0) return windowWait
      this.tokens -= 1
      this.window?.record()
      return 0
    }
    // The epsilon absorbs float noise (0.98 tokens short by 1.0000000000000009 ms would otherwise wait 2 ms).
    return Math.max(1, windowWait, Math.ceil((1 - this.tokens) * 1000 / this.perSecond - 1e-9))
  }

  /**
   * The provider said "slow down" (a 429): no token for `ms`, and the bucket
   * starts empty afterwards, so sending resumes at the plain rate, not in a burst.
   */
  pause (ms: number): void {
    if (!(ms > 0)) return
    const t = this.now()
    const until = t + ms
    if (until <= this.pausedUntil) return
    this.pausedUntil = until
    this.tokens = 0
    this.last = until // refill() never counts time before `last`, so nothing accrues during the pause
  }

  /**
   * A bucket at a new rate and burst that keeps this one's tokens (at most
   * the new burst) and pause, so a reload never hands out a fresh burst.
   */
  withLimits (perSecond: number, burst: number): TokenBucket {
    const next = new TokenBucket(perSecond, burst, this.now)
    const t = this.now()
    if (t >= this.pausedUntil) this.refill(t)
    next.tokens = Math.min(burst, this.tokens)
    next.last = Math.max(t, this.last)
    next.pausedUntil = this.pausedUntil
    return next
  }

  /** How many ms the bucket stays paused (0 when it is not). */
  pausedFor (): number {
    return Math.max(0, Math.ceil(this.pausedUntil - this.now()))
  }

  /** At most how many tokens can be taken within the next `ms` (used to size claims; the start window may hold a few back). */
  capacityWithin (ms: number): number {
    const t = this.now()
    this.refill(t)
    const start = Math.max(t, this.pausedUntil, this.last)
    const refillMs = Math.max(0, t + ms - start)
    return Math.floor(this.tokens + refillMs * this.perSecond / 1000)
  }

  private refill (t: number): void {
    if (t <= this.last) return
    this.tokens = Math.min(this.size, this.tokens + (t - this.last) * this.rate / 1000)
    this.last = t
  }
}

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

export class TokenBucket {
  perSecond: number
  burst: number
  private tokens: number
  private last: number
  private pausedUntil = -Infinity
  private readonly now: Clock
  private window: StartWindow | null

  constructor (perSecond: number, burst: number, now: Clock = monotonic) {
    if (!(Number.isFinite(perSecond) && perSecond > 0)) throw new RangeError('perSecond must be a positive number')
    if (!(Number.isFinite(burst) && burst >= 1)) throw new RangeError('burst must be a number >= 1')
    this.perSecond = perSecond
    this.burst = burst
    this.now = now
    this.tokens = burst
    this.last = now()
    this.window = StartWindow.for(perSecond, burst, now)
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
   * New limits (a fleet share, src/fleet/): tokens earned so far at the old
   * rate are kept up to the new burst, and the starts of the last window
   * still count against the new bound.
   */
  setLimits (perSecond: number, burst: number): void {
    if (!(Number.isFinite(perSecond) && perSecond > 0)) throw new RangeError('perSecond must be a positive number')
    if (!(Number.isFinite(burst) && burst >= 1)) throw new RangeError('burst must be a number >= 1')
    if (perSecond === this.perSecond && burst === this.burst) return
    const t = this.now()
    this.refill(t)
    this.perSecond = perSecond
    this.burst = burst
    this.tokens = Math.min(this.tokens, burst)
    this.window = StartWindow.for(perSecond, burst, this.now, this.window)
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
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) * this.perSecond / 1000)
    this.last = t
  }
}

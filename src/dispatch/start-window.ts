/**
 * Holds the sends started in any window of (1 s + guard) to burst + perSecond.
 *
 * The token bucket already bounds the starts in any 1-second window by
 * burst + perSecond. The provider, though, counts arrivals, and arrivals
 * jitter: the first sends of a burst wait for new connections, a busy event
 * loop delays a write. A burst that arrives a few ms late shares a 1-second
 * window at the provider with the sends started a full second after it, and
 * that window holds one request too many (seen by dispatch-rate-limit.test
 * on a loaded machine, once with 27 when both cores were saturated). Keeping
 * the same bound over a window `guardMs` longer leaves that much room for
 * jitter.
 *
 * The guard never slows the sustained rate: at a steady perSecond, the send
 * burst + perSecond places back started 1000 · (1 + burst / perSecond) ms
 * ago, so a guard up to 1000 · burst / perSecond (and at most kGuardMs) only
 * delays the few sends right after a burst.
 */
/** The most jitter between sends that the window allows for. */
export const kGuardMs = 250
/** Bounds above this are not tracked (the log would cost memory); one request of jitter is noise there. */
export const kMaxTracked = 65_536

export class StartWindow {
  readonly limit: number
  readonly spanMs: number
  private readonly starts: Float64Array
  private next = 0
  private count = 0

  /** Returns null when the bound is too large to track (see kMaxTracked). `now` is the token bucket's clock. */
  static for (perSecond: number, burst: number, now: () => number, previous: StartWindow | null = null): StartWindow | null {
    const limit = Math.floor(burst + perSecond)
    if (limit > kMaxTracked) return null
    const window = new StartWindow(limit, 1000 + Math.min(kGuardMs, 1000 * burst / perSecond), now)
    // A window that replaces another (new limits) keeps its latest starts, so they still count.
    if (previous !== null) for (const at of previous.latest(window.limit)) window.recordAt(at)
    return window
  }

  /** The most recent `n` recorded starts, oldest first. */
  private latest (n: number): number[] {
    const out: number[] = []
    const take = Math.min(n, this.count)
    for (let i = take; i > 0; i--) out.push(this.starts[(this.next - i + this.limit) % this.limit]!)
    return out
  }

  private constructor (limit: number, spanMs: number, private readonly now: () => number) {
    this.limit = Math.max(1, limit)
    this.spanMs = spanMs
    this.starts = new Float64Array(this.limit)
  }

  /** 0 if a send may start now, else how many ms until one may. */
  waitMs (): number {
    if (this.count < this.limit) return 0
    const oldest = this.starts[this.next]!
    return Math.max(0, Math.ceil(oldest + this.spanMs - this.now()))
  }

  /** Records a send started now. */
  record (): void {
    this.recordAt(this.now())
  }

  private recordAt (at: number): void {
    this.starts[this.next] = at
    this.next = (this.next + 1) % this.limit
    if (this.count < this.limit) this.count++
  }
}

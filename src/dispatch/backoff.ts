/**
 * Retry timing, the one backoff of Hermes. For messages: exponential backoff
 * with full jitter (a uniformly random delay between 0 and the capped
 * exponential), so that many messages failing together do not come back
 * together; and Retry-After, which wins when a provider sends it. For a
 * database session's owner (src/store/database-session.ts): the capped
 * exponential itself (Backoff), one process retrying its own work.
 */
export interface BackoffPolicy {
  readonly baseDelayMs: number
  readonly maxDelayMs: number
}

/** Retry-After values beyond this are treated as this (a day): a bad header must not park a message for years. */
export const kMaxRetryAfterMs = 24 * 60 * 60 * 1000

/**
 * The delay before retry number `attempt` (1 = the first retry, after the first failed send):
 * random in [0, min(maxDelayMs, baseDelayMs · 2^(attempt-1))).
 */
export function backoffDelay (attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, policy))
}

/** The capped exponential of retry number `attempt` (1 = the first): min(maxDelayMs, baseDelayMs · 2^(attempt-1)). */
export function backoffCeiling (attempt: number, policy: BackoffPolicy): number {
  if (!(Number.isInteger(attempt) && attempt >= 1)) throw new RangeError('attempt must be a positive integer')
  // 2^attempt overflows to Infinity long after it passes any cap, and Math.min handles Infinity.
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))
}

/** How soon the owner of a database session tries again after a failure: 50 ms, doubling up to 2 s. */
export const kSessionBackoff: BackoffPolicy = { baseDelayMs: 50, maxDelayMs: 2000 }

/**
 * Consecutive failures of one retrying loop: each next() is the delay
 * before its next try (backoffCeiling of one more failure, no jitter);
 * reset() once a try succeeds.
 */
export class Backoff {
  private failures = 0
  constructor (private readonly policy: BackoffPolicy = kSessionBackoff) {}

  next (): number {
    if (this.failures < 64) this.failures++ // far past any cap; the count stays a small integer
    return backoffCeiling(this.failures, this.policy)
  }

  /** The delay next() last gave; the base delay before any failure. */
  get current (): number {
    return backoffCeiling(Math.max(1, this.failures), this.policy)
  }

  reset (): void {
    this.failures = 0
  }
}

/**
 * A Retry-After header in ms from `now`: either delta-seconds ("120") or an
 * HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"). Undefined when absent or
 * unreadable; a date in the past means "now" (0).
 */
export function parseRetryAfter (value: string | readonly string[] | undefined, now: number = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value as string | undefined)?.trim()
  if (text === undefined || text === '') return undefined
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, kMaxRetryAfterMs)
  // Only the forms RFC 9110 allows as HTTP-date; Date.parse alone would accept "1" or "tomorrow"-ish garbage.
  if (!/^[A-Za-z]{3},? /.test(text) && !/^[A-Za-z]{3,9}, \d/.test(text)) return undefined
  const at = Date.parse(text)
  if (Number.isNaN(at)) return undefined
  return Math.min(Math.max(0, at - now), kMaxRetryAfterMs)
}

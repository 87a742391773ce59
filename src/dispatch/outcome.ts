/**
 * What a send's result means for the message:
 * - accepted → 'sent' (a note in last_error when the provider gave no id);
 * - permanent failure → 'failed' at once, reason kept;
 * - retryable failure → 'pending' again after Retry-After or backoff, until
 *   maxAttempts sends have failed, then 'failed' (the dead letter), reason kept;
 * - a provider's 429 is a retryable failure like a 5xx (issue #3: retries
 *   up to maxAttempts), with its Retry-After honoured; the provider's bucket
 *   also pauses (lane-core.ts). Our own token bucket never fails a
 *   message: it only makes sends wait.
 */
import type { RetryPolicy } from '../config.js'
import { backoffDelay } from './backoff.js'
import type { Status } from './dispatch-sql.js'
import type { SendResult } from './providers/index.js'

export interface Decision {
  readonly status: Status
  readonly counted: 0 | 1
  readonly delayMs: number
  readonly providerMessageId: string | null
  readonly lastError: string | null
}

export function decide (result: SendResult, attemptsBefore: number, policy: RetryPolicy, random: () => number = Math.random): Decision {
  if (result.ok) return { status: 'sent', counted: 1, delayMs: 0, providerMessageId: result.providerMessageId, lastError: result.note ?? null }
  if (!result.retryable) return { status: 'failed', counted: 1, delayMs: 0, providerMessageId: null, lastError: result.reason }
  const attempt = attemptsBefore + 1
  if (attempt >= policy.maxAttempts) {
    return { status: 'failed', counted: 1, delayMs: 0, providerMessageId: null, lastError: `gave up after ${attempt} attempts: ${result.reason}` }
  }
  const delayMs = result.retryAfterMs ?? backoffDelay(attempt, policy, random)
  return { status: 'pending', counted: 1, delayMs, providerMessageId: null, lastError: result.reason }
}

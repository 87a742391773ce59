import type { HttpResponse } from 'uWebSockets.js'
import { Rejection } from '../errors.js'
import { sendError, sendSuccess, successStatus, type ErrorAnswer, type SuccessKind } from './answers.js'
import type { HttpMeter } from './http-metrics.js'

const kSweepMs = 50

interface Pending {
  readonly res: HttpResponse
  readonly requestId: string
  readonly channel: string | null
  readonly receivedAtMs: number
  readonly deadline: number
  readonly success: SuccessKind
  aborted: boolean
}

/**
 * Requests waiting for their verdict (durable mode: for the commit), keyed
 * by the slot number their ring record carries. Every pending request is
 * answered exactly once: by its verdict, or 503 when its ack timeout passes.
 */
export class PendingRequests {
  private readonly waiting = new Map<number, Pending>()
  private nextSlot = 1
  private readonly timer: NodeJS.Timeout

  constructor (private readonly ackTimeoutMs: number, private readonly meter: HttpMeter) {
    // All requests share one timeout, so Map insertion order is deadline
    // order and a sweep stops at the first request still in time: cheap
    // enough to run every 50 ms, which is how late past its ack timeout a
    // request can be answered (the contract says "at most an ack timeout").
    this.timer = setInterval(() => this.sweep(Date.now()), Math.min(kSweepMs, ackTimeoutMs))
    this.timer.unref()
  }

  get size (): number { return this.waiting.size }

  /** A fresh slot number (u32, never 0, skipping any still waiting after wrap-around). */
  allocate (): number {
    let slot = this.nextSlot
    while (this.waiting.has(slot)) slot = (slot + 1) >>> 0 || 1
    this.nextSlot = (slot + 1) >>> 0 || 1
    return slot
  }

  /** `channel` is null for a delivery receipt; `success` is how a commit is answered (by the channel's format). */
  add (slot: number, res: HttpResponse, requestId: string, channel: string | null, receivedAtMs: number, success: SuccessKind = 'stored'): void {
    this.waiting.set(slot, { res, requestId, channel, receivedAtMs, deadline: receivedAtMs + this.ackTimeoutMs, success, aborted: false })
  }

  /** The client went away: nothing to answer, but the record goes on to be stored. */
  abort (slot: number): void {
    const entry = this.waiting.get(slot)
    if (entry !== undefined) entry.aborted = true
  }

  accept (slot: number): void {
    const entry = this.take(slot)
    if (entry === undefined) return
    this.meter.committed(entry.receivedAtMs)
    this.meter.answered(entry.channel, successStatus(entry.success), undefined, entry.receivedAtMs)
    if (!entry.aborted) sendSuccess(entry.res, entry.requestId, entry.success, true)
  }

  reject (slot: number, answer: ErrorAnswer): void {
    const entry = this.take(slot)
    if (entry === undefined) return
    this.meter.answered(entry.channel, answer.status, answer.code, entry.receivedAtMs)
    if (!entry.aborted) sendError(entry.res, entry.requestId, answer)
  }

  private take (slot: number): Pending | undefined {
    const entry = this.waiting.get(slot)
    if (entry !== undefined) this.waiting.delete(slot)
    return entry
  }

  sweep (now: number): void {
    for (const [slot, entry] of this.waiting) {
      if (entry.deadline > now) break
      this.reject(slot, {
        ...Rejection.ackTimeout,
        message: 'the message was not committed within the ack timeout; it may still be stored, and a retry with the same id is deduplicated',
        retryAfterSeconds: 1
      })
    }
  }

  /** Answers every waiting request (used when shutdown cannot wait any longer). */
  rejectAll (answer: ErrorAnswer): void {
    for (const slot of [...this.waiting.keys()]) this.reject(slot, answer)
  }

  close (): void {
    clearInterval(this.timer)
  }
}

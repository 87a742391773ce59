import { Rejection } from '../errors.js'
import { sendError, sendSuccess, successStatus, type SuccessKind } from '../http/answers.js'
import type { PendingRequests } from '../http/pending-requests.js'
import type { HttpMeter } from '../http/http-metrics.js'
import type { WebhookArrival } from '../http/server.js'
import type { Feeder } from './feeder.js'
import type { IngressRing } from './ring-buffer.js'
import { kKindReceipt } from './ring-layout.js'

/** How each channel is answered and how large bodies travel. */
export interface IntakeRoutes {
  /** How a stored webhook of each channel (by index) is answered. */
  readonly success: readonly SuccessKind[]
  /** Bodies up to this size are written into the ring; larger ones (a channel's own maxBodyBytes) travel out of band. */
  readonly ringBodyBytes: number
  /** Most bytes of out-of-band bodies waiting or being processed at once; beyond it, 503. */
  readonly maxOutOfBandBytes: number
}

/**
 * Puts an arrived webhook into the ring and decides when it is answered:
 * durable mode parks the response until its commit (or verdict); enqueued
 * mode answers 202 as soon as the record is in the ring.
 */
export class Intake {
  constructor (
    private readonly ring: IngressRing,
    private readonly feeder: Feeder,
    private readonly pending: PendingRequests,
    private readonly durable: boolean,
    private readonly meter: HttpMeter,
    private readonly channels: readonly string[],
    private readonly routes?: IntakeRoutes
  ) {}

  accept (arrival: WebhookArrival): void {
    const slot = this.durable ? this.pending.allocate() : 0
    const receipt = arrival.kind === kKindReceipt
    const channel = receipt ? null : this.channels[arrival.channelIndex]!
    const routes = this.routes
    // A body over the ring's record budget gets a shared buffer of its own, so the ring (and with it
    // every other channel) is sized for ordinary bodies, not for the largest one a channel allows.
    let outOfBand: SharedArrayBuffer | undefined
    if (routes !== undefined && arrival.body.byteLength > routes.ringBodyBytes) {
      if (this.feeder.outOfBandBytes + arrival.body.byteLength <= routes.maxOutOfBandBytes) {
        outOfBand = new SharedArrayBuffer(arrival.body.byteLength)
        new Uint8Array(outOfBand).set(arrival.body)
      }
    }
    const tooLarge = routes !== undefined && arrival.body.byteLength > routes.ringBodyBytes && outOfBand === undefined
    const offset = tooLarge
      ? -1
      : this.ring.tryWrite({
        slot,
        receivedAtMs: arrival.receivedAtMs,
        channelIndex: arrival.channelIndex,
        body: arrival.body,
        kind: arrival.kind,
        meta: arrival.meta,
        outOfBand: outOfBand !== undefined,
        ...arrival.headers
      })
    this.meter.bodyBytes(arrival.body.byteLength)
    if (offset < 0) {
      this.meter.answered(channel, 503, Rejection.bufferFull.code, arrival.receivedAtMs)
      sendError(arrival.res, arrival.requestId, {
        ...Rejection.bufferFull,
        message: 'the ingress buffer is full; retry after the indicated delay',
        retryAfterSeconds: 1
      })
      return
    }
    this.feeder.written(outOfBand)
    const success: SuccessKind = receipt ? 'ok' : routes?.success[arrival.channelIndex] ?? 'stored'
    if (this.durable) {
      this.pending.add(slot, arrival.res, arrival.requestId, channel, arrival.receivedAtMs, success)
      arrival.onAbort = () => this.pending.abort(slot)
    } else {
      this.meter.answered(channel, successStatus(success), undefined, arrival.receivedAtMs)
      sendSuccess(arrival.res, arrival.requestId, success, false)
    }
  }
}

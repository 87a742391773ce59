import { Rejection } from '../errors.js'
import { acceptedBody, sendError, sendJson } from '../http/answers.js'
import type { PendingRequests } from '../http/pending-requests.js'
import type { HttpMeter } from '../http/http-metrics.js'
import type { WebhookArrival } from '../http/server.js'
import type { Feeder } from './feeder.js'
import type { IngressRing } from './ring-buffer.js'

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
    private readonly channels: readonly string[]
  ) {}

  accept (arrival: WebhookArrival): void {
    const slot = this.durable ? this.pending.allocate() : 0
    const offset = this.ring.tryWrite({
      slot,
      receivedAtMs: arrival.receivedAtMs,
      channelIndex: arrival.channelIndex,
      body: arrival.body,
      ...arrival.headers
    })
    const channel = this.channels[arrival.channelIndex]!
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
    this.feeder.written()
    if (this.durable) {
      this.pending.add(slot, arrival.res, arrival.requestId, channel, arrival.receivedAtMs)
      arrival.onAbort = () => this.pending.abort(slot)
    } else {
      this.meter.answered(channel, 202, undefined, arrival.receivedAtMs)
      sendJson(arrival.res, 202, arrival.requestId, acceptedBody(arrival.requestId, false))
    }
  }
}

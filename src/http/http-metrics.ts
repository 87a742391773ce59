import type { SharedMetrics, Slot } from '../metrics/shared-metrics.js'
import { httpStatuses, rejectionCodes } from '../metrics/definitions.js'

const causeByCode: Readonly<Record<string, string>> = {
  HERMES_ERR_BUFFER_FULL: 'buffer_full',
  HERMES_ERR_DATABASE_UNAVAILABLE: 'database_down',
  HERMES_ERR_DRAINING: 'draining',
  HERMES_ERR_ACK_TIMEOUT: 'ack_timeout'
}

/**
 * Counts every HTTP answer once, where it is sent: status, channel, cause or
 * error code, time to answer. Runs on the main thread for every request, so
 * every slot is resolved once, here, and answering only indexes arrays and maps.
 */
export class HttpMeter {
  /** requests[channel or 'none'][status] */
  private readonly requests = new Map<string, Map<number, Slot>>()
  private readonly requestsOther = new Map<string, Slot>()
  private readonly accepted = new Map<string, Slot>()
  private readonly unavailable = new Map<string, Slot>()
  private readonly rejected = new Map<string, Slot>()
  private readonly answerSeconds: Slot
  private readonly bodyBytesSlot: Slot
  private readonly commitLatency: Slot

  constructor (private readonly metrics: SharedMetrics, channels: readonly string[]) {
    for (const channel of [...channels, 'none']) {
      this.requests.set(channel, new Map(httpStatuses.map((status) => [Number(status), metrics.slot('hermes_http_requests_total', [channel, status])])))
      this.requestsOther.set(channel, metrics.slot('hermes_http_requests_total', [channel, 'other']))
    }
    for (const channel of channels) this.accepted.set(channel, metrics.slot('hermes_ingest_accepted_total', [channel]))
    for (const [code, cause] of Object.entries(causeByCode)) this.unavailable.set(code, metrics.slot('hermes_ingest_unavailable_total', [cause]))
    for (const code of rejectionCodes) this.rejected.set(code, metrics.slot('hermes_ingest_rejected_total', [code]))
    this.answerSeconds = metrics.slot('hermes_http_answer_seconds')
    this.bodyBytesSlot = metrics.slot('hermes_http_request_body_bytes')
    this.commitLatency = metrics.slot('hermes_commit_latency_seconds')
  }

  /** `channel` is null off the webhook route or for an unknown channel; `receivedAtMs` only for webhooks. */
  answered (channel: string | null, status: number, code?: string, receivedAtMs?: number): void {
    const m = this.metrics
    const byStatus = channel === null ? undefined : this.requests.get(channel)
    const label = byStatus === undefined ? 'none' : channel!
    m.add((byStatus ?? this.requests.get('none')!).get(status) ?? this.requestsOther.get(label)!)
    if (receivedAtMs !== undefined) m.record(this.answerSeconds, (Date.now() - receivedAtMs) / 1000)
    if (status === 202 || (status === 200 && byStatus !== undefined)) {
      const slot = this.accepted.get(label)
      if (slot !== undefined) m.add(slot)
    } else if (code !== undefined) {
      const slot = status === 503 ? this.unavailable.get(code) : this.rejected.get(code)
      if (slot !== undefined) m.add(slot)
    }
  }

  /** Enqueued mode: a webhook already answered 202 that the workers then refused. */
  rejectedAfterAnswer (code: string): void {
    const slot = this.rejected.get(code)
    if (slot !== undefined) this.metrics.add(slot)
  }

  bodyBytes (bytes: number): void {
    this.metrics.record(this.bodyBytesSlot, bytes)
  }

  committed (receivedAtMs: number): void {
    this.metrics.record(this.commitLatency, (Date.now() - receivedAtMs) / 1000)
  }
}

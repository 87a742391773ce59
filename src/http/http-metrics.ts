import type { SharedMetrics, Slot } from '../metrics/shared-metrics.js'
import { httpStatuses, rejectionCodes } from '../metrics/definitions.js'

const knownStatuses = new Set<string>(httpStatuses)
const causeByCode: Record<string, string> = {
  HERMES_ERR_BUFFER_FULL: 'buffer_full',
  HERMES_ERR_DATABASE_UNAVAILABLE: 'database_down',
  HERMES_ERR_DRAINING: 'draining',
  HERMES_ERR_ACK_TIMEOUT: 'ack_timeout'
}

/**
 * Counts every HTTP answer once, where it is sent: status, channel, cause or
 * error code, time to answer. Runs on the main thread for every request, so
 * slots are resolved once and cached.
 */
export class HttpMeter {
  private readonly channels: ReadonlySet<string>
  private readonly rejectionCodes = new Set(rejectionCodes)
  private readonly slots = new Map<string, Slot>()
  private readonly answerSeconds: Slot
  private readonly bodyBytesSlot: Slot
  private readonly commitLatency: Slot

  constructor (private readonly metrics: SharedMetrics, channels: readonly string[]) {
    this.channels = new Set(channels)
    this.answerSeconds = metrics.slot('hermes_http_answer_seconds')
    this.bodyBytesSlot = metrics.slot('hermes_http_request_body_bytes')
    this.commitLatency = metrics.slot('hermes_commit_latency_seconds')
  }

  private cached (name: string, labels: readonly string[]): Slot {
    const key = `${name}|${labels.join('|')}`
    let slot = this.slots.get(key)
    if (slot === undefined) {
      slot = this.metrics.slot(name, labels)
      this.slots.set(key, slot)
    }
    return slot
  }

  /** `channel` is null off the webhook route or for an unknown channel; `receivedAtMs` only for webhooks. */
  answered (channel: string | null, status: number, code?: string, receivedAtMs?: number): void {
    const m = this.metrics
    const channelLabel = channel !== null && this.channels.has(channel) ? channel : 'none'
    const statusLabel = knownStatuses.has(String(status)) ? String(status) : 'other'
    m.add(this.cached('hermes_http_requests_total', [channelLabel, statusLabel]))
    if (receivedAtMs !== undefined) m.record(this.answerSeconds, (Date.now() - receivedAtMs) / 1000)
    if (status === 202 && channelLabel !== 'none') m.add(this.cached('hermes_ingest_accepted_total', [channelLabel]))
    else if (status === 503 && code !== undefined && causeByCode[code] !== undefined) m.add(this.cached('hermes_ingest_unavailable_total', [causeByCode[code]!]))
    else if (code !== undefined && this.rejectionCodes.has(code)) m.add(this.cached('hermes_ingest_rejected_total', [code]))
  }

  /** Enqueued mode: a webhook already answered 202 that the workers then refused. */
  rejectedAfterAnswer (code: string): void {
    if (this.rejectionCodes.has(code)) this.metrics.add(this.cached('hermes_ingest_rejected_total', [code]))
  }

  bodyBytes (bytes: number): void {
    this.metrics.record(this.bodyBytesSlot, bytes)
  }

  committed (receivedAtMs: number): void {
    this.metrics.record(this.commitLatency, (Date.now() - receivedAtMs) / 1000)
  }
}

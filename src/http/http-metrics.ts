import type { SharedMetrics } from '../metrics/shared-metrics.js'
import { httpStatuses, rejectionCodes } from '../metrics/definitions.js'

const knownStatuses = new Set<string>(httpStatuses)
const causeByCode: Record<string, string> = {
  HERMES_ERR_BUFFER_FULL: 'buffer_full',
  HERMES_ERR_DATABASE_UNAVAILABLE: 'database_down',
  HERMES_ERR_DRAINING: 'draining',
  HERMES_ERR_ACK_TIMEOUT: 'ack_timeout'
}

/** Counts every HTTP answer once, where it is sent: status, channel, cause or error code, time to answer. */
export class HttpMeter {
  private readonly channels: ReadonlySet<string>
  private readonly rejectionCodes = new Set(rejectionCodes)

  constructor (private readonly metrics: SharedMetrics, channels: readonly string[]) {
    this.channels = new Set(channels)
  }

  /** `channel` is null off the webhook route or for an unknown channel; `receivedAtMs` only for webhooks. */
  answered (channel: string | null, status: number, code?: string, receivedAtMs?: number): void {
    const m = this.metrics
    const channelLabel = channel !== null && this.channels.has(channel) ? channel : 'none'
    const statusLabel = knownStatuses.has(String(status)) ? String(status) : 'other'
    m.inc('hermes_http_requests_total', [channelLabel, statusLabel])
    if (receivedAtMs !== undefined) m.observe('hermes_http_answer_seconds', [], (Date.now() - receivedAtMs) / 1000)
    if (status === 202 && channelLabel !== 'none') m.inc('hermes_ingest_accepted_total', [channelLabel])
    else if (status === 503 && code !== undefined && causeByCode[code] !== undefined) m.inc('hermes_ingest_unavailable_total', [causeByCode[code]!])
    else if (code !== undefined && this.rejectionCodes.has(code)) m.inc('hermes_ingest_rejected_total', [code])
  }

  /** Enqueued mode: a webhook already answered 202 that the workers then refused. */
  rejectedAfterAnswer (code: string): void {
    if (this.rejectionCodes.has(code)) this.metrics.inc('hermes_ingest_rejected_total', [code])
  }

  bodyBytes (bytes: number): void {
    this.metrics.observe('hermes_http_request_body_bytes', [], bytes)
  }

  committed (receivedAtMs: number): void {
    this.metrics.observe('hermes_commit_latency_seconds', [], (Date.now() - receivedAtMs) / 1000)
  }
}

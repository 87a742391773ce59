import { Rejection } from '../errors.js'
import type { MetricDefinition } from './shared-metrics.js'
import { MetricsLayout } from './shared-metrics.js'
import { receiptLabels } from '../delivery-status.js'

/** What the layout depends on; every thread gets the same spec, so offsets agree. */
export interface MetricsSpec {
  readonly channels: readonly string[]
  readonly providers: readonly string[]
  readonly workers: number
}

export const httpStatuses = ['200', '202', '400', '401', '404', '405', '413', '415', '422', '500', '503'] as const
export const unavailableCauses = ['buffer_full', 'database_down', 'draining', 'ack_timeout'] as const
/** Error codes of answers that refuse a webhook for what it is (4xx) or fail it (500). */
export const rejectionCodes: readonly string[] = [...new Set(Object.values(Rejection).filter((r) => r.status <= 500).map((r) => r.code))]
/** Inbound record formats: the channel formats, and the two kinds of delivery receipt. */
export const inboundFormats = ['hermes', 'twilio', 'sendgrid-parse', 'twilio-status', 'sendgrid-events'] as const
const seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/**
 * Receipt→commit: durable answers wait for it, and its p99 is read against
 * 50 and 100 ms goals, so it is resolved to about 25% or finer from 1 to
 * 500 ms (the coarse list above could only say 250 or 1000 ms).
 */
const commitSeconds = [0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1,
  0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.75, 1, 2.5, 5, 10]

export function threadNames (workers: number): string[] {
  return ['main', 'writer', 'dispatch', ...workerNames(workers)]
}

/** worker-N is the pool's Nth slot: a thread that replaces a dead one reports under the same name. */
export function workerNames (workers: number): string[] {
  return Array.from({ length: workers }, (_, i) => `worker-${i}`)
}

export function metricDefinitions (spec: MetricsSpec): MetricDefinition[] {
  const channel = ['channel', [...spec.channels, 'none']] as const
  return [
    { name: 'hermes_http_requests_total', help: 'HTTP answers by channel (none: not a webhook route) and status', type: 'counter', labels: [channel, ['status', [...httpStatuses, 'other']]] },
    { name: 'hermes_http_request_body_bytes', help: 'Size of webhook request bodies', type: 'histogram', buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576] },
    { name: 'hermes_http_answer_seconds', help: 'Time from reading a webhook to answering it', type: 'histogram', buckets: seconds, scale: 1e6 },
    { name: 'hermes_ingest_accepted_total', help: 'Webhooks answered 202, by channel', type: 'counter', labels: [['channel', spec.channels]] },
    { name: 'hermes_ingest_rejected_total', help: 'Webhooks refused for what they are (4xx, 500), by error code', type: 'counter', labels: [['code', rejectionCodes]] },
    { name: 'hermes_ingest_unavailable_total', help: 'Webhooks answered 503, by cause', type: 'counter', labels: [['cause', unavailableCauses]] },
    { name: 'hermes_commit_latency_seconds', help: 'Durable mode: time from receipt to the commit of the message', type: 'histogram', buckets: commitSeconds, scale: 1e6 },
    { name: 'hermes_inbound_total', help: 'Inbound records processed by the workers, by format (channel format or receipt kind) and outcome', type: 'counter', labels: [['format', inboundFormats], ['outcome', ['accepted', 'rejected']]] },
    { name: 'hermes_delivery_receipts_total', help: 'Delivery receipt events stored (each once), by provider and the status they report', type: 'counter', labels: [['provider', spec.providers], ['status', receiptLabels]] },
    { name: 'hermes_delivery_seconds', help: 'Time from the provider accepting a message to its delivered receipt', type: 'histogram', buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400], scale: 1e3 },
    { name: 'hermes_worker_records_total', help: 'Ring records processed by the workers, by outcome', type: 'counter', labels: [['outcome', ['accepted', 'rejected']]] },
    { name: 'hermes_worker_task_failures_total', help: 'Worker tasks that failed (a worker died or threw): retried once, then failed (answered 500)', type: 'counter', labels: [['outcome', ['retried', 'failed']]] },
    { name: 'hermes_worker_busy_seconds_total', help: 'Time each worker thread spent on tasks (its utilisation is the rate of this)', type: 'counter', labels: [['thread', workerNames(spec.workers)]], scale: 1e6 },
    { name: 'hermes_worker_task_seconds', help: 'Time a worker spends on one range of records (verify, parse, validate, encode)', type: 'histogram', buckets: seconds, scale: 1e6 },
    { name: 'hermes_writer_batches_total', help: 'Transactions committed by the writer', type: 'counter' },
    { name: 'hermes_writer_batch_rows', help: 'Rows per committed transaction', type: 'histogram', buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000] },
    { name: 'hermes_writer_transaction_seconds', help: 'COPY + merge + commit time per transaction', type: 'histogram', buckets: seconds, scale: 1e6 },
    { name: 'hermes_writer_failures_total', help: 'Failed transactions: transient (retried) or refused rows (isolated)', type: 'counter', labels: [['kind', ['transient', 'refused']]] },
    { name: 'hermes_writer_id_cache_total', help: 'Rows whose party and conversation ids were cached (hit) or resolved in SQL (miss)', type: 'counter', labels: [['result', ['hit', 'miss']]] },
    { name: 'hermes_messages_stored_total', help: 'New messages committed, by channel', type: 'counter', labels: [['channel', spec.channels]] },
    { name: 'hermes_attachments_stored_total', help: 'Attachments committed with new messages', type: 'counter' },
    { name: 'hermes_messages_duplicate_total', help: 'Committed rows whose (channel, id) was already stored', type: 'counter' },
    { name: 'hermes_dispatch_sends_total', help: 'Provider sends by outcome: sent, retry (will be tried again), failed (dead letter)', type: 'counter', labels: [['provider', spec.providers], ['outcome', ['sent', 'retry', 'failed']]] },
    { name: 'hermes_dispatch_claims_total', help: 'Claim statements run, per provider (messages claimed / claims = rows per claim)', type: 'counter', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_claimed_total', help: 'Messages claimed from the database, per provider', type: 'counter', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_preclaimed_total', help: 'Messages the writer inserted already claimed for this dispatcher, which needed no claim statement', type: 'counter', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_rate_limited_total', help: 'Provider answers 429', type: 'counter', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_in_flight', help: 'Sends started and not yet settled (outcome stored), per provider', type: 'gauge', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_backlog', help: 'Messages pending or being sent, per provider (from the database)', type: 'gauge', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_oldest_pending_seconds', help: 'Age of the oldest due pending message, per provider', type: 'gauge', labels: [['provider', spec.providers]], scale: 1e3 },
    { name: 'hermes_dispatch_dead_letters', help: 'Messages that failed for good (dead letters), per provider', type: 'gauge', labels: [['provider', spec.providers]] },
    { name: 'hermes_dispatch_rate_limit_wait_seconds_total', help: 'Time sends waited for a token of the provider bucket', type: 'counter', labels: [['provider', spec.providers]], scale: 1e6 },
    { name: 'hermes_dispatch_end_to_end_seconds', help: 'Time from receipt of the webhook to the provider accepting the message', type: 'histogram', buckets: [...seconds, 30, 60, 300], scale: 1e6 },
    { name: 'hermes_fleet_instances', help: 'Live instances sharing this database, as this one last saw them (itself included)', type: 'gauge' },
    { name: 'hermes_fleet_share_per_second', help: "This instance's share of each provider's rateLimit.perSecond (0 while held)", type: 'gauge', labels: [['provider', spec.providers]], scale: 1e3 },
    { name: 'hermes_fleet_share_burst', help: "This instance's share of each provider's rateLimit.burst (0 while held)", type: 'gauge', labels: [['provider', spec.providers]], scale: 1e3 },
    { name: 'hermes_fleet_share_concurrency', help: "This instance's share of each provider's concurrency", type: 'gauge', labels: [['provider', spec.providers]] },
    { name: 'hermes_fleet_paused', help: '1 while the fleet holds a provider after a 429 another instance saw', type: 'gauge', labels: [['provider', spec.providers]] },
    { name: 'hermes_retention_deleted_total', help: 'Messages deleted by retention (with their attachments and receipts)', type: 'counter' },
    { name: 'hermes_event_loop_utilization', help: 'Share of the last second each thread spent running (not idle)', type: 'gauge', labels: [['thread', threadNames(spec.workers)]], scale: 1e6 },
    { name: 'hermes_threads_up', help: '1 while the stage thread runs; 0 once it died (the process then exits for a restart)', type: 'gauge', labels: [['thread', ['writer', 'dispatch']]] },
    { name: 'hermes_config_reloads_total', help: 'SIGHUP configuration reloads, by result: applied or refused (the running configuration stayed)', type: 'counter', labels: [['result', ['applied', 'refused']]] }
  ]
}

export function metricsLayout (spec: MetricsSpec): MetricsLayout {
  return new MetricsLayout(metricDefinitions(spec))
}

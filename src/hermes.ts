import pg from 'pg'
import { Piscina } from 'piscina'
import type { HermesConfig } from './config.js'
import { redactedConfig } from './config.js'
import { Rejection } from './errors.js'
import { createLogger, type Logger } from './log.js'
import type { FromWriter, ProcessResult, ProcessTask, ProcessWorkerData, ToWriter, WriterData } from './messages.js'
import type { DispatchData, ToDispatch } from './dispatch/dispatch-data.js'
import { startThread, stopThread } from './threads.js'
import { creditSlotOf, PreclaimCredit, type PreclaimChannel, type PreclaimData } from './preclaim-credit.js'
import { laneLeaseMs } from './dispatch/provider-lane.js'
import { SharedMetrics } from './metrics/shared-metrics.js'
import { metricsLayout, workerNames, type MetricsSpec } from './metrics/definitions.js'
import { metricsData } from './metrics/thread-metrics.js'
import { reportEventLoopUtilization, reportWorkerUtilization } from './metrics/event-loop.js'
import { createRegistry, type ScrapeGauge } from './metrics/exposition.js'
import { HttpMeter } from './http/http-metrics.js'
import { createStatusBlock, kDatabaseUp, kDraining, kWriterQueuedRows, kWriterReady } from './shared-status.js'
import { IngressRing } from './ingest/ring-buffer.js'
import { Feeder } from './ingest/feeder.js'
import { Intake } from './ingest/intake.js'
import { PendingRequests } from './http/pending-requests.js'
import { startHttpServer, type HttpServer } from './http/server.js'
import { loadNativeUws, nativeBindingPath } from './http/uws.js'
import { channelRules } from './process/channel-rules.js'
import { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js'
import { prepareDatabase } from './store/schema.js'

export interface Hermes {
  readonly port: number
  readonly databaseUrl: string
  readonly ring: IngressRing
  readonly status: Int32Array
  /** The process-stage worker threads (Piscina replaces any that die). */
  readonly workerThreads: () => readonly import('node:worker_threads').Worker[]
  /** Drains (answers everything already accepted), then stops every thread and the embedded database. */
  stop (): Promise<void>
}

export interface StartOptions {
  readonly log?: Logger
  /** The process-stage worker entry; tests substitute one that faults on purpose. */
  readonly processWorker?: URL
}

/** Starts every stage, in dependency order: database, writer, workers, then the HTTP front end last. */
export async function startHermes (config: HermesConfig, options: StartOptions = {}): Promise<Hermes> {
  const log = options.log ?? createLogger(config.logLevel)
  loadNativeUws() // refuse the slow JS fallback before starting anything else
  if (config.developmentSecret) {
    log.warn({ code: 'HERMES_DEV_SECRET' }, 'DEVELOPMENT MODE: no configuration given; every channel accepts the public development secret. Never expose this instance.')
  }
  const stack: Array<() => Promise<void>> = [] // undo steps, run in reverse on failure or stop
  const unwind = async (): Promise<void> => { while (stack.length > 0) await stack.pop()!().catch((error: unknown) => log.error({ err: error }, 'shutdown step failed')) }

  try {
    let databaseUrl = config.database.url
    let embedded: EmbeddedDatabase | null = null
    if (databaseUrl === null) {
      embedded = await startEmbeddedPostgres({ dataDir: config.database.embeddedDir, port: config.database.embeddedPort, log })
      stack.push(() => embedded!.stop())
      databaseUrl = embedded.url
    }
    const setup = new pg.Client({ connectionString: databaseUrl, application_name: 'hermes-setup' })
    await setup.connect()
    try { await prepareDatabase(setup, config) } finally { await setup.end() }

    const status = createStatusBlock()
    const ring = IngressRing.create(Math.floor(config.buffer.maxBytes / 8) * 8, config.buffer.maxMessages)
    const channels = Object.keys(config.channels)
    const metricsSpec: MetricsSpec = { channels, providers: Object.keys(config.providers), workers: config.workers }
    const metrics = new SharedMetrics(metricsLayout(metricsSpec))
    const shared = metricsData(metrics, metricsSpec)
    const stopMainLoopReport = reportEventLoopUtilization(metrics, 'main')
    stack.push(async () => stopMainLoopReport())
    const stopWorkerReport = reportWorkerUtilization(metrics, workerNames(config.workers))
    stack.push(async () => stopWorkerReport())
    const meter = new HttpMeter(metrics, channels)
    const pending = new PendingRequests(config.ackTimeoutMs, meter)
    stack.push(async () => pending.close())
    const durable = config.ack === 'durable'

    const preclaimCredit = PreclaimCredit.create(Object.keys(config.providers).length)
    const writer = await startThread('writer', new URL('../workers/writer.js', import.meta.url), { ...writerData(config, databaseUrl, status, preclaimCredit), metrics: shared }, log)
    stack.push(() => stopThread(writer, config.shutdownTimeoutMs))
    // Dispatch has its own thread and connection: provider latency never reaches the HTTP or writer threads.
    const dispatch = await startThread('dispatch', new URL('../workers/dispatch.js', import.meta.url), { ...dispatchData(config, databaseUrl, embedded !== null), preclaimCredit: preclaimCredit.buffer, metrics: shared }, log)
    stack.push(() => stopThread(dispatch, config.shutdownTimeoutMs))

    const workerData: ProcessWorkerData = {
      ring: ring.buffer,
      rules: channelRules(config),
      toleranceSeconds: config.signature.toleranceSeconds,
      backgroundNice: backgroundNice(config),
      metrics: shared,
      workerSeq: new Int32Array(new SharedArrayBuffer(4))
    }
    const pool = new Piscina<ProcessTask, ProcessResult>({
      filename: (options.processWorker ?? new URL('../workers/process.js', import.meta.url)).href,
      minThreads: config.workers,
      maxThreads: config.workers,
      idleTimeout: Infinity,
      workerData
    })
    stack.push(() => pool.destroy())
    // Wait for the threads to boot (an empty range per thread) so that the
    // first webhooks do not spend their ack timeout on worker start-up.
    await Promise.all(Array.from({ length: config.workers }, async () => await pool.run({ offset: 0, count: 0 })))

    const feeder = new Feeder({
      ring,
      pool,
      taskRecords: config.taskRecords,
      maxTasks: config.workers * 2,
      downstreamHasRoom: () => Atomics.load(status, kWriterQueuedRows) < config.writer.maxQueuedRows,
      onResult: (result) => {
        for (const rejection of result.rejected) {
          if (durable) pending.reject(rejection.slot, rejection)
          else {
            meter.rejectedAfterAnswer(rejection.code)
            log.info({ code: rejection.code, status: rejection.status, channel: rejection.channel, reason: rejection.message }, 'webhook rejected after enqueue')
          }
        }
        if (result.acceptedSlots.length > 0) {
          const message: ToWriter = { type: 'batch', slots: result.acceptedSlots, rows: result.rows }
          writer.postMessage(message, [result.acceptedSlots.buffer as ArrayBuffer, result.rows.buffer as ArrayBuffer])
        }
      },
      onRetry: (error) => {
        metrics.inc('hermes_worker_task_failures_total', ['retried'])
        log.warn({ code: 'HERMES_ERR_WORKER', err: error instanceof Error ? error.message : String(error) }, 'a worker task failed; processing its records again')
      },
      onFailure: (slots, error) => {
        metrics.inc('hermes_worker_task_failures_total', ['failed'])
        log.error({ code: Rejection.internal.code, err: error, records: slots.length }, 'a worker task failed twice; answering its records 500')
        for (const slot of slots) pending.reject(slot, { ...Rejection.internal, message: 'internal error while processing this webhook; retry it' })
      }
    })
    writer.on('message', (message: FromWriter) => {
      switch (message.type) {
        case 'committed':
          if (durable) for (const slot of message.slots) pending.accept(slot)
          if (message.inserted > message.claimed) dispatch.postMessage({ type: 'wake' } satisfies ToDispatch)
          feeder.pump()
          break
        case 'preclaimed':
          dispatch.postMessage(message satisfies ToDispatch)
          break
        case 'rejected':
          if (durable) for (const slot of message.slots) pending.reject(slot, { status: 500, code: message.code, message: message.message })
          feeder.pump()
          break
        case 'fatal':
          log.fatal({ code: message.code, err: message.message }, 'writer thread failed')
          break
        default:
          break
      }
    })
    const intake = new Intake(ring, feeder, pending, durable, meter, channels)
    const registry = createRegistry(metrics, scrapeGauges(ring, status))

    const server: HttpServer = await startHttpServer({
      host: config.host,
      port: config.port,
      maxBodyBytes: config.maxBodyBytes,
      channels,
      meter,
      scrape: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
      refusal: () => {
        if (Atomics.load(status, kDraining) === 1) return { ...Rejection.draining, message: 'Hermes is shutting down; retry on another instance or later', retryAfterSeconds: 5 }
        if (Atomics.load(status, kDatabaseUp) === 0) return { ...Rejection.databaseUnavailable, message: 'the database is unreachable; retry later', retryAfterSeconds: 2 }
        return null
      },
      ready: () => Atomics.load(status, kDraining) === 0 && Atomics.load(status, kDatabaseUp) === 1 && Atomics.load(status, kWriterReady) === 1 && pool.threads.length > 0,
      onWebhook: (arrival) => intake.accept(arrival)
    })
    stack.push(async () => server.stopListening())

    log.info({
      port: server.port,
      ack: config.ack,
      workers: config.workers,
      database: embedded === null ? 'external' : `embedded (${config.database.embeddedDir})`,
      uws: nativeBindingPath(),
      config: redactedConfig(config)
    }, 'hermes started')

    let stopping: Promise<void> | null = null
    const stop = async (): Promise<void> => {
      Atomics.store(status, kDraining, 1)
      server.stopListening()
      const deadline = Date.now() + config.shutdownTimeoutMs
      // Drain: every record already in the ring is processed, committed and answered.
      while (Date.now() < deadline && !(ring.usedRecords === 0 && feeder.idle && Atomics.load(status, kWriterQueuedRows) === 0 && pending.size === 0)) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      pending.rejectAll({ ...Rejection.draining, message: 'Hermes shut down before this message was committed; retry it', retryAfterSeconds: 5 })
      log.info({
        drained: ring.usedRecords === 0,
        unanswered: pending.size,
        received: ring.written,
        accepted: channels.reduce((n, c) => n + metrics.read('hermes_ingest_accepted_total', [c]), 0),
        stored: channels.reduce((n, c) => n + metrics.read('hermes_messages_stored_total', [c]), 0),
        duplicates: metrics.read('hermes_messages_duplicate_total')
      }, 'hermes stopping')
      await unwind()
      log.info('hermes stopped')
    }
    return {
      port: server.port,
      databaseUrl,
      ring,
      status,
      workerThreads: () => pool.threads,
      stop: () => (stopping ??= stop())
    }
  } catch (error) {
    await unwind()
    throw error
  }
}

function scrapeGauges (ring: IngressRing, status: Int32Array): ScrapeGauge[] {
  return [
    { name: 'hermes_ring_used_messages', help: 'Records in the ingress ring, waiting or being processed', read: () => ring.usedRecords },
    { name: 'hermes_ring_used_bytes', help: 'Bytes of the ingress ring in use', read: () => ring.usedBytes },
    { name: 'hermes_ring_capacity_messages', help: 'Most records the ingress ring holds', read: () => ring.capacityRecords },
    { name: 'hermes_ring_capacity_bytes', help: 'Size of the ingress ring', read: () => ring.capacityBytes },
    { name: 'hermes_writer_queued_rows', help: 'Rows handed to the writer and not yet committed', read: () => Atomics.load(status, kWriterQueuedRows) },
    { name: 'hermes_database_up', help: '1 while the writer reaches PostgreSQL', read: () => Atomics.load(status, kDatabaseUp) },
    { name: 'hermes_draining', help: '1 once shutdown began', read: () => Atomics.load(status, kDraining) }
  ]
}

/**
 * The nice increment of the workers and the writer: an enqueued answer
 * waits for neither. A durable 202 waits for both, so there they keep the
 * HTTP thread's priority. (Dispatch has its own: dispatchData.)
 */
function backgroundNice (config: HermesConfig): number {
  return config.ack === 'enqueued' ? config.backgroundNice : 0
}

function writerData (config: HermesConfig, databaseUrl: string, status: Int32Array, credit: PreclaimCredit): WriterData {
  return {
    preclaim: preclaimData(config, credit),
    databaseUrl,
    status,
    maxBatchRows: config.writer.maxBatchRows,
    maxBatchDelayMs: config.writer.maxBatchDelayMs,
    logLevel: config.logLevel,
    backgroundNice: backgroundNice(config)
  }
}

/** Which credit slot and lease each channel's pre-claims take. */
function preclaimData (config: HermesConfig, credit: PreclaimCredit): PreclaimData {
  const providers = Object.values(config.providers)
  const channels: Record<string, PreclaimChannel> = {}
  for (const channel of Object.values(config.channels)) {
    const slot = creditSlotOf(providers, channel.provider)
    if (slot >= 0) channels[channel.name] = { slot, leaseMs: laneLeaseMs(providers[slot]!, config.dispatch.leaseMs) }
  }
  return { credit: credit.buffer, channels }
}

/**
 * Dispatch runs `dispatch.nice` lower than the HTTP thread in both modes
 * (in enqueued mode at least as low as the threads behind the ring): no
 * answer ever waits for it. On the embedded database its sessions' server
 * processes run that low too.
 */
function dispatchData (config: HermesConfig, databaseUrl: string, localDatabase: boolean): DispatchData {
  const nice = Math.max(config.dispatch.nice, backgroundNice(config))
  return {
    databaseUrl,
    providers: Object.values(config.providers),
    channels: Object.values(config.channels),
    logLevel: config.logLevel,
    nice,
    backendNice: localDatabase ? nice : 0,
    leaseMs: config.dispatch.leaseMs,
    pollMs: config.dispatch.pollMs,
    fleet: config.fleet,
    retention: config.retention
  }
}

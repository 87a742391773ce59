import { Piscina } from 'piscina'
import type { HermesConfig } from './config.js'
import { redactedConfig } from './config.js'
import { ConfigError, Rejection, ReloadRefusedError } from './errors.js'
import { createLogger, type Logger } from './log.js'
import type { DispatchData, FromDispatch, FromWriter, ProcessResult, ProcessTask, ProcessWorkerData, ProviderLimits, ToDispatch, ToWriter, WriterData } from './messages.js'
import type { Worker } from 'node:worker_threads'
import { RulesBoard } from './process/rules-board.js'
import { compareConfigs } from './reload.js'
import { startThread, stopThread } from './threads.js'
import { creditSlotOf, CreditLedger, type PreclaimChannel, type PreclaimData } from './preclaim-credit.js'
import { laneLeaseMs } from './dispatch/lane-core.js'
import { HermesError } from './errors.js'
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
import { processRules } from './process/channel-rules.js'
import type { SuccessKind } from './http/answers.js'
import { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js'
import { prepareDatabase } from './store/schema.js'
import { openSession, sessionProfiles } from './store/session.js'
import { checkServerVersion, checkSessionPooling } from './store/server-check.js'

export interface Hermes {
  readonly port: number
  /** The configuration in force (a reload replaces it). */
  readonly config: () => HermesConfig
  readonly databaseUrl: string
  readonly ring: IngressRing
  readonly status: Int32Array
  /** The process-stage worker threads (Piscina replaces any that die). */
  readonly workerThreads: () => readonly import('node:worker_threads').Worker[]
  /**
   * Changes a provider's rate limit and concurrency in the running dispatch
   * thread (Dispatcher.updateProviderLimits): tokens already spent stay
   * spent, sends in flight over a lowered cap finish. Resolves once applied;
   * rejects with a HermesError (HERMES_ERR_UNKNOWN_PROVIDER,
   * HERMES_ERR_PROVIDER_LIMITS) and changes nothing otherwise.
   */
  updateProviderLimits (provider: string, limits: ProviderLimits): Promise<void>
  /** The writer and dispatch threads (tests kill them to prove a lost thread is visible). */
  readonly stageThreads: { readonly writer: Worker, readonly dispatch: Worker }
  /**
   * Applies a reloaded configuration (SIGHUP): channel secrets and tokens,
   * provider credentials, rate limits, concurrency, the TLS files. `load`
   * reads it (a ConfigError there refuses the reload). Resolves with the
   * fields that changed; rejects with a ReloadRefusedError, leaving the
   * running configuration in force, when the file is broken, a change needs
   * a restart, or it cannot be applied. Either way it logs the outcome.
   */
  reload (load: () => HermesConfig): Promise<readonly string[]>
  /** Drains (answers everything already accepted), then stops every thread and the embedded database. */
  stop (): Promise<void>
}

export interface StartOptions {
  readonly log?: Logger
  /** The process-stage worker entry; tests substitute one that faults on purpose. */
  readonly processWorker?: URL
  /**
   * The writer or dispatch thread died or reported a fatal error. Hermes has
   * already refused new webhooks and answered what it could; the caller
   * should stop it and exit non-zero (src/main.ts does).
   */
  readonly onThreadLost?: (thread: 'writer' | 'dispatch', reason: string) => void
  /**
   * Node options of the writer, dispatch and worker threads; by default they inherit the
   * process's own (process.execArgv). Tests leave out their runner's module hooks here.
   */
  readonly threadExecArgv?: readonly string[]
}

/** Starts every stage, in dependency order: database, writer, workers, then the HTTP front end last. */
export async function startHermes (initial: HermesConfig, options: StartOptions = {}): Promise<Hermes> {
  let config = initial
  const log = options.log ?? createLogger(config.logLevel)
  loadNativeUws() // refuse the slow JS fallback before starting anything else
  if (config.developmentSecret) {
    log.warn({ code: 'HERMES_DEV_SECRET' }, 'DEVELOPMENT MODE: no configuration given; every channel accepts the public development secret. Never expose this instance.')
  }
  const stack: Array<() => Promise<void>> = [] // undo steps, run in reverse on failure or stop
  let unwinding = false // a failed start stops its threads on purpose
  const unwind = async (): Promise<void> => { while (stack.length > 0) await stack.pop()!().catch((error: unknown) => log.error({ err: error }, 'shutdown step failed')) }

  try {
    let databaseUrl = config.database.url
    let embedded: EmbeddedDatabase | null = null
    if (databaseUrl === null) {
      embedded = await startEmbeddedPostgres({ dataDir: config.database.embeddedDir, port: config.database.embeddedPort, log })
      stack.push(() => embedded!.stop())
      databaseUrl = embedded.url
    }
    const setup = await openSession(databaseUrl, sessionProfiles.setup)
    setup.on('error', () => {}) // the query in flight reports it
    try {
      await checkServerVersion(setup)
      await checkSessionPooling(databaseUrl, setup)
      await prepareDatabase(setup, config)
    } finally {
      await setup.end()
    }

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

    const initialRules = processRules(config)
    const rulesBoard = RulesBoard.create(initialRules)
    let generation = 0
    const workerData: ProcessWorkerData = {
      ring: ring.buffer,
      rulesBoard: rulesBoard.buffer,
      toleranceSeconds: config.signature.toleranceSeconds,
      backgroundNice: backgroundNice(config),
      metrics: shared,
      workerSeq: new Int32Array(new SharedArrayBuffer(4))
    }
    const threadExecArgv = options.threadExecArgv
    const pool = new Piscina<ProcessTask, ProcessResult>({
      filename: (options.processWorker ?? new URL('../workers/process.js', import.meta.url)).href,
      ...(threadExecArgv === undefined ? {} : { execArgv: [...threadExecArgv] }),
      minThreads: config.workers,
      maxThreads: config.workers,
      idleTimeout: Infinity,
      workerData
    })
    const preclaimCredit = CreditLedger.create(Object.keys(config.providers).length)
    // The writer, dispatch and the worker pool boot side by side (each loads its modules and
    // connects); a start that fails stops whichever of them did start.
    const writerStarting = startThread('writer', new URL('../workers/writer.js', import.meta.url), { ...writerData(config, databaseUrl, status, preclaimCredit), metrics: shared }, log, undefined, threadExecArgv)
    // Dispatch has its own thread and connection: provider latency never reaches the HTTP or writer threads.
    const dispatchStarting = startThread('dispatch', new URL('../workers/dispatch.js', import.meta.url), { ...dispatchData(config, databaseUrl, embedded !== null), preclaimCredit: preclaimCredit.buffer, metrics: shared }, log, undefined, threadExecArgv)
    // Wait for the threads to boot (an empty range per thread) so that the
    // first webhooks do not spend their ack timeout on worker start-up.
    const poolStarting = Promise.all(Array.from({ length: config.workers }, async () => await pool.run({ offset: 0, count: 0, generation: 0 })))
    const [writerStarted, dispatchStarted, poolStarted] = await Promise.allSettled([writerStarting, dispatchStarting, poolStarting])
    if (writerStarted.status === 'fulfilled') stack.push(() => stopThread(writerStarted.value, config.shutdownTimeoutMs))
    if (dispatchStarted.status === 'fulfilled') stack.push(() => stopThread(dispatchStarted.value, config.shutdownTimeoutMs))
    stack.push(() => pool.destroy())
    for (const started of [writerStarted, dispatchStarted, poolStarted]) if (started.status === 'rejected') throw started.reason
    const writer = (writerStarted as PromiseFulfilledResult<Worker>).value
    const dispatch = (dispatchStarted as PromiseFulfilledResult<Worker>).value
    // Answers to `limits` messages, in the order they were sent (the thread answers each at once, in order).
    const limitsAnswers: Array<{ resolve: () => void, reject: (error: Error) => void }> = []
    dispatch.on('message', (message: FromDispatch) => {
      if (message.type !== 'limits') return
      const answer = limitsAnswers.shift()
      if (message.ok) answer?.resolve()
      else answer?.reject(new HermesError(message.code, message.message, 400))
    })
    const updateProviderLimits = async (provider: string, limits: ProviderLimits): Promise<void> => {
      await new Promise<void>((resolve, reject) => {
        limitsAnswers.push({ resolve, reject })
        dispatch.postMessage({ type: 'limits', provider, limits } satisfies ToDispatch)
      })
    }

    const feeder = new Feeder({
      ring,
      pool,
      taskRecords: config.taskRecords,
      maxTasks: config.workers * 2,
      generation: () => generation,
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
        if (result.receiptSlots.length > 0) {
          const message: ToWriter = { type: 'batch', kind: 'receipts', slots: result.receiptSlots, rows: result.receiptRows }
          writer.postMessage(message, [result.receiptSlots.buffer as ArrayBuffer, result.receiptRows.buffer as ArrayBuffer])
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
          threadLost('writer', `${message.code}: ${message.message}`)
          break
        default:
          break
      }
    })
    // A stage thread that dies (or reports a fatal error) is not replaced: Hermes refuses new
    // webhooks at once, answers what it still can, and leaves the restart to its supervisor.
    let lost: { thread: 'writer' | 'dispatch', reason: string } | null = null
    let stopping: Promise<void> | null = null
    const threadLost = (thread: 'writer' | 'dispatch', reason: string): void => {
      if (lost !== null || stopping !== null || unwinding) return
      lost = { thread, reason }
      metrics.set('hermes_threads_up', [thread], 0)
      log.fatal({ code: Rejection.threadLost.code, thread, err: reason }, `the ${thread} thread is gone; refusing new webhooks and exiting for a restart`)
      // Nothing more can be committed without the writer: answer every waiting request now.
      if (thread === 'writer') pending.rejectAll({ ...Rejection.threadLost, message: 'Hermes lost its writer thread before this message was committed; retry it', retryAfterSeconds: 5 })
      options.onThreadLost?.(thread, reason)
    }
    writer.on('exit', (code) => threadLost('writer', `exited with code ${code}`))
    dispatch.on('exit', (code) => threadLost('dispatch', `exited with code ${code}`))
    dispatch.on('message', (message: FromDispatch) => { if (message.type === 'fatal') threadLost('dispatch', `${message.code}: ${message.message}`) })
    metrics.set('hermes_threads_up', ['writer'], 1)
    metrics.set('hermes_threads_up', ['dispatch'], 1)
    const channelConfigs = Object.values(config.channels)
    const intake = new Intake(ring, feeder, pending, durable, meter, channels, {
      success: channelConfigs.map((ch): SuccessKind => ch.format === 'twilio' ? 'twiml' : ch.format === 'sendgrid-parse' ? 'ok' : 'stored'),
      ringBodyBytes: config.maxBodyBytes,
      maxOutOfBandBytes: outOfBandBudget(config)
    })
    const registry = createRegistry(metrics, scrapeGauges(ring, status))

    const server: HttpServer = await startHttpServer({
      host: config.host,
      port: config.port,
      maxBodyBytes: config.maxBodyBytes,
      channels,
      channelRoutes: channelConfigs.map((ch) => ({ maxBodyBytes: ch.maxBodyBytes, native: ch.format !== 'hermes' })),
      callbackProviders: initialRules.providers.map((p) => p.name),
      answersLater: durable,
      meter,
      scrape: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
      tls: config.tls,
      refusal: () => {
        if (lost !== null) return { ...Rejection.threadLost, message: `Hermes lost its ${lost.thread} thread and is restarting; retry on another instance or later`, retryAfterSeconds: 5 }
        if (Atomics.load(status, kDraining) === 1) return { ...Rejection.draining, message: 'Hermes is shutting down; retry on another instance or later', retryAfterSeconds: 5 }
        if (Atomics.load(status, kDatabaseUp) === 0) return { ...Rejection.databaseUnavailable, message: 'the database is unreachable; retry later', retryAfterSeconds: 2 }
        return null
      },
      ready: () => lost === null && Atomics.load(status, kDraining) === 0 && Atomics.load(status, kDatabaseUp) === 1 && Atomics.load(status, kWriterReady) === 1 && pool.threads.length > 0,
      onWebhook: (arrival) => intake.accept(arrival)
    })
    stack.push(async () => server.stopListening())

    log.info({
      port: server.port,
      ack: config.ack,
      workers: config.workers,
      // Node's thread ids (Worker.threadId; the main thread is 0), to tell the threads apart in /proc (every one is named "node").
      threads: { writer: writer.threadId, dispatch: dispatch.threadId, workers: pool.threads.map((w) => w.threadId) },
      database: embedded === null ? 'external' : `embedded (${config.database.embeddedDir})`,
      uws: nativeBindingPath(),
      config: redactedConfig(config)
    }, 'hermes started')

    const stop = async (): Promise<void> => {
      Atomics.store(status, kDraining, 1)
      server.stopListening()
      const deadline = Date.now() + config.shutdownTimeoutMs
      // Drain: every record already in the ring is processed, committed and answered (not without a writer).
      while (Date.now() < deadline && lost?.thread !== 'writer' && !(ring.usedRecords === 0 && feeder.idle && Atomics.load(status, kWriterQueuedRows) === 0 && pending.size === 0)) {
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
    let reloads: Promise<unknown> = Promise.resolve()
    const reload = async (next: HermesConfig): Promise<readonly string[]> => {
      const { applied, restart } = compareConfigs(config, next)
      if (restart.length > 0) throw new ReloadRefusedError(restart.map((field) => `${field} cannot change without a restart`))
      const refused = (error: unknown): ReloadRefusedError => new ReloadRefusedError([error instanceof Error ? error.message : String(error)])
      // Everything that can refuse the reload is checked before anything is applied.
      const rules = processRules(next)
      try { rulesBoard.check(rules) } catch (error) { throw refused(error) }
      // The slot the new generation takes is the one of generation - 1: wait until no range verified with it is in flight.
      const waitUntil = Date.now() + config.ackTimeoutMs
      while (applied.length > 0 && feeder.inFlightBefore(generation)) {
        if (Date.now() > waitUntil) throw new ReloadRefusedError(['worker tasks of the previous reload are still running; try again'])
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      if (next.tls !== null) {
        try { await server.reloadTls(next.tls) } catch (error) { throw refused(error) }
      }
      if (applied.length === 0) return applied
      rulesBoard.publish(generation + 1, rules)
      generation++
      dispatch.postMessage({ type: 'reload', providers: Object.values(next.providers) } satisfies ToDispatch)
      config = next
      return applied
    }
    return {
      port: server.port,
      config: () => config,
      stageThreads: { writer, dispatch },
      reload: async (load) => {
        const result = reloads.then(async () => {
          try {
            let next: HermesConfig
            try { next = load() } catch (error) {
              if (error instanceof ConfigError) throw new ReloadRefusedError(error.problems)
              throw error
            }
            const applied = await reload(next)
            metrics.inc('hermes_config_reloads_total', ['applied'])
            log.info({ changed: applied }, applied.length === 0 ? 'configuration reloaded: nothing changed' : 'configuration reloaded')
            return applied
          } catch (error) {
            metrics.inc('hermes_config_reloads_total', ['refused'])
            const refusal = error instanceof ReloadRefusedError ? error : new ReloadRefusedError([error instanceof Error ? error.message : String(error)])
            log.error({ code: refusal.code, problems: refusal.problems }, `configuration not reloaded; the running configuration stays: ${refusal.problems.join('; ')}`)
            throw refusal
          }
        })
        reloads = result.catch(() => {})
        return await result
      },
      databaseUrl,
      ring,
      status,
      workerThreads: () => pool.threads,
      updateProviderLimits,
      stop: () => (stopping ??= stop())
    }
  } catch (error) {
    unwinding = true
    await unwind()
    throw error
  }
}

/**
 * Bodies above the ring's record budget (a channel's own maxBodyBytes) each get a shared buffer
 * of their own; this bounds their total: four of the largest allowed, at least 64 MiB.
 */
function outOfBandBudget (config: HermesConfig): number {
  const largest = Math.max(0, ...Object.values(config.channels).map((ch) => ch.maxBodyBytes))
  return Math.max(64 * 1024 * 1024, 4 * largest)
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

function writerData (config: HermesConfig, databaseUrl: string, status: Int32Array, credit: CreditLedger): WriterData {
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
function preclaimData (config: HermesConfig, credit: CreditLedger): PreclaimData {
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

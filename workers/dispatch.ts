/**
 * Dispatch thread entry: claims committed messages and delivers them
 * through the providers, with its own PostgreSQL connection and event loop
 * so that provider latency never touches the HTTP or writer threads.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { DispatchData, FromDispatch, ProviderLimits, ToDispatch } from '../src/messages.js'
import type { ProviderConfig } from '../src/config.js'
import { checkProviderLimits, createDispatcher, UnknownProviderLimitsError } from '../src/dispatch/dispatcher.js'
import { createLogger } from '../src/log.js'
import { openMetrics } from '../src/metrics/thread-metrics.js'
import { reportEventLoopUtilization } from '../src/metrics/event-loop.js'
import { lowerThreadPriority } from '../src/thread-priority.js'
import { FleetCoordinator } from '../src/fleet/coordinator.js'
import { RetentionSweeper } from '../src/fleet/retention.js'

const port = parentPort!
const post = (message: FromDispatch): void => port.postMessage(message)
const data = workerData as DispatchData
const log = createLogger(data.logLevel).child({ thread: 'dispatch' })
const priority = lowerThreadPriority(data.nice ?? 0)
log.debug({ priority }, 'dispatch: thread priority')
const metrics = data.metrics === undefined ? undefined : openMetrics(data.metrics)
if (metrics !== undefined) reportEventLoopUtilization(metrics, 'dispatch')
const dispatcher = createDispatcher(data, log, metrics)
const providers = new Map(data.providers.map((p) => [p.name, p]))

/** Applies what a reload changed per provider: limits through updateProviderLimits, credentials through a new client. */
function reload (next: readonly ProviderConfig[]): void {
  for (const provider of next) {
    const running = providers.get(provider.name)
    if (running === undefined) continue // a new provider needs a restart; the main thread refuses it
    if (running.concurrency !== provider.concurrency || running.rateLimit.perSecond !== provider.rateLimit.perSecond || running.rateLimit.burst !== provider.rateLimit.burst) {
      setLimits(provider.name, { rateLimit: provider.rateLimit, concurrency: provider.concurrency })
    }
    const credentials = (p: ProviderConfig): string => JSON.stringify({ ...p, rateLimit: null, concurrency: null })
    if (credentials(running) !== credentials(provider)) dispatcher.updateProviderCredentials(provider)
    providers.set(provider.name, provider)
  }
}
// Background database work beside dispatch: the fleet's shares of each provider limit, and retention.
const fleet = data.fleet === undefined
  ? null
  : new FleetCoordinator({ databaseUrl: data.databaseUrl, providers: data.providers, ...data.fleet, log, ...(metrics === undefined ? {} : { metrics }) }, dispatcher)
const retention = data.retention === undefined || data.retention.days === null
  ? null
  : new RetentionSweeper({
    databaseUrl: data.databaseUrl,
    days: data.retention.days,
    intervalMs: data.retention.intervalMs,
    firstSweepMs: data.retention.firstSweepMs,
    batchRows: data.retention.batchRows,
    log,
    onDeleted: (n) => metrics?.inc('hermes_retention_deleted_total', [], n)
  })

/**
 * A provider's configured limits changed (a reload, or Hermes.updateProviderLimits). In a fleet they
 * are split again and this instance takes its share of them; alone, they apply as they are.
 */
function setLimits (name: string, limits: ProviderLimits): void {
  if (fleet === null) {
    dispatcher.updateProviderLimits(name, limits)
    return
  }
  if (dispatcher.providerLimits(name) === undefined) throw new UnknownProviderLimitsError(name)
  checkProviderLimits(name, limits)
  fleet.setConfiguredLimits(name, limits)
}

port.on('message', (message: ToDispatch) => {
  if (message.type === 'wake') dispatcher.wake()
  else if (message.type === 'preclaimed') dispatcher.preclaimed(message)
  else if (message.type === 'limits') {
    try {
      setLimits(message.provider, message.limits)
      post({ type: 'limits', provider: message.provider, ok: true })
    } catch (error) {
      post({ type: 'limits', provider: message.provider, ok: false, code: (error as { code?: string }).code ?? 'HERMES_ERR_PROVIDER_LIMITS', message: errorMessage(error) })
    }
  }
  else if (message.type === 'reload') reload(message.providers)
  else if (message.type === 'stop') {
    // The fleet row goes last: this instance holds its share until its sends in flight are done.
    (retention?.stop() ?? Promise.resolve()).then(async () => await dispatcher.stop()).then(async () => await fleet?.stop()).then(
      () => { post({ type: 'stopped' }); port.close() },
      (error: unknown) => { post({ type: 'fatal', code: 'HERMES_ERR_DISPATCH', message: errorMessage(error) }); process.exit(1) })
  }
})

// The first shares are computed before the dispatcher starts and applied before its first claim returns.
const starting = (fleet?.join() ?? Promise.resolve()).then(async () => {
  await dispatcher.start()
  fleet?.start()
  retention?.start()
})
starting.then(
  () => post({ type: 'ready' }),
  (error: unknown) => {
    post({ type: 'fatal', code: 'HERMES_ERR_DISPATCH', message: errorMessage(error) })
    process.exit(1)
  })

function errorMessage (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

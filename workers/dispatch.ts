/**
 * Dispatch thread entry: claims committed messages and delivers them
 * through the providers, with its own PostgreSQL connection and event loop
 * so that provider latency never touches the HTTP or writer threads.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { DispatchData, FromDispatch, ToDispatch } from '../src/dispatch/dispatch-data.js'
import { createDispatcher } from '../src/dispatch/dispatcher.js'
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

port.on('message', (message: ToDispatch) => {
  if (message.type === 'wake') dispatcher.wake()
  else if (message.type === 'preclaimed') dispatcher.preclaimed(message)
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

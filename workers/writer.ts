/**
 * Writer thread entry: owns the PostgreSQL connection so that no database
 * round trip ever runs on the HTTP thread. Batches arrive as messages with
 * transferred row buffers; commits are reported back the same way.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { ToWriter, WriterData } from '../src/messages.js'
import { createLogger } from '../src/log.js'
import { WriterLoop } from '../src/store/writer-loop.js'
import { openMetrics } from '../src/metrics/thread-metrics.js'
import { reportEventLoopUtilization } from '../src/metrics/event-loop.js'
import { lowerThreadPriority } from '../src/thread-priority.js'

const data = workerData as WriterData
const port = parentPort!
const log = createLogger(data.logLevel).child({ thread: 'writer' })
const priority = lowerThreadPriority(data.backgroundNice)
log.debug({ priority }, 'writer: thread priority')
const metrics = data.metrics === undefined ? undefined : openMetrics(data.metrics)
if (metrics !== undefined) reportEventLoopUtilization(metrics, 'writer')
const loop = new WriterLoop({
  ...(metrics === undefined ? {} : { metrics }),
  databaseUrl: data.databaseUrl,
  status: data.status,
  maxBatchRows: data.maxBatchRows,
  maxBatchDelayMs: data.maxBatchDelayMs,
  ...(data.preclaim === undefined ? {} : { preclaim: data.preclaim }),
  post: (message) => port.postMessage(message),
  log
})

port.on('message', (message: ToWriter) => {
  if (message.type === 'batch') loop.enqueue(message.kind === 'receipts' ? { slots: message.slots, rows: message.rows, kind: 'receipts' } : { slots: message.slots, rows: message.rows })
  else if (message.type === 'stop') loop.stop()
})

loop.run().then(
  () => { port.close() },
  (error: unknown) => {
    port.postMessage({ type: 'fatal', code: 'HERMES_ERR_WRITER', message: error instanceof Error ? error.message : String(error) })
    process.exit(1)
  })

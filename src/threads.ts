import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import type { Logger } from './log.js'

/** Stage threads that have exited (a Worker's threadId is not reliably -1 afterwards). */
const exited = new WeakSet<Worker>()

type Lifecycle = { readonly type: string, readonly code?: string, readonly message?: string }

/**
 * Starts a stage thread and waits for its `ready` message. A `fatal` message
 * or an early exit rejects with the thread's own reason; so does a thread
 * that is not ready in time.
 */
export async function startThread (name: string, file: URL, workerData: unknown, log: Logger, timeoutMs = 30_000, execArgv?: readonly string[]): Promise<Worker> {
  const worker = new Worker(file, { workerData, ...(execArgv === undefined ? {} : { execArgv: [...execArgv] }) })
  worker.once('exit', () => exited.add(worker))
  worker.on('error', (error) => log.fatal({ err: error, code: 'HERMES_ERR_THREAD', thread: name }, `${name} thread crashed`))
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${name} thread was not ready within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (message: Lifecycle): void => {
      if (message.type === 'ready') {
        clearTimeout(timer)
        worker.off('message', onMessage)
        resolve()
      } else if (message.type === 'fatal') {
        clearTimeout(timer)
        reject(new Error(`${name} thread: ${message.code ?? ''} ${message.message ?? ''}`.trim()))
      }
    }
    worker.on('message', onMessage)
    worker.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the ${name} thread exited (${code}) before it was ready`)) })
  })
  try {
    await ready
  } catch (error) {
    await worker.terminate()
    throw error
  }
  return worker
}

/** Asks a stage thread to stop (`{type:'stop'}`) and waits for it to exit; terminates it after `timeoutMs`. */
export async function stopThread (worker: Worker, timeoutMs: number): Promise<void> {
  if (exited.has(worker) || worker.threadId === -1) return // already exited
  const exit = once(worker, 'exit')
  worker.postMessage({ type: 'stop' })
  const timer = setTimeout(() => { void worker.terminate() }, timeoutMs)
  await exit
  clearTimeout(timer)
}

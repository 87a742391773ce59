// In enqueued mode the threads behind the ring (workers, writer, dispatch) run at a lower CPU priority
// than the HTTP thread (src/thread-priority.ts); in durable mode all keep the same. Read from /proc.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { startTestHermes } from './helpers/hermes.js'
import { testDatabase } from './helpers/database.js'

const linux = process.platform === 'linux'

/** Nice value of every thread of this process, by thread id. */
function threadNices (): Map<number, number> {
  const nices = new Map<number, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      // Fields after the command name: state is field 3, nice is field 19.
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      nices.set(Number(tid), Number(fields[16]))
    } catch {} // the thread ended meanwhile
  }
  return nices
}

/** Runs lowerThreadPriority(increment) in a new thread; returns its answer and that thread's nice as /proc shows it. */
async function lowerInThread (increment: number): Promise<{ change: unknown; nice: number }> {
  const module = new URL('../src/thread-priority.js', import.meta.url).href
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    const { readFileSync } = require('node:fs')
    import(${JSON.stringify(module)}).then(({ lowerThreadPriority }) => {
      const change = lowerThreadPriority(${increment})
      const nice = Number(readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' ')[16])
      parentPort.postMessage({ change, nice })
    })`, { eval: true })
  const [answer] = await once(worker, 'message') as [{ change: unknown; nice: number }]
  await worker.terminate()
  return answer
}

t.test('lowerThreadPriority lowers only the calling thread, and never past 19', { skip: !linux && 'Linux only' }, async (t) => {
  const main = threadNices().get(process.pid)!
  const lowered = await lowerInThread(7)
  t.same(lowered.change, { changed: true, nice: Math.min(19, main + 7) })
  t.equal(lowered.nice, Math.min(19, main + 7), '/proc shows the thread at its new nice value')
  t.equal(threadNices().get(process.pid), main, 'the main thread keeps its priority')

  const capped = await lowerInThread(40)
  t.same(capped.change, { changed: true, nice: 19 })
  t.equal(capped.nice, 19)

  const none = await lowerInThread(0)
  t.same(none.change, { changed: false, reason: 'no increment configured' })
  t.equal(none.nice, main)
})

/** Starts Hermes and returns the nice values of the threads it started (compared with the HTTP thread's). */
/** One database for every Hermes below (each is stopped before the next starts). */
const db = linux ? await testDatabase(t) : null

async function startedThreadNices (t: { teardown (fn: () => unknown): void }, overrides: Record<string, unknown>): Promise<number[]> {
  await stat('.') // libuv's thread pool starts now, from this thread, not later from one of Hermes' lowered threads
  const before = new Set(threadNices().keys())
  await startTestHermes(t, overrides, db!)
  const main = threadNices().get(process.pid)!
  return [...threadNices()].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice - main)
}

t.test('durable: every thread keeps the HTTP thread\'s priority (a 202 waits for the workers and the writer)', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2 })
  t.ok(started.length >= 4, `Hermes started its threads (${started.length})`)
  t.same(started.filter((d) => d !== 0), [])
})

t.test('enqueued: the workers, the writer and the dispatch thread run lower, by default +10', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2, ack: 'enqueued' })
  t.same(started.filter((d) => d !== 0), [10, 10, 10, 10], '2 workers, the writer and dispatch at +10')
})

t.test('enqueued: backgroundNice sets how much lower', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2, ack: 'enqueued', backgroundNice: 4 })
  t.same(started.filter((d) => d !== 0), [4, 4, 4, 4])
})

t.test('backgroundNice 0 leaves every thread at the HTTP thread\'s priority', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2, ack: 'enqueued', backgroundNice: 0 })
  t.ok(started.length >= 4)
  t.same(started.filter((d) => d !== 0), [])
})

// In enqueued mode the threads behind the ring (workers, writer) run at a lower CPU priority than the
// HTTP thread (src/thread-priority.ts); dispatch runs lower in both modes, and on a local database so do
// its sessions' server processes. Read from /proc.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { startTestHermes, threadExecArgv } from './helpers/hermes.js'
import { testDatabase } from '../src/harness/database.js'
import { dispatchFixture } from '../src/harness/fake-provider.js'
import { lowerBackendPriority } from '../src/thread-priority.js'
import type { DispatchData, FromDispatch } from '../src/messages.js'

const linux = process.platform === 'linux'

/** The nice value in a /proc stat file: after the command name, state is field 3 and nice field 19. */
const niceIn = (statFile: string): number => Number(readFileSync(statFile, 'utf8').split(') ')[1]!.split(' ')[16])

/** Nice value of every thread of this process, by thread id. */
function threadNices (): Map<number, number> {
  const nices = new Map<number, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      nices.set(Number(tid), niceIn(`/proc/self/task/${tid}/stat`))
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

const lowered = (nices: number[]): number[] => nices.filter((d) => d !== 0).sort((a, b) => a - b)

t.test('durable: the workers and the writer keep the HTTP thread\'s priority (a 202 waits for them); dispatch runs +10', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2 })
  t.ok(started.length >= 4, `Hermes started its threads (${started.length})`)
  t.same(lowered(started), [10], 'only the dispatch thread is lower')
})

t.test('durable: dispatch.nice sets how much lower dispatch runs; 0 leaves every thread at the HTTP thread\'s priority', { skip: !linux && 'Linux only' }, async (t) => {
  t.same(lowered(await startedThreadNices(t, { workers: 2, dispatch: { nice: 3 } })), [3])
  const started = await startedThreadNices(t, { workers: 2, dispatch: { nice: 0 } })
  t.ok(started.length >= 4)
  t.same(lowered(started), [])
})

t.test('enqueued: the workers, the writer and the dispatch thread run lower, by default +10', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2, ack: 'enqueued' })
  t.same(lowered(started), [10, 10, 10, 10], '2 workers, the writer and dispatch at +10')
})

t.test('enqueued: backgroundNice sets how much lower the workers and the writer run; dispatch runs at the lower of the two', { skip: !linux && 'Linux only' }, async (t) => {
  t.same(lowered(await startedThreadNices(t, { workers: 2, ack: 'enqueued', backgroundNice: 4 })), [4, 4, 4, 10])
  t.same(lowered(await startedThreadNices(t, { workers: 2, ack: 'enqueued', backgroundNice: 14 })), [14, 14, 14, 14])
})

t.test('backgroundNice 0 and dispatch.nice 0 leave every thread at the HTTP thread\'s priority', { skip: !linux && 'Linux only' }, async (t) => {
  const started = await startedThreadNices(t, { workers: 2, ack: 'enqueued', backgroundNice: 0, dispatch: { nice: 0 } })
  t.ok(started.length >= 4)
  t.same(lowered(started), [])
})

/** Nice value of a process (of its main thread: a PostgreSQL backend has no other). */
const niceOf = (pid: number): number => niceIn(`/proc/${pid}/stat`)

t.test('lowerBackendPriority touches only a PostgreSQL backend', { skip: !linux && 'Linux only' }, async (t) => {
  const before = niceOf(process.pid)
  const change = lowerBackendPriority(process.pid, 3) as { changed: boolean; reason: string }
  t.equal(change.changed, false)
  t.match(change.reason, /is not a PostgreSQL backend/)
  t.equal(niceOf(process.pid), before, 'this (node) process keeps its priority')
  t.same(lowerBackendPriority(process.pid, 0), { changed: false, reason: 'no increment configured' })
})

// The tests' PostgreSQL is the embedded one, on this machine (unless DATABASE_URL names another).
const localDatabase = process.env['DATABASE_URL'] === undefined || process.env['DATABASE_URL'] === ''

t.test('dispatch lowers the server processes of its two sessions on a local database, and only theirs', { skip: (!linux && 'Linux only') || (!localDatabase && 'DATABASE_URL names a server that may not be on this machine') }, async (t) => {
  const fx = await dispatchFixture(t, { channels: { email: { provider: 'mock' } }, providers: { mock: { kind: 'mock' } } })
  const { rows: [own] } = await fx.db.query('SELECT pg_backend_pid() AS pid')
  const serverNice = niceOf(own!['pid'] as number)

  const earlier = new Set<number>()
  /** Runs a dispatch thread until it stored `count` new messages as sent; returns its sessions' nice values by application name. */
  const sessionNices = async (data: Partial<DispatchData>, count: number): Promise<Record<string, number>> => {
    const ids = await fx.insert('email', count)
    const worker = new Worker(new URL('../workers/dispatch.js', import.meta.url), {
      workerData: { databaseUrl: fx.db.url, providers: Object.values(fx.config.providers), channels: Object.values(fx.config.channels), logLevel: 'silent', ...data } satisfies DispatchData,
      execArgv: [...threadExecArgv]
    })
    try {
      const [ready] = await once(worker, 'message') as [FromDispatch]
      t.equal(ready.type, 'ready')
      worker.postMessage({ type: 'wake' })
      const deadline = Date.now() + 20_000
      for (;;) {
        const { rows } = await fx.db.query("SELECT count(*)::int AS n FROM message WHERE id = ANY($1::bigint[]) AND dispatch_status = 'sent'", [ids])
        if (rows[0]!['n'] === count) break
        if (Date.now() > deadline) throw new Error(`${String(rows[0]!['n'])} of ${count} sent in 20 s`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      // A stopped thread's backends may linger a moment after it closed them: only this thread's count.
      const { rows } = await fx.db.query("SELECT application_name AS name, pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'hermes-dispatch%' AND NOT pid = ANY($1::int[])", [[...earlier]])
      for (const r of rows) earlier.add(r['pid'] as number)
      return Object.fromEntries(rows.map((r) => [r['name'] as string, niceOf(r['pid'] as number) - serverNice]))
    } finally {
      worker.postMessage({ type: 'stop' })
      await once(worker, 'exit')
    }
  }

  t.same(await sessionNices({ nice: 7, backendNice: 7 }, 3), { 'hermes-dispatch': 7, 'hermes-dispatch-write': 7 }, 'claims and write-backs run 7 lower')
  t.equal(niceOf(own!['pid'] as number), serverNice, 'another session of the same database is not touched')
  t.same(await sessionNices({ nice: 7 }, 3), { 'hermes-dispatch': 0, 'hermes-dispatch-write': 0 }, 'a database not known to be local is not touched')
})

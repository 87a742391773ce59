/**
 * Where the CPU of a measured window went, per part: each named thread of a
 * Node process (/proc/<pid>/task/<tid>/stat, threads named by
 * bench/thread-ids.cjs), PostgreSQL's processes grouped by the
 * application_name of their session, whole processes (fake provider), and
 * the bench's own exited children (wrk, from cutime/cstime). Read from the
 * kernel's counters rather than a profiler, which charges preemption on a
 * saturated machine to whatever was running.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import type pg from 'pg'
import { cpuSeconds, startServer, type Server } from './processes.js'

/** The preload that names threads: node --require it with BENCH_THREADS_FILE set. */
export const threadIdsPreload = new URL('../../bench/thread-ids.cjs', import.meta.url).pathname

const ticks = 100 // USER_HZ on Linux

function statFields (path: string): string[] | null {
  try { return readFileSync(path, 'utf8').split(') ')[1]!.split(' ') } catch { return null }
}

/** CPU seconds of each thread of pid, by kernel tid. */
export function threadSeconds (pid: number): Map<number, number> {
  const out = new Map<number, number>()
  let tids: string[] = []
  try { tids = readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tids) {
    const f = statFields(`/proc/${pid}/task/${tid}/stat`)
    if (f !== null) out.set(Number(tid), (Number(f[11]) + Number(f[12])) / ticks)
  }
  return out
}

/** CPU seconds of the bench's children that have exited and been waited for (wrk runs). */
export function exitedChildrenSeconds (): number {
  const f = statFields('/proc/self/stat')
  return f === null ? Number.NaN : (Number(f[13]) + Number(f[14])) / ticks
}

/** Kernel tid → worker threadId, as written by bench/thread-ids.cjs. */
export function readThreadIds (file: string): Map<number, number> {
  if (!existsSync(file)) return new Map()
  return new Map(readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => { const [id, tid] = l.split(' '); return [Number(tid), Number(id)] as const }))
}

/**
 * PostgreSQL's processes (the postmaster's children) with the session's
 * application_name, or their backend type for the server's own processes.
 * Sessions on other databases are left out: on a shared server they are
 * someone else's.
 */
export async function postgresProcesses (client: pg.Client, databases: readonly string[]): Promise<Map<number, string>> {
  const own = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const postmaster = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${own}/status`, 'utf8'))?.[1] ?? Number.NaN)
  const named = new Map((await client.query<{ pid: number, name: string | null }>(
    "SELECT pid, CASE WHEN datname IS NOT NULL AND NOT datname = ANY($1) THEN NULL WHEN backend_type = 'client backend' THEN coalesce(nullif(application_name, ''), 'unnamed') ELSE backend_type END AS name FROM pg_stat_activity",
    [databases]
  )).rows.map((r) => [r.pid, r.name] as const))
  const out = new Map<number, string>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const ppid = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1])
      const name = named.get(Number(entry))
      if (ppid === postmaster && name !== null) out.set(Number(entry), name ?? 'other')
    } catch {}
  }
  return out
}

export interface Sources {
  /** Node processes whose threads are split: label prefix → pid and its thread-ids file; label(threadId) names a thread (undefined: node internals). */
  readonly nodes: ReadonlyArray<{ readonly prefix: string, readonly pid: number, readonly threadsFile: string, readonly label: (threadId: number) => string }>
  /** Whole processes: label → pid. */
  readonly processes: ReadonlyArray<{ readonly label: string, readonly pid: number }>
  /** PostgreSQL, grouped: application_name / backend type → label. */
  readonly client: pg.Client
  /** The databases whose sessions are counted. */
  readonly databases: readonly string[]
  readonly postgresGroup: (name: string) => string
}

/**
 * Starts Hermes (`src/main.js --config configFile`) with every thread recording its kernel thread id in `threadsFile`
 * (thread-ids.cjs), and names its threads by the Node thread ids its "hermes started" line reports (src/hermes.ts):
 * their order depends on how Hermes starts them, so it is read, not assumed. An id the line did not name (a
 * replaced worker) is named by its id.
 */
export async function startMeasuredHermes (configFile: string, threadsFile: string, nodeArgs: readonly string[]): Promise<{ server: Server, label: (threadId: number) => string }> {
  let started: Record<string, unknown> = {}
  const portOf = (line: Record<string, unknown>): number | undefined => {
    if (line['msg'] !== 'hermes started') return undefined
    started = line
    return line['port'] as number
  }
  const main = new URL('../src/main.js', import.meta.url).pathname
  const server = await startServer(main, ['--config', configFile], { BENCH_THREADS_FILE: threadsFile }, portOf, [...nodeArgs, '--require', threadIdsPreload])
  return { server, label: hermesThreadLabel(started) }
}

/** Names Hermes' threads from its "hermes started" line (see startMeasuredHermes). */
export function hermesThreadLabel (started: Record<string, unknown>): (threadId: number) => string {
  const threads = started['threads'] as { writer?: number, dispatch?: number, workers?: number[] } | undefined
  const names = new Map<number, string>([[0, 'main']])
  if (threads?.writer !== undefined) names.set(threads.writer, 'writer')
  if (threads?.dispatch !== undefined) names.set(threads.dispatch, 'dispatch')
  threads?.workers?.forEach((id, i) => names.set(id, `worker-${i}`))
  return (id) => names.get(id) ?? `thread ${id}`
}

/** Per-label CPU seconds used so far; subtract two readings for a window. Threads and backends are keyed by id so that the delta is per thread. */
export async function readCpu (sources: Sources): Promise<Map<string, { label: string, seconds: number }>> {
  const out = new Map<string, { label: string, seconds: number }>()
  for (const node of sources.nodes) {
    const ids = readThreadIds(node.threadsFile)
    for (const [tid, seconds] of threadSeconds(node.pid)) {
      const threadId = ids.get(tid)
      out.set(`t${tid}`, { label: `${node.prefix} ${threadId === undefined ? 'node internals (GC, compiler, libuv)' : node.label(threadId)}`, seconds })
    }
  }
  for (const p of sources.processes) out.set(`p${p.pid}`, { label: p.label, seconds: cpuSeconds(p.pid) })
  for (const [pid, name] of await postgresProcesses(sources.client, sources.databases)) out.set(`pg${pid}`, { label: sources.postgresGroup(name), seconds: cpuSeconds(pid) })
  out.set('children', { label: 'load generator (wrk)', seconds: exitedChildrenSeconds() })
  return out
}

/** CPU seconds per label between two readings (a thread or backend born in between counts from zero). */
export function cpuDelta (before: Map<string, { label: string, seconds: number }>, after: Map<string, { label: string, seconds: number }>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, { label, seconds }] of after) {
    const d = seconds - (before.get(key)?.seconds ?? 0)
    if (Number.isFinite(d)) out[label] = (out[label] ?? 0) + d
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]! * 100) / 100
  return out
}

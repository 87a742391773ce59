/**
 * Runs the calling thread at a lower CPU priority (a higher nice value)
 * than the HTTP thread. Hermes does this in `enqueued` mode for the workers
 * and the writer, and in both modes for dispatch: its thread and, on the
 * embedded database, its sessions' server processes (src/hermes.ts).
 *
 * Why: when every core is busy, the HTTP thread and the threads behind it
 * share the CPU evenly, so the front end answers at a fraction of its speed
 * while the ring it fills has room to spare. An enqueued answer waits for
 * none of the threads behind the ring, and the ring is there to hold their
 * backlog (bounded; a full ring answers 503). With them one step lower, the
 * front end takes the CPU it needs and they use every cycle it leaves.
 * Nothing is dropped or reordered. Figures: bench/README.md, "Design
 * measurements".
 *
 * The price: once the ring is full, a flood of clients that ignore
 * Retry-After keeps the HTTP thread busy answering 503 at the higher
 * priority, and the ring drains more slowly. Clients that honour Retry-After never get there, since
 * answering their 503s takes a small part of a core.
 *
 * In `durable` mode a 202 waits for the workers and the writer, and
 * lowering them made p99 worse; they keep the HTTP thread's priority. No
 * answer waits for dispatch in either mode, and at full load it is a third
 * of the machine (its thread, and the PostgreSQL backends of its claims and
 * write-backs), so both the thread and its backends are lowered; delivery
 * slows under full ingest and catches up when the load ends.
 *
 * Linux only: there, a nice value belongs to a thread (setpriority() on a
 * thread id), and /proc/thread-self names the caller's thread id. Elsewhere
 * this does nothing. Raising a nice value needs no privilege; lowering it
 * again would, so a thread is lowered once, when it starts. A thread created
 * later by a lowered thread inherits its priority (libuv's thread pool is
 * started by whichever thread first needs it).
 */
import { readFileSync, readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/** The highest nice value (the lowest priority) Linux has. */
export const kMaxNice = 19

export type PriorityChange =
  | { readonly changed: true; readonly nice: number }
  | { readonly changed: false; readonly reason: string }

/** Raises the calling thread's nice value by `increment` (at most to 19). */
export function lowerThreadPriority (increment: number): PriorityChange {
  return lower(increment, () => Number(readlinkSync('/proc/thread-self').split('/').pop()))
}

/**
 * Raises the nice value of a PostgreSQL backend on this machine by
 * `increment` (at most to 19): the process `pg_backend_pid()` named, which
 * serves one of our own sessions. Only for a server in this machine's pid
 * namespace (the embedded one Hermes started): for any other server that
 * number names some unrelated local process, or none. As a last check the
 * process must call itself a PostgreSQL backend. Lowering another user's
 * process (the embedded server runs as `postgres` under root) needs
 * CAP_SYS_NICE, which root has; without it the change is refused and
 * reported, and nothing else happens.
 */
export function lowerBackendPriority (pid: number, increment: number): PriorityChange {
  return lower(increment, () => {
    const title = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    if (!title.startsWith('postgres')) throw new Error(`process ${pid} is not a PostgreSQL backend on this machine`)
    return pid
  })
}

function lower (increment: number, target: () => number): PriorityChange {
  if (!Number.isInteger(increment) || increment < 0) throw new RangeError('increment must be a non-negative integer')
  if (increment === 0) return { changed: false, reason: 'no increment configured' }
  if (process.platform !== 'linux') return { changed: false, reason: `priorities are only set on Linux (this is ${process.platform})` }
  try {
    const id = target()
    const nice = Math.min(kMaxNice, getPriority(id) + increment)
    setPriority(id, nice)
    return { changed: true, nice }
  } catch (error) {
    return { changed: false, reason: (error as Error).message }
  }
}

/**
 * The dispatcher's database sessions (claims have one, outcome write-backs
 * another): DatabaseSession (src/store/database-session.ts) with dispatch's
 * profile, timeouts, backend priority and logs. Queries queue on a session
 * in the order they are issued (pg runs one query at a time per client).
 */
import type pg from 'pg'
import type { Logger } from '../log.js'
import { lowerBackendPriority } from '../thread-priority.js'
import { DatabaseSession } from '../store/database-session.js'
import { sessionProfiles, type SessionProfile } from '../store/session.js'
import { claimSessionSettings, dispatchSessionSettings } from './dispatch-sql.js'

// A half-open connection (a partition, a dead host) must fail, not hang: stop() waits on the claim in flight.
const kConnectTimeoutMs = 5000
const kQueryTimeoutMs = 15_000

export class DbSession extends DatabaseSession {
  /**
   * `profile`: the session's name, timeouts and planner settings (src/store/session.ts).
   * `backendNice`: how much nicer the server process of this session runs
   * (src/thread-priority.ts, lowerBackendPriority), set on every connect;
   * 0 for a server that is not in this machine's pid namespace.
   */
  constructor (url: string, log: Logger, profile: SessionProfile = sessionProfiles.dispatchWrite, backendNice = 0) {
    super(url, {
      profile,
      connectTimeoutMs: kConnectTimeoutMs,
      queryTimeoutMs: kQueryTimeoutMs,
      ...(backendNice > 0 ? { onConnect: async (client: pg.Client) => await lowerBackend(client, log, profile, backendNice) } : {}),
      onDown: (error) => log.error({ code: 'HERMES_ERR_DATABASE', err: error instanceof Error ? error.message : String(error) }, 'dispatch: database unreachable; retrying'),
      onUp: () => log.info('dispatch: database reachable again')
    })
  }
}

async function lowerBackend (client: pg.Client, log: Logger, profile: SessionProfile, nice: number): Promise<void> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  const change = lowerBackendPriority(rows[0]!.pid, nice)
  if (change.changed) log.debug({ session: profile.applicationName, pid: rows[0]!.pid, nice: change.nice }, 'dispatch: database session runs nicer')
  else log.warn({ session: profile.applicationName, reason: change.reason }, 'dispatch: could not lower the database session\'s priority; it keeps the server\'s')
}

/** The dispatcher's claim connection: its planner settings keep claims reading the due index in order (dispatch-sql.ts, claimSessionSettings). */
export function openClaimSession (url: string, log: Logger, backendNice = 0): DbSession {
  return new DbSession(url, log, { ...sessionProfiles.dispatchClaim, planner: [...claimSessionSettings, ...dispatchSessionSettings] }, backendNice)
}

/** The dispatcher's write-back connection: its planner settings keep outcome writes probing by id (dispatch-sql.ts, dispatchSessionSettings). */
export function openWriteSession (url: string, log: Logger, backendNice = 0): DbSession {
  return new DbSession(url, log, { ...sessionProfiles.dispatchWrite, planner: dispatchSessionSettings }, backendNice)
}

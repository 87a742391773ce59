/**
 * Every PostgreSQL connection Hermes opens goes through openSession: it
 * connects and, in the same round trip as nothing else, fixes the settings
 * Hermes' statements depend on, so a server's or database owner's defaults
 * (JIT on, a 1 s statement_timeout, serializable isolation) cannot change
 * what Hermes does.
 */
import pg from 'pg'

export interface SessionProfile {
  /** application_name, as pg_stat_activity shows it. */
  readonly applicationName: string
  /** 0 disables the limit on purpose (schema setup may build an index on a large table). */
  readonly statementTimeoutMs: number
  readonly lockTimeoutMs: number
  readonly idleInTransactionTimeoutMs: number
  /** Planner settings of this session only (SET statements). */
  readonly planner?: readonly string[]
}

/**
 * The sessions Hermes runs. JIT is off in all of them: Hermes' statements
 * touch a few rows each and run thousands of times, so LLVM compilation
 * (hundreds of milliseconds a statement) can only cost. Read committed is
 * what the writer's ON CONFLICT merges and dispatch's SKIP LOCKED claims
 * are written for.
 */
export const sessionProfiles = {
  /** Schema setup waits for another instance's setup (an advisory lock), however long its migration takes. */
  setup: { applicationName: 'hermes-setup', statementTimeoutMs: 0, lockTimeoutMs: 0, idleInTransactionTimeoutMs: 60_000 },
  /** A batch's transaction is one round trip; a minute is far beyond any healthy merge, and a timeout is retried. */
  writer: { applicationName: 'hermes-writer', statementTimeoutMs: 60_000, lockTimeoutMs: 30_000, idleInTransactionTimeoutMs: 60_000 },
  dispatchClaim: { applicationName: 'hermes-dispatch', statementTimeoutMs: 15_000, lockTimeoutMs: 10_000, idleInTransactionTimeoutMs: 60_000 },
  dispatchWrite: { applicationName: 'hermes-dispatch-write', statementTimeoutMs: 15_000, lockTimeoutMs: 10_000, idleInTransactionTimeoutMs: 60_000 },
  gauges: { applicationName: 'hermes-dispatch-gauges', statementTimeoutMs: 10_000, lockTimeoutMs: 5_000, idleInTransactionTimeoutMs: 60_000 },
  /** The fleet's heartbeat and share reads: small and frequent. */
  fleet: { applicationName: 'hermes-fleet', statementTimeoutMs: 10_000, lockTimeoutMs: 5_000, idleInTransactionTimeoutMs: 60_000 },
  /** A retention batch deletes a few thousand rows in its own transaction; a lock it waits for means ingest or dispatch holds the row, and the next sweep retries. */
  retention: { applicationName: 'hermes-retention', statementTimeoutMs: 60_000, lockTimeoutMs: 5_000, idleInTransactionTimeoutMs: 60_000 },
  /** An operator's bulk re-queue may touch every dead letter: no statement limit. */
  redispatch: { applicationName: 'hermes-redispatch', statementTimeoutMs: 0, lockTimeoutMs: 30_000, idleInTransactionTimeoutMs: 60_000 }
} as const satisfies Record<string, SessionProfile>

/** The settings of a session as one simple-protocol query string (one round trip at connect). */
export function sessionSettingsSql (profile: SessionProfile): string {
  return [
    'SET jit = off',
    "SET default_transaction_isolation = 'read committed'",
    `SET statement_timeout = ${integer(profile.statementTimeoutMs)}`,
    `SET lock_timeout = ${integer(profile.lockTimeoutMs)}`,
    `SET idle_in_transaction_session_timeout = ${integer(profile.idleInTransactionTimeoutMs)}`,
    // PostgreSQL notices a vanished Hermes while its session waits on a lock, and ends that session.
    "SET client_connection_check_interval = '1s'",
    ...(profile.planner ?? [])
  ].join('; ')
}

export interface SessionOptions {
  readonly connectTimeoutMs?: number
  /** Client-side bound on one query (pg's query_timeout): a half-open connection fails instead of hanging. */
  readonly queryTimeoutMs?: number
}

/**
 * Connects and applies the profile's settings. On any failure the client is
 * closed and the error thrown; a connection that breaks later reports on the
 * client's 'error' event, which the caller must handle.
 */
export async function openSession (url: string, profile: SessionProfile, options: SessionOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: profile.applicationName,
    keepAlive: true,
    ...(options.connectTimeoutMs === undefined ? {} : { connectionTimeoutMillis: options.connectTimeoutMs }),
    ...(options.queryTimeoutMs === undefined ? {} : { query_timeout: options.queryTimeoutMs })
  })
  const early = (): void => {} // an 'error' before the caller attaches its handler must not crash the process
  client.on('error', early)
  try {
    await client.connect()
    await client.query(sessionSettingsSql(profile))
  } catch (error) {
    await client.end().catch(() => {})
    throw error
  } finally {
    client.off('error', early)
  }
  return client
}

function integer (ms: number): string {
  if (!Number.isInteger(ms) || ms < 0) throw new RangeError(`a session timeout must be a whole number of milliseconds ≥ 0, not ${ms}`)
  return String(ms)
}

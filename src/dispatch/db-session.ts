/**
 * One of the dispatcher's PostgreSQL connections (claims have one, outcome
 * write-backs another), (re)opened on demand: a query that fails because
 * the connection broke drops it, and the next query reconnects. Queries
 * queue on it in the order they are issued (pg runs one query at a time
 * per client).
 */
import type pg from 'pg'
import type { Logger } from '../log.js'
import { isTransientDatabaseError } from '../database-errors.js'
import { lowerBackendPriority } from '../thread-priority.js'
import { openSession, sessionProfiles, type SessionProfile } from '../store/session.js'
import { claimSessionSettings } from './dispatch-sql.js'

const kConnectTimeoutMs = 5000
const kQueryTimeoutMs = 15_000

export class DbSession {
  private client: pg.Client | null = null
  private connecting: Promise<pg.Client> | null = null
  private up: boolean | null = null // null until the first contact

  /**
   * `backendNice`: how much nicer the server process of this session runs
   * (src/thread-priority.ts, lowerBackendPriority), set on every connect;
   * 0 for a server that is not in this machine's pid namespace.
   * `profile`: the session's name, timeouts and planner settings (src/store/session.ts), set on every connect.
   */
  constructor (
    private readonly url: string,
    private readonly log: Logger,
    private readonly profile: SessionProfile = sessionProfiles.dispatchWrite,
    private readonly backendNice = 0
  ) {}

  /**
   * Runs one statement. With a `name` it is a prepared statement of this
   * connection (pg prepares it again after a reconnect): the dispatcher's
   * claims and write-backs run hundreds of times a second, often for a few
   * rows, and planning them afresh cost as much as executing them.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow> (sql: string, params?: unknown[], name?: string): Promise<pg.QueryResult<R>> {
    const client = await this.connect()
    try {
      const result = name === undefined ? await client.query<R>(sql, params) : await client.query<R>({ name, text: sql, values: params ?? [] })
      this.markUp()
      return result
    } catch (error) {
      if (isTransientDatabaseError(error)) this.drop(client, error)
      throw error
    }
  }

  async close (): Promise<void> {
    const client = this.client ?? await this.connecting?.catch(() => null) ?? null
    this.client = null
    await client?.end().catch(() => {})
  }

  private async connect (): Promise<pg.Client> {
    if (this.client !== null) return this.client
    this.connecting ??= this.open().finally(() => { this.connecting = null })
    return await this.connecting
  }

  private async open (): Promise<pg.Client> {
    let client: pg.Client
    try {
      // A half-open connection (a partition, a dead host) must fail, not hang: stop() waits on the claim in flight.
      client = await openSession(this.url, this.profile, { connectTimeoutMs: kConnectTimeoutMs, queryTimeoutMs: kQueryTimeoutMs })
    } catch (error) {
      this.markDown(error)
      throw error
    }
    // A connection that drops between queries reports here, not through a query.
    client.on('error', (error) => this.drop(client, error))
    try {
      if (this.backendNice > 0) await this.lowerBackend(client)
    } catch (error) {
      await client.end().catch(() => {})
      this.markDown(error)
      throw error
    }
    this.client = client
    this.markUp()
    return client
  }

  private async lowerBackend (client: pg.Client): Promise<void> {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    const change = lowerBackendPriority(rows[0]!.pid, this.backendNice)
    if (change.changed) this.log.debug({ session: this.profile.applicationName, pid: rows[0]!.pid, nice: change.nice }, 'dispatch: database session runs nicer')
    else this.log.warn({ session: this.profile.applicationName, reason: change.reason }, 'dispatch: could not lower the database session\'s priority; it keeps the server\'s')
  }

  private drop (client: pg.Client, error: unknown): void {
    if (this.client === client) this.client = null
    client.end().catch(() => {})
    this.markDown(error)
  }

  private markUp (): void {
    if (this.up === true) return
    if (this.up === false) this.log.info('dispatch: database reachable again')
    this.up = true
  }

  private markDown (error: unknown): void {
    if (this.up === false) return
    this.up = false
    this.log.error({ code: 'HERMES_ERR_DATABASE', err: error instanceof Error ? error.message : String(error) }, 'dispatch: database unreachable; retrying')
  }
}

/** The dispatcher's claim connection: its planner settings keep claims reading the due index in order (dispatch-sql.ts, claimSessionSettings). */
export function openClaimSession (url: string, log: Logger, backendNice = 0): DbSession {
  return new DbSession(url, log, { ...sessionProfiles.dispatchClaim, planner: claimSessionSettings }, backendNice)
}

/**
 * One long-lived PostgreSQL session of Hermes (the writer's, dispatch's
 * claim and write-back sessions, the gauges', the fleet's, retention's):
 * it connects on first use with its profile's settings (session.ts,
 * openSession), runs the statements every connection of it needs (PREPARE,
 * temporary tables), runs queries, named ones as prepared statements of
 * the connection, and forgets the connection once it may be broken, so
 * that the next use reconnects and prepares everything again.
 *
 * A failure PostgreSQL refused (an SQLSTATE no retry changes,
 * isRefusedByDatabase) leaves the connection in place; anything else (a
 * lost socket, a server restarting, a timeout) drops it. Its owner retries
 * its work after `backoff` (src/dispatch/backoff.ts), which it resets once
 * work succeeds.
 */
import type pg from 'pg'
import { isRefusedByDatabase } from '../database-errors.js'
import { Backoff } from '../dispatch/backoff.js'
import { openSession, type SessionOptions, type SessionProfile } from './session.js'

export interface DatabaseSessionOptions extends SessionOptions {
  readonly profile: SessionProfile
  /** Statements run on every new connection, in order, after its settings: a reconnect runs them again. */
  readonly prepare?: readonly string[]
  /** Runs on every new connection after `prepare`, before its first use; a throw fails the connect. */
  readonly onConnect?: (client: pg.Client) => Promise<void> | void
  /** The database became unreachable (a connect failed, or the connection was dropped), once per outage. */
  readonly onDown?: (error: unknown) => void
  /** A connect succeeded after onDown. */
  readonly onUp?: () => void
}

/** Thrown by a session used after close(). */
export class SessionClosedError extends Error {
  constructor (name: string) {
    super(`the database session ${name} is closed`)
    this.name = 'SessionClosedError'
  }
}

export class DatabaseSession {
  /** The owner's retry delay after a failure on this session. */
  readonly backoff = new Backoff()
  private current: pg.Client | null = null
  private connecting: Promise<pg.Client> | null = null
  private up: boolean | null = null // null until the first contact
  private closed = false

  constructor (private readonly url: string, private readonly options: DatabaseSessionOptions) {}

  get name (): string { return this.options.profile.applicationName }

  /** The open connection, or null (not connected yet, or dropped): for statements that need the client itself (COPY). */
  get client (): pg.Client | null { return this.current }

  /** The open connection, connecting (and preparing) first if there is none. Rejects if that fails. */
  async connection (): Promise<pg.Client> {
    if (this.current !== null) return this.current
    if (this.closed) throw new SessionClosedError(this.name)
    this.connecting ??= this.open().finally(() => { this.connecting = null })
    return await this.connecting
  }

  /**
   * Runs one statement. With a `name` it is a prepared statement of this
   * connection (pg prepares it again on a new connection): statements that
   * run hundreds of times a second, often for a few rows, cost as much to
   * plan afresh as to execute.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow> (sql: string, params?: unknown[], name?: string): Promise<pg.QueryResult<R>> {
    const client = await this.connection()
    try {
      return name === undefined ? await client.query<R>(sql, params) : await client.query<R>({ name, text: sql, values: params ?? [] })
    } catch (error) {
      this.failed(error, client)
      throw error
    }
  }

  /**
   * After `error` on this session's connection (`client`: the one it
   * happened on, the current one by default): drops the connection unless
   * PostgreSQL refused the statement. Returns whether it was dropped.
   */
  failed (error: unknown, client: pg.Client | null = this.current): boolean {
    if (isRefusedByDatabase(error)) return false
    if (client !== null) this.drop(client, error)
    return true
  }

  /** Closes the connection (one being opened too); the session cannot be used again. */
  async close (): Promise<void> {
    this.closed = true
    const client = this.current ?? await this.connecting?.catch(() => null) ?? null
    this.current = null
    await client?.end().catch(() => {})
  }

  private async open (): Promise<pg.Client> {
    const { profile, prepare = [], onConnect, connectTimeoutMs, queryTimeoutMs } = this.options
    let client: pg.Client
    try {
      client = await openSession(this.url, profile, {
        ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
        ...(queryTimeoutMs === undefined ? {} : { queryTimeoutMs })
      })
    } catch (error) {
      this.markDown(error)
      throw error
    }
    // A connection that drops between queries reports here, not through a query.
    client.on('error', (error) => this.drop(client, error))
    try {
      for (const sql of prepare) await client.query(sql)
      await onConnect?.(client)
    } catch (error) {
      await client.end().catch(() => {})
      this.markDown(error)
      throw error
    }
    if (this.closed) {
      await client.end().catch(() => {})
      throw new SessionClosedError(this.name)
    }
    this.current = client
    this.markUp()
    return client
  }

  private drop (client: pg.Client, error: unknown): void {
    client.end().catch(() => {})
    if (this.current !== client) return // an older connection's late news: the current one is not in question
    this.current = null
    this.markDown(error)
  }

  private markUp (): void {
    const was = this.up
    this.up = true
    if (was === false) this.options.onUp?.()
  }

  private markDown (error: unknown): void {
    if (this.up === false) return
    this.up = false
    this.options.onDown?.(error)
  }
}

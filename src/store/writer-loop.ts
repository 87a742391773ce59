import type { FromWriter, Preclaimed } from '../messages.js'
import type { Logger } from '../log.js'
import { kDatabaseUp, kWriterQueuedRows, kWriterReady } from '../shared-status.js'
import { Rejection } from '../errors.js'
import { createStagingTable, kStagingBytesPerTruncate, prepareMerge, writerSessionSettings, writerTransaction } from './merge-sql.js'
import { runCopyTransaction } from './copy-transaction.js'
import { sessionProfiles } from './session.js'
import { DatabaseSession } from './database-session.js'
import { IdCache, type ResolvedIds } from './id-cache.js'
import type { SharedMetrics } from '../metrics/shared-metrics.js'
import { isRefusedByDatabase } from '../database-errors.js'
import { concatSlots, halve, rowCount, type RowBatch } from './row-batch.js'
import type { PreclaimData } from '../preclaim-credit.js'
import { Preclaimer } from './preclaim-batch.js'
import { adoptWaitingEvents, createReceiptStagingTable, prepareReceiptMerge, receiptTransaction, type ReceiptCounts } from './receipt-sql.js'
import { receiptLabel } from '../delivery-status.js'

export interface WriterOptions {
  readonly databaseUrl: string
  readonly status: Int32Array
  readonly maxBatchRows: number
  readonly maxBatchDelayMs: number
  readonly preclaim?: PreclaimData
  readonly post: (message: FromWriter) => void
  readonly log: Logger
  readonly metrics?: SharedMetrics
}

const kIdlePingMs = 1000
/** Receipts waiting for their message are looked for this soon after one is stored, then ever less often (doubling) up to the maximum. */
const kMinSweepMs = 50
const kMaxSweepMs = 30_000
/** A batch this large is committed without waiting for more: its fixed cost is then under a fifth of its CPU. */
const kFullBatchRows = 128
/** A fuller batch is waited for at most this many maxBatchDelayMs slices' time (8 ms at the default 2 ms). */
const kHoldSlices = 4

/**
 * Owns one PostgreSQL connection and commits batches with group commit: a
 * transaction takes everything queued (up to maxBatchRows) the moment the
 * previous one returns, so batch size grows with load and latency stays one
 * commit cycle. Rows are never dropped: a transient failure keeps the group
 * and retries with backoff (the queue then fills and back-pressure reaches
 * the front end); rows PostgreSQL refuses are isolated and rejected alone.
 */
export class WriterLoop {
  private readonly queue: RowBatch[] = []
  /** When each queued batch arrived (gather() bounds what its oldest row waits). */
  private readonly arrivedAt = new WeakMap<RowBatch, number>()
  private queuedRows = 0
  /** Its connection has the staging tables and prepared merges (merge-sql.ts, receipt-sql.ts), made again on every reconnect. */
  private readonly session: DatabaseSession
  private wake: (() => void) | null = null
  private stopping = false
  private lastContact = 0
  private readonly cache = new IdCache()
  /** Bytes COPYed into this connection's staging table since its file was last cut back (merge-sql.ts). */
  private stagedBytes = 0
  private readonly preclaimer: Preclaimer | null
  /** Whether receipts may be waiting for their message (true at start: a previous run may have left some). */
  private waitingReceipts = true
  private sweepMs = kMinSweepMs
  private nextSweepAt = 0

  constructor (private readonly options: WriterOptions) {
    this.preclaimer = options.preclaim === undefined ? null : new Preclaimer(options.preclaim)
    this.session = new DatabaseSession(options.databaseUrl, {
      profile: { ...sessionProfiles.writer, planner: [writerSessionSettings] },
      prepare: [createStagingTable, prepareMerge, createReceiptStagingTable, prepareReceiptMerge],
      onConnect: () => this.connected(),
      onDown: (error) => this.markDown(error)
    })
  }

  enqueue (batch: RowBatch): void {
    this.queue.push(batch)
    this.arrivedAt.set(batch, performance.now())
    this.setQueued(this.queuedRows + batch.slots.length)
    this.wake?.()
  }

  stop (): void {
    this.stopping = true
    this.wake?.()
  }

  async run (): Promise<void> {
    const backoff = this.session.backoff
    while (!this.stopping || this.queue.length > 0) {
      try {
        await this.session.connection()
        if (this.waitingReceipts && Date.now() >= this.nextSweepAt) await this.sweep()
        if (this.queue.length === 0) {
          await this.idle()
          continue
        }
        await this.gather()
        await this.commitOrIsolate(this.take())
        backoff.reset()
      } catch (error) {
        // Only transient failures reach here; the group is still queued. Reconnecting is cheap and
        // always safe; a half-broken session is not.
        this.session.failed(error)
        this.markDown(error)
        await sleep(backoff.next())
      }
    }
    await this.session.close()
  }

  private async idle (): Promise<void> {
    let waitMs = Math.max(0, kIdlePingMs - (Date.now() - this.lastContact))
    if (this.waitingReceipts) waitMs = Math.min(waitMs, Math.max(0, this.nextSweepAt - Date.now()))
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs)
      this.wake = () => { clearTimeout(timer); resolve() }
    })
    this.wake = null
    if (this.queue.length === 0 && !this.stopping && Date.now() - this.lastContact >= kIdlePingMs && !(this.waitingReceipts && Date.now() >= this.nextSweepAt)) {
      await this.session.query('SELECT 1') // a health check while idle keeps /readyz truthful
      this.markUp()
    }
  }

  /**
   * Waits for a fuller batch when the queue is small: until its oldest row is
   * one maxBatchDelayMs slice old (all a lone message waits), then further
   * slices while rows keep arriving, until the queue holds kFullBatchRows or
   * its oldest row is kHoldSlices slices old. Counting from the oldest row's
   * arrival, not from the wait's start, bounds what any row waits here: rows
   * that queued behind a long transaction have waited already and go at once.
   * A transaction costs about 1 ms of CPU (writer and backend) whatever its
   * size, against ~35 µs a row, so under a steady load of a few thousand a
   * second a batch of 10-20 rows spent most of its CPU on that fixed part
   * (bench/README.md, "Ingest CPU per message"). Times come from the clock:
   * on a busy machine a timer fires late.
   */
  private async gather (): Promise<void> {
    const { maxBatchDelayMs, maxBatchRows } = this.options
    if (maxBatchDelayMs <= 0) return
    const target = Math.min(maxBatchRows, kFullBatchRows)
    const oldest = this.arrivedAt.get(this.queue[0]!) ?? performance.now()
    const deadline = oldest + kHoldSlices * maxBatchDelayMs
    for (let first = true; ; first = false) {
      if (this.queuedRows >= target || this.stopping) return
      const now = performance.now()
      const waitMs = Math.min(first ? oldest + maxBatchDelayMs - now : maxBatchDelayMs, deadline - now)
      if (waitMs <= 0 && !first) return
      const before = this.queuedRows
      if (waitMs > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs)
          this.wake = () => { if (this.queuedRows >= target || this.stopping) { clearTimeout(timer); resolve() } }
        })
        this.wake = null
      }
      if (this.queuedRows === before && !(first && waitMs <= 0)) return // nothing came: more waiting would only add latency
    }
  }

  /** Takes whole batches up to maxBatchRows (at least one) off the queue's front, leaving them queued until committed. */
  private take (): RowBatch[] {
    const group: RowBatch[] = []
    let rows = 0
    const kind = this.queue[0]?.kind ?? 'messages'
    for (const batch of this.queue) {
      if ((batch.kind ?? 'messages') !== kind) break // messages and receipts go to different tables
      if (group.length > 0 && rows + batch.slots.length > this.options.maxBatchRows) break
      group.push(batch)
      rows += batch.slots.length
    }
    return group
  }

  /** Commits the group, or isolates what PostgreSQL refuses in it; true when it committed whole. */
  private async commitOrIsolate (group: RowBatch[]): Promise<boolean> {
    try {
      if (group[0]?.kind === 'receipts') {
        await this.commitReceipts(group)
        return true
      }
      const started = performance.now()
      const { inserted, claimed, attachments, byChannel, preclaimed } = await this.commit(group)
      const rows = rowCount(group)
      this.dequeue(group.length, rows)
      const elapsedMs = performance.now() - started
      this.options.log.debug({ rows, inserted, elapsedMs }, 'batch committed')
      const m = this.options.metrics
      if (m !== undefined) {
        m.inc('hermes_writer_batches_total')
        m.observe('hermes_writer_batch_rows', [], rows)
        m.observe('hermes_writer_transaction_seconds', [], elapsedMs / 1000)
        for (const [channel, n] of Object.entries(byChannel)) m.inc('hermes_messages_stored_total', [channel], n)
        m.inc('hermes_attachments_stored_total', [], attachments)
        m.inc('hermes_messages_duplicate_total', [], rows - inserted)
      }
      this.options.post({ type: 'committed', slots: concatSlots(group), inserted, claimed, elapsedMs })
      // After the answers: pre-claimed messages start sends at once, which would compete for the
      // cores with the 202s of this very batch.
      if (preclaimed !== null) this.options.post(preclaimed)
      return true
    } catch (error) {
      const transient = !isRefusedByDatabase(error)
      this.options.metrics?.inc('hermes_writer_failures_total', [transient ? 'transient' : 'refused'])
      if (transient) throw error
      await this.isolate(group, error, true)
      return false
    }
  }

  /**
   * A refused group: commit each half, splitting a refused half again, so a
   * bad row among n costs about 1.5·log2(n) short transactions rather than n
   * (one per row), and only the bad rows are rejected. When the first half
   * commits, the second must hold what was refused and is split without being
   * tried whole; `tried` says whether `group` itself was tried alone, so no row
   * is rejected without having been refused on its own.
   */
  private async isolate (group: RowBatch[], cause: unknown, tried: boolean): Promise<void> {
    const rows = rowCount(group)
    if (rows === 1 && !tried) {
      await this.commitOrIsolate(group)
      return
    }
    if (rows === 1) {
      this.dequeue(group.length, 1)
      const reason = cause instanceof Error ? cause.message : String(cause)
      const sqlState = (cause as { code?: unknown } | null)?.code
      // The reason (constraint names, column types) goes to the log; the client's answer names no schema internals.
      this.options.log.error({ code: Rejection.storeRefused.code, sqlState, err: reason }, 'PostgreSQL refused a row')
      this.options.post({ type: 'rejected', slots: concatSlots(group), code: Rejection.storeRefused.code, message: 'the database refused to store this message; it was not stored, and sending it again will not change that' })
      return
    }
    this.options.log.debug({ rows }, 'rows refused by PostgreSQL; committing them in halves')
    const [left, right] = halve(group)
    // The halves take the group's place at the queue's front, so a transient failure meanwhile retries them.
    this.queue.splice(0, group.length, ...left, ...right)
    if (await this.commitOrIsolate(left)) await this.isolate(right, cause, false)
    else await this.commitOrIsolate(right)
  }

  private async commit (group: RowBatch[]): Promise<{ inserted: number, claimed: number, attachments: number, byChannel: Record<string, number>, preclaimed: Preclaimed | null }> {
    const client = this.session.client!
    const preclaim = this.preclaimer?.batch(rowCount(group))
    const annotated = group.map((b) => this.cache.annotate(b.rows, preclaim?.claimMs))
    const uncached = annotated.reduce((n, a) => n + a.uncached, 0)
    const plain = annotated.every((a) => a.claimed === 0 && a.withFiles === 0)
    this.options.metrics?.inc('hermes_writer_id_cache_total', ['miss'], uncached)
    this.options.metrics?.inc('hermes_writer_id_cache_total', ['hit'], rowCount(group) - uncached)
    const rows = annotated.map((a) => a.rows)
    const bytes = rows.reduce((n, r) => n + r.length, 0)
    try {
      const truncate = this.stagedBytes + bytes >= kStagingBytesPerTruncate
      // One round trip: BEGIN, the COPY, the merge (resolve only when something is not cached; the
      // plain insert when nothing is pre-claimed or has files), the staging table's DELETE or TRUNCATE, COMMIT.
      const transaction = writerTransaction({ resolve: uncached > 0, truncate, plain })
      const results = await runCopyTransaction(client, transaction.sql, rows)
      this.stagedBytes = truncate ? 0 : this.stagedBytes + bytes
      this.markUp()
      // Committed: only now are the ids real for everyone.
      if (transaction.idsAt !== null) this.cache.learn(results[transaction.idsAt]!.rows as ResolvedIds[])
      const counts = results[transaction.countsAt]!.rows[0] as { inserted: number, claimed: number, attachments: number, by_channel: Record<string, number>, preclaimed: string | null }
      return { inserted: counts.inserted, claimed: counts.claimed, attachments: counts.attachments, byChannel: counts.by_channel, preclaimed: preclaim?.report(counts.preclaimed) ?? null }
    } catch (error) {
      this.stagedBytes += bytes // rolled back, a TRUNCATE too: the file keeps what was COPYed
      await client.query('ROLLBACK').catch(() => {})
      // Committed or not, the dispatcher learns what became of its credit. Should the COMMIT
      // itself be lost with the connection, rows it did commit stay claimed until their lease
      // runs out and are then claimed like any other: late, never lost.
      const report = preclaim?.report(null)
      if (report != null) this.options.post(report)
      throw error
    }
  }

  /** Stores a group of receipt requests; answers their slots as committed (nothing for dispatch to do). */
  private async commitReceipts (group: RowBatch[]): Promise<void> {
    const started = performance.now()
    const client = this.session.client!
    let counts: ReceiptCounts
    try {
      const results = await runCopyTransaction(client, receiptTransaction.sql, group.map((b) => b.rows))
      counts = results[receiptTransaction.countsAt]!.rows[0] as ReceiptCounts
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
    this.markUp()
    const rows = rowCount(group)
    this.dequeue(group.length, rows)
    const elapsedMs = performance.now() - started
    this.options.log.debug({ rows, events: counts.events, inserted: counts.inserted, waiting: counts.waiting, elapsedMs }, 'receipts committed')
    const m = this.options.metrics
    if (m !== undefined) {
      m.inc('hermes_writer_batches_total')
      m.observe('hermes_writer_batch_rows', [], rows)
      m.observe('hermes_writer_transaction_seconds', [], elapsedMs / 1000)
    }
    this.countReceipts(counts.counts, counts.delivered)
    if (counts.waiting > 0) this.expectWaitingReceipts()
    this.options.post({ type: 'committed', slots: concatSlots(group), inserted: 0, claimed: 0, elapsedMs })
  }

  private countReceipts (counts: string, delivered: string): void {
    const m = this.options.metrics
    if (m === undefined) return
    for (const [provider, status, event, n] of JSON.parse(counts) as Array<[string, string | null, string, number]>) {
      m.inc('hermes_delivery_receipts_total', [provider, receiptLabel(status, event)], n)
    }
    for (const seconds of JSON.parse(delivered) as number[]) m.observe('hermes_delivery_seconds', [], Math.max(0, seconds))
  }

  private expectWaitingReceipts (): void {
    this.waitingReceipts = true
    this.sweepMs = kMinSweepMs
    this.nextSweepAt = Math.min(this.nextSweepAt, Date.now() + kMinSweepMs)
  }

  /**
   * Links receipts that arrived before their message's provider id was stored, once it is, and applies
   * their status. Runs while any wait: soon after one arrived, then less often while none is adopted.
   */
  private async sweep (): Promise<void> {
    let result
    try {
      result = await this.session.query(adoptWaitingEvents)
    } catch (error) {
      if (!isRefusedByDatabase(error)) throw error
      this.options.log.error({ code: 'HERMES_ERR_RECEIPT_SWEEP', err: error instanceof Error ? error.message : String(error) }, 'could not link waiting receipts to their messages; trying again later')
      this.sweepMs = kMaxSweepMs
      this.nextSweepAt = Date.now() + this.sweepMs
      return
    }
    const { adopted, waiting, delivered } = result.rows[0] as { adopted: number, waiting: number, delivered: string }
    this.countReceipts('[]', delivered)
    if (adopted > 0) this.options.log.debug({ adopted, waiting: waiting - adopted }, 'receipts adopted by their message')
    this.waitingReceipts = waiting - adopted > 0
    this.sweepMs = adopted > 0 ? kMinSweepMs : Math.min(this.sweepMs * 2, kMaxSweepMs)
    this.nextSweepAt = Date.now() + this.sweepMs
  }

  /** A new connection, its staging tables and merges prepared (the session's `prepare`). */
  private connected (): void {
    this.stagedBytes = 0 // a new session's staging table is new
    this.markUp()
    if (Atomics.exchange(this.options.status, kWriterReady, 1) === 0) this.options.post({ type: 'ready' })
  }

  private markUp (): void {
    this.lastContact = Date.now()
    if (Atomics.exchange(this.options.status, kDatabaseUp, 1) === 0) {
      this.options.log.info('database reachable')
    }
  }

  private markDown (error: unknown): void {
    const message = error instanceof Error ? error.message : String(error)
    if (Atomics.exchange(this.options.status, kDatabaseUp, 0) === 1) {
      this.options.log.error({ code: 'HERMES_ERR_DATABASE', err: message }, 'database unreachable; retrying')
    }
  }

  /**
   * Takes committed (or refused) batches off the queue's front, lowering the
   * shared queued-rows count *before* the main thread hears of the commit:
   * it reads that count to decide whether to feed the workers, and a stale
   * count after the last commit would leave a full ring unfed for good.
   */
  private dequeue (batches: number, rows: number): void {
    this.queue.splice(0, batches)
    this.setQueued(this.queuedRows - rows)
  }

  private setQueued (rows: number): void {
    this.queuedRows = rows
    Atomics.store(this.options.status, kWriterQueuedRows, rows)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

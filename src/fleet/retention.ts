/**
 * Retention: deletes messages whose dispatch has ended (sent or failed) and
 * that were received more than `days` ago, with their attachments and
 * receipts; parties and conversations stay. A sweep runs firstSweepMs after
 * start and then every intervalMs, on its own connection, and only on the
 * instance that holds the retention advisory lock at that moment. Each
 * batch of batchRows scanned rows is its own short transaction, and the
 * sweep rests three times as long as a batch took before the next one, so
 * it never holds the database for long (kRestPerBatchTime).
 */
import { sessionProfiles } from '../store/session.js'
import { DatabaseSession } from '../store/database-session.js'
import type { Logger } from '../log.js'
import { deleteMessagesSql, deleteReceiptsSql, kRetentionLock, receiptsTableSql, scanBatchSql } from './retention-sql.js'

export interface RetentionOptions {
  readonly databaseUrl: string
  readonly days: number
  readonly intervalMs: number
  readonly firstSweepMs: number
  readonly batchRows: number
  readonly log: Logger
  /** Wall clock for the cutoff (tests move it). */
  readonly now?: () => number
  /** Called with the messages each batch deleted. */
  readonly onDeleted?: (messages: number) => void
}

export interface SweepReport {
  /** false: another instance held the lock; nothing was done. */
  readonly swept: boolean
  readonly deleted: number
  readonly batches: number
  readonly ms: number
}

const kDayMs = 86_400_000
/** A sweep ends after this many batches in a row found nothing older than the cutoff. */
const kYoungBatchesToStop = 10
/**
 * The pause after each batch, as a multiple of the batch's time. With 1
 * (half the time deleting) durable ingest beside a sweep fell to about 0.7×
 * (bench/retention.ts); deleting a quarter of the time still removes
 * thousands of rows a second, far more than most fleets receive.
 */
const kRestPerBatchTime = 3

export class RetentionSweeper {
  private timer: NodeJS.Timeout | null = null
  private running: Promise<SweepReport> | null = null
  private stopped = false
  /** Holds the sweep's advisory lock while it runs: every statement of a sweep goes through its one connection. */
  private readonly session: DatabaseSession
  private readonly now: () => number

  constructor (private readonly options: RetentionOptions) {
    this.now = options.now ?? Date.now
    this.session = new DatabaseSession(options.databaseUrl, { profile: sessionProfiles.retention })
  }

  start (): void {
    this.schedule(this.options.firstSweepMs)
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    await this.running?.catch(() => {})
    await this.session.close()
  }

  /** One sweep now (the timer's, or a test's). */
  async sweep (): Promise<SweepReport> {
    this.running ??= this.sweepOnce().finally(() => { this.running = null })
    return await this.running
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.sweep().catch((error: unknown) => {
        this.options.log.warn({ code: 'HERMES_ERR_RETENTION', err: (error as Error).message }, 'retention: sweep failed; trying again at the next interval')
        this.session.failed(error)
      }).finally(() => this.schedule(this.options.intervalMs))
    }, ms)
    this.timer.unref()
  }

  private async sweepOnce (): Promise<SweepReport> {
    const started = performance.now()
    const client = await this.session.connection()
    const { rows: [lock] } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [kRetentionLock])
    if (lock?.got !== true) {
      this.options.log.debug('retention: another instance is sweeping')
      return { swept: false, deleted: 0, batches: 0, ms: performance.now() - started }
    }
    let deleted = 0
    let batches = 0
    const cutoff = new Date(this.now() - this.options.days * kDayMs)
    try {
      const { rows: [receipts] } = await client.query<{ present: boolean }>(receiptsTableSql)
      let after = '0'
      let youngBatches = 0
      while (!this.stopped) {
        const batchStarted = performance.now()
        await client.query('BEGIN')
        let scan: { last_id: string | null; scanned: number; old: number; ids: string[] }
        try {
          scan = (await client.query(scanBatchSql, [after, this.options.batchRows, cutoff])).rows[0]
          if (scan.ids.length > 0) {
            if (receipts?.present === true) await client.query(deleteReceiptsSql, [scan.ids])
            const result = await client.query(deleteMessagesSql, [scan.ids])
            deleted += result.rowCount ?? 0
            this.options.onDeleted?.(result.rowCount ?? 0)
          }
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {})
          throw error
        }
        batches++
        // Ids grow with receipt time, so a run of batches with nothing old means the walk has passed the cutoff.
        // (A run, not one batch: a few newer rows may sit below older ones, e.g. after a bulk import.)
        youngBatches = scan.old === 0 ? youngBatches + 1 : 0
        if (scan.scanned === 0 || scan.last_id === null || youngBatches >= kYoungBatchesToStop) break
        after = scan.last_id
        // Rest a few times as long as the batch took: the sweep holds at most a quarter of its session's time.
        await new Promise((resolve) => setTimeout(resolve, kRestPerBatchTime * (performance.now() - batchStarted)))
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [kRetentionLock]).catch(() => {})
    }
    const ms = Math.round(performance.now() - started)
    this.options.log.info({ deleted, batches, ms, cutoff: cutoff.toISOString(), days: this.options.days }, 'retention: sweep done')
    return { swept: true, deleted, batches, ms }
  }
}

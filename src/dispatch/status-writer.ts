/**
 * Writes outcomes back in batches: everything that finished while the
 * previous write was in flight goes out in the next one statement (group
 * commit), so the database sees one round trip per batch, never one per
 * message. When nothing waits for them, outcomes also linger (lingerMs)
 * for company: a provider held to its rate finishes its sends one at a
 * time, and writing each at once would cost a commit per message (figures:
 * bench/README.md, "Design measurements"). A lane whose
 * slots are all held by unstored outcomes, with work queued behind them,
 * asks for a write at once (flush()).
 *
 * A broken connection keeps the batch and retries with backoff;
 * until it is stored the message stays claimed, so nothing is sent twice
 * by this instance meanwhile.
 */
import type { Logger } from '../log.js'
import type { Claimed } from './claimed.js'
import type { DatabaseSession } from '../store/database-session.js'
import { isTransientDatabaseError } from '../database-errors.js'
import { outcomeParams, outcomeSql, releaseSql, type Outcome } from './dispatch-sql.js'
import type { Decision } from './outcome.js'

/** A decision to store, or null: give the claim back untouched. */
export interface Entry {
  readonly item: Claimed
  readonly decision: Decision | null
  readonly provider: string
}

const kMaxRowsPerWrite = 5000
/** Enough rows for a write of their own, lingering or not. */
const kEagerRows = 500

export class StatusWriter {
  private queue: Entry[] = []
  private running: Promise<void> | null = null
  private retryTimer: NodeJS.Timeout | null = null
  private lingerTimer: NodeJS.Timeout | null = null
  private urgent = false // flush() was asked for since the last batch was taken

  constructor (
    /** Its backoff paces the retries of a failed write. */
    private readonly session: DatabaseSession,
    private readonly log: Logger,
    /**
     * Called once per entry when its write is done (or given up). `claimedAgain`: those of them whose
     * outcome was stored and whose message a claim of ours then took again before this write's answer
     * came (the item carries that claim's lease): new work, no longer covered by the outcome.
     */
    private readonly onStored: (entries: readonly Entry[], claimedAgain: readonly Entry[]) => void,
    /** Resolves once every claim in flight now has been adopted (claims run on another connection). */
    private readonly claimsSettled: () => Promise<void> = async () => {},
    /** How long an outcome may wait for others to share its write, unless flush() is called; 0: none. */
    private readonly lingerMs = 0
  ) {}

  get size (): number { return this.queue.length }

  add (entry: Entry): void {
    this.queue.push(entry)
    if (this.lingerMs === 0 || this.urgent || this.queue.length >= kEagerRows) this.kick()
    else this.linger()
  }

  /** Something waits for the outcomes queued now: write them without lingering. */
  flush (): void {
    if (this.queue.length === 0) return
    this.urgent = true
    this.kick()
  }

  /** Writes everything queued; false if the database stayed unreachable until the deadline. */
  async drain (deadline: number): Promise<boolean> {
    while (this.queue.length > 0 || this.running !== null) {
      if (this.running !== null) { await this.running; continue }
      if (Date.now() >= deadline) return false
      if (this.retryTimer !== null) { clearTimeout(this.retryTimer); this.retryTimer = null }
      this.stopLingering()
      this.running = this.run(false)
      await this.running
      if (this.queue.length > 0) await sleep(Math.min(this.session.backoff.current, Math.max(0, deadline - Date.now())))
    }
    return true
  }

  /** Stops background writes and retries (drain() still works). */
  close (): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.stopLingering()
  }

  private kick (): void {
    if (this.running !== null || this.retryTimer !== null) return
    this.stopLingering()
    this.running = this.run(true)
  }

  private linger (): void {
    if (this.lingerTimer !== null || this.running !== null || this.retryTimer !== null) return
    this.lingerTimer = setTimeout(() => { this.lingerTimer = null; this.kick() }, this.lingerMs)
  }

  private stopLingering (): void {
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer)
    this.lingerTimer = null
  }

  private async run (gather: boolean): Promise<void> {
    // Let every send that finished in this turn of the event loop join the batch.
    if (gather) await new Promise((resolve) => setImmediate(resolve))
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.slice(0, kMaxRowsPerWrite)
        this.urgent = false
        let again: Entry[] = []
        let claimedAgain: Entry[] = []
        try {
          ({ again, claimedAgain } = await this.write(batch))
        } catch (error) {
          if (isTransientDatabaseError(error)) {
            const ms = this.session.backoff.next()
            if (gather) this.retryTimer = setTimeout(() => { this.retryTimer = null; this.kick() }, ms)
            return
          }
          // PostgreSQL refused the statement itself: retrying cannot help. The messages stay
          // claimed and are sent again once their lease ends: a duplicate, never a loss.
          this.log.error({ code: 'HERMES_ERR_DISPATCH_WRITE', err: (error as Error).message, rows: batch.length }, 'dispatch: could not store outcomes; their messages will be retried after the lease')
        }
        this.queue.splice(0, batch.length, ...again)
        this.session.backoff.reset()
        this.onStored(again.length === 0 ? batch : batch.filter((entry) => !again.includes(entry)), claimedAgain)
        // What finished during this write lingers too, unless someone waits for it.
        if (gather && this.lingerMs > 0 && !this.urgent && this.queue.length < kEagerRows) break
      }
    } finally {
      this.running = null
      if (gather && this.queue.length > 0) this.linger()
    }
  }

  /**
   * Stores a batch; returns the entries to write again. A write matches the
   * lease it was built with; if this instance re-claimed the message
   * meanwhile (its lease ran out while the send was in flight, and a claim
   * of ours took it again), the item now carries the newer lease and the
   * write is repeated with it. Left unstored, the message would sit claimed
   * by nobody until that lease ran out, and be sent a second time.
   *
   * Claims run on their own connection, so the claim that took a message
   * again may be committed (and have defeated this write) before its rows
   * reach adopt(), which is what gives the item its new lease. A write that
   * matched nothing therefore waits for the claims in flight before it
   * decides whether the outcome was lost or must be written again.
   *
   * The other order happens too: the outcome is stored (a retry due at
   * once), a claim of ours takes the message again and its rows reach
   * adopt() before this write's answer does. Such an item matched with its
   * old lease and carries a newer one now: it is returned in `claimedAgain`.
   */
  private async write (batch: readonly Entry[]): Promise<{ again: Entry[], claimedAgain: Entry[] }> {
    const outcomes: Outcome[] = []
    const released: Claimed[] = []
    const leases = new Map<Entry, string>()
    for (const entry of batch) {
      const { item, decision } = entry
      leases.set(entry, item.lease)
      if (decision === null) released.push(item)
      else outcomes.push({ id: item.id, lease: item.lease, ...decision })
    }
    const stored = new Set<string>()
    if (outcomes.length > 0) for (const row of (await this.session.query<{ id: string }>(outcomeSql, outcomeParams(outcomes), 'hermes_outcome')).rows) stored.add(row.id)
    if (released.length > 0) {
      for (const row of (await this.session.query<{ id: string }>(releaseSql, [released.map((i) => i.id), released.map((i) => i.lease)], 'hermes_release')).rows) stored.add(row.id)
    }
    const claimedAgain = batch.filter((entry) => entry.item.lease !== leases.get(entry) && stored.has(entry.item.id))
    if (stored.size === batch.length) return { again: [], claimedAgain }
    if (batch.some((entry) => !stored.has(entry.item.id) && entry.item.lease === leases.get(entry))) await this.claimsSettled()
    const again = batch.filter((entry) => !stored.has(entry.item.id) && entry.item.lease !== leases.get(entry))
    const lost = batch.length - stored.size - again.length
    if (lost > 0) {
      // The lease ran out and another instance claimed the message since: its outcome is that instance's now.
      this.log.warn({ code: 'HERMES_ERR_DISPATCH_LEASE_LOST', rows: lost }, 'dispatch: outcomes for messages whose claim had expired were not stored')
    }
    return { again, claimedAgain }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

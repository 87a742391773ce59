import { CreditLedger, type PreclaimChannel, type PreclaimData } from '../preclaim-credit.js'
import type { Preclaimed } from '../messages.js'

/**
 * One transaction's pre-claims (src/preclaim-credit.ts): decides row by row
 * whether a row is inserted claimed, taking its provider's credit the first
 * time that provider comes up, and remembers how much it took, which the
 * writer reports whatever the transaction's fate.
 */
export class PreclaimBatch {
  /** Credit taken, by provider slot. */
  readonly taken = new Map<number, number>()
  private readonly left = new Map<number, number>()
  /** Date.now() before the transaction: the leases count from later than this. */
  private readonly startedAtMs = Date.now()

  constructor (
    private readonly credit: CreditLedger,
    private readonly channels: ReadonlyMap<string, PreclaimChannel>,
    /** The most rows any provider could need in this transaction. */
    private readonly rows: number
  ) {}

  /** The lease to claim a row of this channel with, or undefined: insert it pending. */
  readonly claimMs = (channel: string): number | undefined => {
    const lane = this.channels.get(channel)
    if (lane === undefined) return undefined
    let left = this.left.get(lane.slot)
    if (left === undefined) {
      left = this.credit.take(lane.slot, this.rows)
      this.taken.set(lane.slot, left)
      this.left.set(lane.slot, left)
    }
    if (left === 0) return undefined
    this.left.set(lane.slot, left - 1)
    return lane.leaseMs
  }

  /** What to tell the dispatcher once the transaction is over (rows: the merge's JSON, null if none or rolled back); null if no credit was taken. */
  report (rows: string | null): Preclaimed | null {
    return CreditLedger.report(this.taken, rows, this.startedAtMs)
  }
}

/** The writer's side of pre-claiming: a PreclaimBatch per transaction, none without set-up. */
export class Preclaimer {
  private readonly credit: CreditLedger
  private readonly channels: ReadonlyMap<string, PreclaimChannel>
  private readonly slots: readonly number[]

  constructor (data: PreclaimData) {
    this.credit = new CreditLedger(data.credit)
    this.channels = new Map(Object.entries(data.channels))
    this.slots = [...new Set([...this.channels.values()].map((c) => c.slot))]
  }

  /**
   * A transaction's pre-claims, or undefined when no provider has credit
   * (dispatch is behind, or busy with older work): then no row's channel
   * needs reading at all.
   */
  batch (rows: number): PreclaimBatch | undefined {
    if (this.slots.every((slot) => this.credit.available(slot) === 0)) return undefined
    return new PreclaimBatch(this.credit, this.channels, rows)
  }
}

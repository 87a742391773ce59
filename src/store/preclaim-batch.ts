import { PreclaimCredit, type PreclaimChannel, type PreclaimData } from '../preclaim-credit.js'

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

  constructor (
    private readonly credit: PreclaimCredit,
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

  get tookAny (): boolean {
    for (const n of this.taken.values()) if (n > 0) return true
    return false
  }
}

/** The writer's side of pre-claiming: a PreclaimBatch per transaction, none without set-up. */
export class Preclaimer {
  private readonly credit: PreclaimCredit
  private readonly channels: ReadonlyMap<string, PreclaimChannel>

  constructor (data: PreclaimData) {
    this.credit = new PreclaimCredit(data.credit)
    this.channels = new Map(Object.entries(data.channels))
  }

  batch (rows: number): PreclaimBatch {
    return new PreclaimBatch(this.credit, this.channels, rows)
  }
}

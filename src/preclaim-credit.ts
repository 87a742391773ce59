import type { Preclaimed } from './messages.js'

/**
 * Pre-claims: the writer inserts a new message already claimed for this
 * instance's dispatcher (status 'sending', a lease) when the dispatcher has
 * said it can start it soon, and hands it over after the commit. Such a
 * message needs no claim statement: a claim is an UPDATE of the wide message
 * row (a new row version, five index entries) plus joins to fetch what to
 * send, and it was the largest share of PostgreSQL's CPU per message.
 *
 * How many the writer may claim is the dispatcher's to say, as credit per
 * provider in shared memory: the dispatcher grants what a lane can start
 * within its claim horizon (so pre-claimed messages never sit claimed for
 * long, and memory stays bounded), and only while its last claim for that
 * provider came back short (no older work is due in the database); a claim
 * that comes back full takes the credit back, so new messages do not
 * overtake retries or a backlog. The writer takes credit for
 * a transaction and reports afterwards how much it took and which messages
 * it claimed; until that report the dispatcher counts the credit as
 * outstanding. Only the dispatcher adds credit and only the writer takes it.
 *
 * CreditLedger is the one owner of that accounting: grant, revoke and the
 * outstanding count on the dispatcher's side (src/dispatch/lane-core.ts
 * decides how much), take and report on the writer's
 * (src/store/preclaim-batch.ts), settle when the report arrives.
 */
export class CreditLedger {
  private readonly slots: Int32Array
  /** Dispatcher's side: credit granted per slot and not yet reported taken or revoked. */
  private readonly out: number[]

  /** One slot per provider, in the order of the config's providers. */
  static create (providers: number): CreditLedger {
    return new CreditLedger(new SharedArrayBuffer(Math.max(1, providers) * Int32Array.BYTES_PER_ELEMENT))
  }

  /** Over the buffer both threads share; each thread has its own ledger over it. */
  constructor (readonly buffer: SharedArrayBuffer) {
    this.slots = new Int32Array(buffer)
    this.out = new Array<number>(this.slots.length).fill(0)
  }

  /** Dispatcher: the writer may claim `count` more messages of this provider. */
  grant (slot: number, count: number): void {
    if (count <= 0) return
    Atomics.add(this.slots, slot, count)
    this.out[slot]! += count
  }

  /** Dispatcher: takes back whatever the writer has not taken yet; returns how much that was. */
  revoke (slot: number): number {
    const revoked = Atomics.exchange(this.slots, slot, 0)
    this.out[slot]! -= revoked
    return revoked
  }

  /**
   * Dispatcher: credit granted that is neither revoked nor reported yet:
   * messages that may still arrive claimed without a claim of ours.
   */
  outstanding (slot: number): number {
    return this.out[slot] ?? 0
  }

  /** Dispatcher: the writer's report (its take) arrived; that credit is no longer outstanding. */
  settle (report: Preclaimed): void {
    for (const [slot, count] of report.taken) if (slot >= 0 && slot < this.out.length) this.out[slot]! -= count
  }

  /** Writer: takes up to `most` of this provider's credit; returns how much it got. */
  take (slot: number, most: number): number {
    for (;;) {
      const available = Atomics.load(this.slots, slot)
      const taken = Math.min(available, most)
      if (taken <= 0) return 0
      if (Atomics.compareExchange(this.slots, slot, available, available - taken) === available) return taken
    }
  }

  /** Credit the writer may still take. */
  available (slot: number): number {
    return Atomics.load(this.slots, slot)
  }

  /**
   * Writer: what to tell the dispatcher once a transaction that took credit
   * is over (rows: the merge's PreclaimedRow JSON, null if none or rolled
   * back); null if it took none.
   */
  static report (taken: ReadonlyMap<number, number>, rows: string | null, startedAtMs: number): Preclaimed | null {
    if (![...taken.values()].some((n) => n > 0)) return null
    return { type: 'preclaimed', taken: [...taken], rows, startedAtMs }
  }
}

/**
 * A provider's credit slot: its place among the config's providers. The
 * writer's set-up (src/hermes.ts) and the dispatcher each number the slots,
 * in different threads; both use this, so they cannot disagree. -1: no such
 * provider.
 */
export function creditSlotOf (providers: ReadonlyArray<{ readonly name: string }>, providerName: string): number {
  return providers.findIndex((p) => p.name === providerName)
}

/** What the writer needs to pre-claim a channel's messages: its provider's credit slot and lease. */
export interface PreclaimChannel {
  readonly slot: number
  readonly leaseMs: number
}

/** The writer's pre-claim set-up (absent: it never pre-claims, e.g. without a dispatcher). */
export interface PreclaimData {
  readonly credit: SharedArrayBuffer
  readonly channels: Readonly<Record<string, PreclaimChannel>>
}

/**
 * Party and conversation ids the writer has already seen committed. Ids
 * never change once created (nothing deletes parties or conversations), so
 * a cached id is always valid; with it a row skips every lookup and goes
 * straight from COPY into the message insert. Bounded: past `maxEntries`
 * a map is simply cleared and refilled from the database.
 */
export interface ResolvedIds {
  readonly from_address: string
  readonly to_address: string
  readonly from_id: string
  readonly to_id: string
  readonly conversation_id: string
}

export interface AnnotatedRows {
  readonly rows: Buffer
  /** Rows without a cached conversation id (the merge resolves them in SQL). */
  readonly uncached: number
  /** Rows given a lease (pre-claimed), and rows with attached files (their last column is not `\N`): both need the full insert. */
  readonly claimed: number
  readonly withFiles: number
}

const kTab = 0x09
const kNewline = 0x0a
const kNull = Buffer.from('\t\\N')
const pairKey = (a: string, b: string): string => (a < b ? `${a}\n${b}` : `${b}\n${a}`)

export class IdCache {
  private readonly parties = new Map<string, string>()
  private readonly conversations = new Map<string, string>()
  hits = 0
  misses = 0

  constructor (private readonly maxEntries = 1_000_000) {}

  /**
   * Prefixes each COPY line with `from_id, to_id, conversation_id` (`\N` when
   * unknown) and `claim_ms`: the lease `claimMs` gives for the line's channel
   * when the row is to be inserted pre-claimed (src/preclaim-credit.ts), else
   * `\N`. Column 1 of a line is the channel name and columns 4 and 5 the
   * addresses; validation guarantees they hold no tab or backslash, so the
   * raw text is the value.
   * Works on the bytes: only the two addresses are decoded, and the lines
   * are copied once into the output (decoding whole batches to a string and
   * concatenating costs the writer far more per row).
   */
  annotate (rows: Uint8Array, claimMs?: (channel: string) => number | undefined): AnnotatedRows {
    const input = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength)
    const prefixes: string[] = []
    const ends: number[] = []
    let prefixBytes = 0
    let uncached = 0
    let claimed = 0
    let withFiles = 0
    for (let start = 0; start < input.length;) {
      const t1 = input.indexOf(kTab, start)
      const t2 = input.indexOf(kTab, t1 + 1)
      const t3 = input.indexOf(kTab, t2 + 1)
      const t4 = input.indexOf(kTab, t3 + 1)
      const t5 = input.indexOf(kTab, t4 + 1)
      const from = input.toString('utf8', t3 + 1, t4)
      const to = input.toString('utf8', t4 + 1, t5)
      const conversation = this.conversations.get(pairKey(from, to))
      const fromId = this.parties.get(from)
      const toId = this.parties.get(to)
      const lease = claimMs?.(input.toString('latin1', start, t1))
      if (lease !== undefined) claimed++
      const claim = lease ?? '\\N'
      let prefix: string
      if (conversation === undefined || fromId === undefined || toId === undefined) {
        uncached++
        this.misses++
        prefix = `${fromId ?? '\\N'}\t${toId ?? '\\N'}\t\\N\t${claim}\t`
      } else {
        this.hits++
        prefix = `${fromId}\t${toId}\t${conversation}\t${claim}\t`
      }
      prefixes.push(prefix)
      prefixBytes += prefix.length // ASCII: digits, tabs, \N
      const newline = input.indexOf(kNewline, t5)
      const end = newline < 0 ? input.length : newline
      if (input.compare(kNull, 0, kNull.length, end - kNull.length, end) !== 0) withFiles++
      start = newline < 0 ? input.length : newline + 1
      ends.push(start)
    }
    const out = Buffer.allocUnsafe(input.length + prefixBytes)
    let at = 0
    let start = 0
    for (let line = 0; line < ends.length; line++) {
      at += out.write(prefixes[line]!, at, 'latin1')
      at += input.copy(out, at, start, ends[line])
      start = ends[line]!
    }
    return { rows: out, uncached, claimed, withFiles }
  }

  /** Learns ids resolved by a transaction that has committed. */
  learn (resolved: readonly ResolvedIds[]): void {
    if (this.parties.size + resolved.length * 2 > this.maxEntries) this.parties.clear()
    if (this.conversations.size + resolved.length > this.maxEntries) this.conversations.clear()
    for (const r of resolved) {
      this.parties.set(r.from_address, r.from_id)
      this.parties.set(r.to_address, r.to_id)
      this.conversations.set(pairKey(r.from_address, r.to_address), r.conversation_id)
    }
  }

  get size (): { parties: number, conversations: number } {
    return { parties: this.parties.size, conversations: this.conversations.size }
  }
}

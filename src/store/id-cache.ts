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
}

const kTab = '\t'
const pairKey = (a: string, b: string): string => (a < b ? `${a}\n${b}` : `${b}\n${a}`)

export class IdCache {
  private readonly parties = new Map<string, string>()
  private readonly conversations = new Map<string, string>()
  hits = 0
  misses = 0

  constructor (private readonly maxEntries = 1_000_000) {}

  /**
   * Prefixes each COPY line with `from_id, to_id, conversation_id` (`\N` when
   * unknown). Columns 4 and 5 of a line are the addresses; validation
   * guarantees they hold no tab or backslash, so the raw text is the value.
   */
  annotate (rows: Uint8Array): AnnotatedRows {
    const text = Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength).toString('utf8')
    let out = ''
    let uncached = 0
    let start = 0
    while (start < text.length) {
      const end = text.indexOf('\n', start) + 1
      const line = text.slice(start, end)
      start = end
      const t1 = line.indexOf(kTab)
      const t2 = line.indexOf(kTab, t1 + 1)
      const t3 = line.indexOf(kTab, t2 + 1)
      const t4 = line.indexOf(kTab, t3 + 1)
      const t5 = line.indexOf(kTab, t4 + 1)
      const from = line.slice(t3 + 1, t4)
      const to = line.slice(t4 + 1, t5)
      const conversation = this.conversations.get(pairKey(from, to))
      const fromId = this.parties.get(from)
      const toId = this.parties.get(to)
      if (conversation === undefined || fromId === undefined || toId === undefined) {
        uncached++
        this.misses++
        out += `${fromId ?? '\\N'}\t${toId ?? '\\N'}\t\\N\t${line}`
      } else {
        this.hits++
        out += `${fromId}\t${toId}\t${conversation}\t${line}`
      }
    }
    return { rows: Buffer.from(out, 'utf8'), uncached }
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

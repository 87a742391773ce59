/**
 * The rules (channel secrets and tokens, receipt providers' keys, publicUrl) the process workers verify with, in
 * shared memory, by generation. A reload publishes a new generation; every
 * worker task names the generation it was handed out under, and a worker
 * reads (and caches) that generation's rules, so all the records of a task
 * are verified with one rule set, old or new, never a mix.
 *
 * Two slots: generation g lives in slot g % 2. The main thread publishes
 * g + 1 only once no task of g - 1 is in flight (Feeder.inFlightBefore), so a
 * slot is never overwritten while a task may still read it.
 */
import { deserialize, serialize } from 'node:v8'
import type { ProcessRules } from './types.js'

const kHeaderInts = 4 // per slot: generation, byte length
const kSlotBytesDefault = 1 << 20

export class RulesTooLargeError extends Error {}

export class RulesBoard {
  private readonly header: Int32Array
  private readonly bytes: Uint8Array
  private readonly slotBytes: number
  private cached: { generation: number; rules: ProcessRules } | null = null

  private constructor (readonly buffer: SharedArrayBuffer) {
    this.header = new Int32Array(buffer, 0, kHeaderInts)
    this.slotBytes = (buffer.byteLength - kHeaderInts * 4) / 2
    this.bytes = new Uint8Array(buffer, kHeaderInts * 4)
  }

  /** A board holding `rules` as generation 0. */
  static create (rules: ProcessRules, slotBytes = kSlotBytesDefault): RulesBoard {
    const board = new RulesBoard(new SharedArrayBuffer(kHeaderInts * 4 + 2 * slotBytes))
    board.header[1] = -1 // slot 1 holds no generation yet
    board.publish(0, rules)
    return board
  }

  static attach (buffer: SharedArrayBuffer): RulesBoard {
    return new RulesBoard(buffer)
  }

  /** Throws a RulesTooLargeError when `rules` would not fit in a slot. */
  check (rules: ProcessRules): void {
    this.encode(rules)
  }

  /** Writes `rules` as `generation` into its slot; the caller guarantees no task of generation - 2 is in flight. */
  publish (generation: number, rules: ProcessRules): void {
    const data = this.encode(rules)
    const slot = generation % 2
    this.bytes.set(data, slot * this.slotBytes)
    Atomics.store(this.header, slot * 2 + 1, data.byteLength)
    Atomics.store(this.header, slot * 2, generation) // last: a reader that sees the generation sees its bytes
  }

  private encode (rules: ProcessRules): Buffer {
    const data = serialize(rules)
    if (data.byteLength > this.slotBytes) throw new RulesTooLargeError(`the channel rules take ${data.byteLength} bytes, more than the ${this.slotBytes} bytes reserved for them; restart to apply this configuration`)
    return data
  }

  /** The newest generation on the board. */
  newestGeneration (): number {
    return Math.max(Atomics.load(this.header, 0), Atomics.load(this.header, 2))
  }

  /** The rules of `generation` (cached per thread until a task names another generation). */
  read (generation: number): ProcessRules {
    if (this.cached?.generation === generation) return this.cached.rules
    const slot = generation % 2
    const stored = Atomics.load(this.header, slot * 2)
    if (stored !== generation) throw new Error(`channel rules of generation ${generation} are not on the board (slot holds ${stored})`)
    const length = Atomics.load(this.header, slot * 2 + 1)
    const start = slot * this.slotBytes
    const rules = deserialize(Buffer.from(this.bytes.slice(start, start + length))) as ProcessRules
    this.cached = { generation, rules }
    return rules
  }
}

import type { Piscina } from 'piscina'
import type { ProcessResult, ProcessTask } from '../messages.js'
import type { IngressRing } from './ring-buffer.js'

interface Range {
  readonly end: number
  readonly count: number
  readonly generation: number
  done: boolean
}

/** A body too large for the ring's record budget, waiting for the range that holds its record. */
interface OutOfBandBody {
  readonly seq: number
  readonly body: SharedArrayBuffer
}

export interface FeederOptions {
  readonly ring: IngressRing
  readonly pool: Piscina<ProcessTask, ProcessResult>
  /** Most records in one worker task. */
  readonly taskRecords: number
  /** Most tasks in flight at once (a little more than the worker count keeps every worker busy). */
  readonly maxTasks: number
  /** Whether downstream (the writer) can take more rows now; when not, records wait in the ring. */
  readonly downstreamHasRoom: () => boolean
  readonly onResult: (result: ProcessResult) => void
  /** A range failed twice (a worker bug or crash): these slots get an internal error. */
  readonly onFailure: (slots: number[], error: unknown) => void
  /** A range failed once and is being processed again (its worker died or threw). */
  readonly onRetry?: (error: unknown) => void
  /** The channel rules' generation new ranges are verified with (src/process/rules-board.ts); 0 when absent. */
  readonly generation?: () => number
}

/**
 * Hands ranges of ring records to the worker pool and releases ring space
 * in write order once each range is processed. It never copies a record:
 * workers read them straight from the shared ring.
 */
export class Feeder {
  private dispatchOffset: number
  private undispatched = 0
  private inFlight = 0
  private readonly ranges: Range[] = []
  private scheduled = false
  private readonly outOfBand: OutOfBandBody[] = []
  private writtenSeq = 0 // records ever written, as the feeder counts them
  private dispatchedSeq = 0 // records ever handed to a worker
  private outOfBandInFlight = 0

  constructor (private readonly options: FeederOptions) {
    this.dispatchOffset = options.ring.writeOffset
  }

  get tasksInFlight (): number { return this.inFlight }
  get recordsWaiting (): number { return this.undispatched }
  get idle (): boolean { return this.undispatched === 0 && this.inFlight === 0 }
  /** Bytes of out-of-band bodies written and not yet processed. */
  get outOfBandBytes (): number { return this.outOfBandInFlight }

  /** Whether a range handed out under a rules generation older than `generation` is still being processed. */
  inFlightBefore (generation: number): boolean {
    return this.ranges.some((range) => !range.done && range.generation < generation)
  }

  /**
   * Called after each successful ring write; dispatch happens once per event-loop turn, so ranges fill up under load.
   * `body` is the record's body when it travels outside the ring: it goes to the worker with the record's range.
   */
  written (body?: SharedArrayBuffer): void {
    if (body !== undefined) {
      this.outOfBand.push({ seq: this.writtenSeq, body })
      this.outOfBandInFlight += body.byteLength
    }
    this.writtenSeq++
    this.undispatched++
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => { this.scheduled = false; this.pump() })
    }
  }

  pump (): void {
    const { ring, taskRecords, maxTasks } = this.options
    while (this.undispatched > 0 && this.inFlight < maxTasks && this.options.downstreamHasRoom()) {
      const count = Math.min(this.undispatched, taskRecords)
      const offset = this.dispatchOffset
      const end = ring.skip(offset, count)
      this.dispatchOffset = end
      this.undispatched -= count
      const generation = this.options.generation?.() ?? 0
      const range: Range = { end, count, generation, done: false }
      this.ranges.push(range)
      this.dispatchedSeq += count
      const bodies: SharedArrayBuffer[] = []
      while (this.outOfBand.length > 0 && this.outOfBand[0]!.seq < this.dispatchedSeq) bodies.push(this.outOfBand.shift()!.body)
      // Shared, not transferred: a range that fails is run again with the same bodies.
      this.run(bodies.length === 0 ? { offset, count, generation } : { offset, count, generation, bodies }, range, true)
    }
  }

  private run (task: ProcessTask, range: Range, retry: boolean): void {
    this.inFlight++
    this.options.pool.run(task).then(
      (result) => {
        this.inFlight--
        this.forget(task)
        this.finish(range)
        this.options.onResult(result)
        this.pump()
      },
      (error: unknown) => {
        this.inFlight--
        if (retry) {
          this.options.onRetry?.(error)
          this.run(task, range, false) // a crashed worker is replaced by Piscina; try the range once more
          return
        }
        const slots: number[] = []
        let offset = task.offset
        for (let i = 0; i < task.count; i++) {
          const record = this.options.ring.read(offset)
          slots.push(record.slot)
          offset = record.nextOffset
        }
        this.forget(task)
        this.finish(range)
        this.options.onFailure(slots, error)
        this.pump()
      })
  }

  private forget (task: ProcessTask): void {
    for (const body of task.bodies ?? []) this.outOfBandInFlight -= body.byteLength
  }

  /** Releases ring space up to the oldest range still being processed. */
  private finish (range: Range): void {
    range.done = true
    let records = 0
    let end = -1
    while (this.ranges.length > 0 && this.ranges[0]!.done) {
      const first = this.ranges.shift()!
      records += first.count
      end = first.end
    }
    if (records > 0) this.options.ring.release(end, records)
  }
}

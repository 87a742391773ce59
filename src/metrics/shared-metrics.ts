/**
 * Counters, gauges and histograms that live in one SharedArrayBuffer so that
 * every thread updates them in place and a scrape reads them without a
 * message round trip. Every thread builds the same MetricsLayout from the
 * same definitions, so a metric's slots are at the same offsets everywhere.
 *
 * Values are integers in a BigInt64Array, updated with Atomics.add (several
 * worker threads share slots): durations are stored in microseconds and
 * converted at scrape time.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram'

export interface MetricDefinition {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  /** Label names and, for each, every value it can take (labels stay low-cardinality by construction). */
  readonly labels?: ReadonlyArray<readonly [string, readonly string[]]>
  /** Histogram bucket upper bounds, in the metric's unit (seconds, rows, bytes). */
  readonly buckets?: readonly number[]
  /** Stored value = observed × scale (1e6 for seconds → microseconds). */
  readonly scale?: number
}

interface Placed {
  readonly definition: MetricDefinition
  readonly offset: number
  /** Slots per label combination: 1, or buckets + count + sum for histograms. */
  readonly width: number
  readonly combinations: readonly (readonly string[])[]
  readonly index: ReadonlyMap<string, number>
}

function combinations (labels: MetricDefinition['labels']): string[][] {
  let out: string[][] = [[]]
  for (const [, values] of labels ?? []) out = out.flatMap((prefix) => values.map((v) => [...prefix, v]))
  return out
}

export class MetricsLayout {
  readonly placed: ReadonlyMap<string, Placed>
  readonly slots: number

  constructor (definitions: readonly MetricDefinition[]) {
    const placed = new Map<string, Placed>()
    let offset = 0
    for (const definition of definitions) {
      const combos = combinations(definition.labels)
      const width = definition.type === 'histogram' ? definition.buckets!.length + 2 : 1
      placed.set(definition.name, {
        definition,
        offset,
        width,
        combinations: combos,
        index: new Map(combos.map((c, i) => [c.join('\u0000'), i]))
      })
      offset += combos.length * width
    }
    this.placed = placed
    this.slots = offset
  }
}

/** Where one metric-and-labels lives in the block. */
export interface Slot {
  readonly at: number
  readonly scale: number
  readonly buckets: readonly number[]
}

/** One thread's handle on the shared block. */
export class SharedMetrics {
  readonly values: BigInt64Array

  constructor (readonly layout: MetricsLayout, buffer?: SharedArrayBuffer) {
    this.values = new BigInt64Array(buffer ?? new SharedArrayBuffer(layout.slots * 8))
  }

  get buffer (): SharedArrayBuffer { return this.values.buffer as SharedArrayBuffer }

  /** Resolves a metric and label set to its slot once; hot paths keep the result. */
  slot (name: string, labels: readonly string[] = []): Slot {
    const p = this.layout.placed.get(name)
    if (p === undefined) throw new RangeError(`unknown metric ${name}`)
    const i = labels.length === 0 ? 0 : p.index.get(labels.join('\u0000'))
    if (i === undefined) throw new RangeError(`metric ${name} has no label set ${labels.join(',')}`)
    return { at: p.offset + i * p.width, scale: p.definition.scale ?? 1, buckets: p.definition.buckets ?? [] }
  }

  inc (name: string, labels: readonly string[] = [], by = 1): void {
    this.add(this.slot(name, labels), by)
  }

  set (name: string, labels: readonly string[], value: number): void {
    const s = this.slot(name, labels)
    Atomics.store(this.values, s.at, BigInt(Math.round(value * s.scale)))
  }

  observe (name: string, labels: readonly string[], value: number): void {
    this.record(this.slot(name, labels), value)
  }

  /** Adds to a counter slot; `by` 1 (the common case) allocates no BigInt. */
  add (slot: Slot, by = 1): void {
    Atomics.add(this.values, slot.at, by === 1 && slot.scale === 1 ? 1n : BigInt(Math.round(by * slot.scale)))
  }

  /** Records one histogram observation. */
  record (slot: Slot, value: number): void {
    const { buckets, at } = slot
    let b = 0
    while (b < buckets.length && value > buckets[b]!) b++
    // Store the bucket the value falls in; cumulative counts are built at scrape.
    if (b < buckets.length) Atomics.add(this.values, at + b, 1n)
    Atomics.add(this.values, at + buckets.length, 1n)
    Atomics.add(this.values, at + buckets.length + 1, BigInt(Math.round(value * slot.scale)))
  }

  /** A value as it will be exported (unscaled). */
  read (name: string, labels: readonly string[] = []): number {
    const s = this.slot(name, labels)
    return Number(Atomics.load(this.values, s.at)) / s.scale
  }
}

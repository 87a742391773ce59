/** A batch of COPY text lines and the front-end slots waiting on them, one slot per line. */
export interface RowBatch {
  readonly slots: Uint32Array
  readonly rows: Uint8Array
  /** Messages (the default) or delivery receipts; a transaction holds batches of one kind. */
  readonly kind?: 'messages' | 'receipts'
}

export function rowCount (batches: readonly RowBatch[]): number {
  let n = 0
  for (const b of batches) n += b.slots.length
  return n
}

/** Splits `batch` after its first `rows` lines (views, no copy). */
function splitAt (batch: RowBatch, rows: number): [RowBatch, RowBatch] {
  let end = 0
  for (let i = 0; i < rows; i++) end = batch.rows.indexOf(0x0a, end) + 1
  const kind = batch.kind === undefined ? {} : { kind: batch.kind }
  return [
    { slots: batch.slots.subarray(0, rows), rows: batch.rows.subarray(0, end), ...kind },
    { slots: batch.slots.subarray(rows), rows: batch.rows.subarray(end), ...kind }
  ]
}

/** Splits batches into two runs of (nearly) equal row counts, cutting one batch at a line if need be. */
export function halve (batches: readonly RowBatch[]): [RowBatch[], RowBatch[]] {
  const half = Math.floor(rowCount(batches) / 2)
  const left: RowBatch[] = []
  const right: RowBatch[] = []
  let seen = 0
  for (const batch of batches) {
    const n = batch.slots.length
    if (seen + n <= half) left.push(batch)
    else if (seen >= half) right.push(batch)
    else {
      const [a, b] = splitAt(batch, half - seen)
      left.push(a)
      right.push(b)
    }
    seen += n
  }
  return [left, right]
}

export function concatSlots (batches: readonly RowBatch[]): Uint32Array {
  const out = new Uint32Array(rowCount(batches))
  let at = 0
  for (const b of batches) { out.set(b.slots, at); at += b.slots.length }
  return out
}

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

/** Splits a batch into one batch per row (lines end in '\n'; COPY escapes inner newlines). */
export function splitRows (batch: RowBatch): RowBatch[] {
  const out: RowBatch[] = []
  let start = 0
  for (let i = 0; i < batch.slots.length; i++) {
    const end = batch.rows.indexOf(0x0a, start) + 1
    out.push({ slots: batch.slots.subarray(i, i + 1), rows: batch.rows.subarray(start, end), ...(batch.kind === undefined ? {} : { kind: batch.kind }) })
    start = end
  }
  return out
}

export function concatSlots (batches: readonly RowBatch[]): Uint32Array {
  const out = new Uint32Array(rowCount(batches))
  let at = 0
  for (const b of batches) { out.set(b.slots, at); at += b.slots.length }
  return out
}

/**
 * A tiny SharedArrayBuffer of Int32 flags and gauges that every thread can
 * read without a message round trip: the front end checks it on each
 * request, the feeder uses it for back-pressure, /readyz reports it.
 */
export const kDatabaseUp = 0 // 1 while the writer's last contact with PostgreSQL succeeded
export const kWriterReady = 1 // 1 once the writer has connected and prepared its staging table
export const kWriterQueuedRows = 2 // rows handed to the writer and not yet committed
export const kDraining = 3 // 1 once shutdown began
export const kStatusFieldCount = 4

export function createStatusBlock (): Int32Array {
  return new Int32Array(new SharedArrayBuffer(kStatusFieldCount * Int32Array.BYTES_PER_ELEMENT))
}

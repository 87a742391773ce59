/**
 * Shared by the writer and the dispatcher. Tells a failed batch that may succeed later (PostgreSQL unreachable,
 * restarting, out of connections: keep the rows and retry) from one whose
 * rows PostgreSQL refuses (a data or constraint error: retrying the same rows
 * can never succeed, so the writer isolates the bad row instead).
 */
export function isTransientDatabaseError (error: unknown): boolean {
  if (!(error instanceof Error)) return true
  if (error instanceof TypeError || error instanceof RangeError) return false // a bug of ours: retrying the same call fails the same way
  const code = (error as { code?: unknown }).code
  if (typeof code !== 'string' || code.length !== 5) return true // socket errors: ECONNREFUSED, ECONNRESET, 'Connection terminated'…
  const sqlClass = code.slice(0, 2)
  return sqlClass === '08' || // connection exception
    sqlClass === '53' || // insufficient resources
    sqlClass === '57' || // operator intervention (admin shutdown, crash recovery)
    sqlClass === '58' || // system error
    code === '40001' || code === '40P01' // serialization failure, deadlock: retry as is
}

/**
 * Whether PostgreSQL itself refused what was sent (an SQLSTATE that retrying
 * cannot change). Only then may the writer reject rows: anything else, a
 * lost socket surfacing as a TypeError inside the driver included, keeps the
 * rows and retries.
 */
export function isRefusedByDatabase (error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return error instanceof Error && typeof code === 'string' && code.length === 5 && !isTransientDatabaseError(error)
}

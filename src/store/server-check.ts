/**
 * What Hermes checks of its database server before anything else: a version
 * it supports, and a connection that is its own for the session's life.
 */
import type pg from 'pg'
import { DatabaseServerError } from '../errors.js'
import { openSession, sessionProfiles } from './session.js'

export const kMinServerVersion = 140000
export const kSupportedVersions = '14–18'

/** Refuses a server older than PostgreSQL 14 with the version found and the minimum. */
export async function checkServerVersion (client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ num: string, version: string }>(
    "SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version")
  const num = Number(rows[0]!.num)
  if (num < kMinServerVersion) {
    throw new DatabaseServerError('HERMES_ERR_DATABASE_VERSION',
      `PostgreSQL ${rows[0]!.version} found; Hermes needs PostgreSQL 14 or newer (supported: ${kSupportedVersions})`)
  }
  return num
}

/**
 * Refuses a pooler that hands a client's statements to whichever server
 * connection is free (PgBouncer's pool_mode = transaction or statement, and
 * poolers like it): Hermes keeps prepared statements, session settings and a
 * temporary staging table on each connection. The probe: while a second
 * connection holds a transaction open, the first asks again for its server
 * process; a session of its own answers with the same pid every time, a
 * pooled one does not (or the second connection was handed the first's).
 */
export async function checkSessionPooling (url: string, client: pg.Client): Promise<void> {
  const pid = async (c: pg.Client): Promise<number> => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const first = await pid(client)
  const other = await openSession(url, sessionProfiles.setup)
  other.on('error', () => {})
  try {
    await other.query('BEGIN')
    const held = await pid(other)
    const again = await pid(client)
    await other.query('COMMIT')
    if (held === first || again !== first) {
      throw new DatabaseServerError('HERMES_ERR_DATABASE_POOLING',
        'the database connection is pooled per transaction or per statement (PgBouncer pool_mode = transaction or statement): ' +
        'Hermes keeps prepared statements, session settings and a temporary table on each connection. ' +
        'Use pool_mode = session for Hermes\' database, or connect to PostgreSQL directly')
    }
  } finally {
    await other.end().catch(() => {})
  }
}

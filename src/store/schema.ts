import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import type { HermesConfig } from '../config.js'

const schemaFile = new URL('../../../schema.sql', import.meta.url)
// Serialises schema application across instances starting at the same time.
const kSchemaLock = 0x4865726d // "Herm"
// A deadlock with a running instance's transaction aborts the setup's; it is safe to run again.
const kDeadlockAttempts = 5

/**
 * Applies schema.sql and upserts the configured providers and channels. The
 * schema's statements run only when the database does not hold this
 * schema.sql's fingerprint: an up-to-date database takes no table lock, so
 * an instance starting beside a running fleet neither waits for nor
 * deadlocks with its transactions.
 */
export async function prepareDatabase (client: pg.Client, config: HermesConfig): Promise<void> {
  const sql = await readFile(schemaFile, 'utf8')
  const fingerprint = createHash('sha256').update(sql).digest('hex')
  for (let attempt = 1; ; attempt++) {
    try {
      await applyOnce(client, config, sql, fingerprint)
      return
    } catch (error) {
      if ((error as { code?: unknown }).code !== '40P01' || attempt >= kDeadlockAttempts) throw error
      await sleep(50 * attempt + Math.random() * 100)
    }
  }
}

async function applyOnce (client: pg.Client, config: HermesConfig, sql: string, fingerprint: string): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [kSchemaLock])
    if (await appliedFingerprint(client) !== fingerprint) {
      await client.query(sql)
      await client.query(
        `INSERT INTO hermes_schema (id, fingerprint) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, applied_at = now()`,
        [fingerprint])
    }
    for (const provider of Object.values(config.providers)) {
      await client.query(
        `INSERT INTO provider (name, kind) VALUES ($1, $2)
         ON CONFLICT ON CONSTRAINT provider_name_key DO UPDATE SET kind = EXCLUDED.kind
         WHERE provider.kind IS DISTINCT FROM EXCLUDED.kind`,
        [provider.name, provider.kind])
    }
    for (const channel of Object.values(config.channels)) {
      await client.query(
        `INSERT INTO channel (name, type, provider_id)
         SELECT $1, $2, id FROM provider WHERE name = $3
         ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, provider_id = EXCLUDED.provider_id
         WHERE (channel.type, channel.provider_id) IS DISTINCT FROM (EXCLUDED.type, EXCLUDED.provider_id)`,
        [channel.name, channel.type, channel.provider])
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}

/** The fingerprint of the schema.sql last applied, or null (a new database, or one from before fingerprints). */
async function appliedFingerprint (client: pg.Client): Promise<string | null> {
  const { rows: [table] } = await client.query<{ present: boolean }>("SELECT to_regclass('hermes_schema') IS NOT NULL AS present")
  if (table?.present !== true) return null
  const { rows: [row] } = await client.query<{ fingerprint: string }>('SELECT fingerprint FROM hermes_schema WHERE id = 1')
  return row?.fingerprint ?? null
}

import { readFile } from 'node:fs/promises'
import type pg from 'pg'
import type { HermesConfig } from '../config.js'

const schemaFile = new URL('../../../schema.sql', import.meta.url)
// Serialises schema application across instances starting at the same time.
const kSchemaLock = 0x4865726d // "Herm"

/** Applies schema.sql (idempotent) and upserts the configured providers and channels. */
export async function prepareDatabase (client: pg.Client, config: HermesConfig): Promise<void> {
  const sql = await readFile(schemaFile, 'utf8')
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [kSchemaLock])
    await client.query(sql)
    for (const provider of Object.values(config.providers)) {
      await client.query(
        `INSERT INTO provider (name, kind) VALUES ($1, $2)
         ON CONFLICT ON CONSTRAINT provider_name_key DO UPDATE SET kind = EXCLUDED.kind`,
        [provider.name, provider.kind])
    }
    for (const channel of Object.values(config.channels)) {
      await client.query(
        `INSERT INTO channel (name, type, provider_id)
         SELECT $1, $2, id FROM provider WHERE name = $3
         ON CONFLICT (name) DO UPDATE SET type = EXCLUDED.type, provider_id = EXCLUDED.provider_id`,
        [channel.name, channel.type, channel.provider])
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}

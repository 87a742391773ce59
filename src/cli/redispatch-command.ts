import pg from 'pg'
import type { HermesConfig } from '../config.js'
import type { Logger } from '../log.js'
import { redispatch } from '../dispatch/redispatch.js'
import { embeddedUrl, startEmbeddedPostgres } from '../store/embedded-postgres.js'
import { openSession, sessionProfiles } from '../store/session.js'

/** The redispatch command's options, for node:util parseArgs (src/main.ts). */
export const redispatchOptions = {
  status: { type: 'string' },
  provider: { type: 'string' }
} as const

export const redispatchHelp = `Usage: hermes [--config FILE] redispatch --status failed [--provider NAME]

Puts dead letters (messages whose dispatch failed for good) back in the
dispatch queue: attempts reset, due now. A running Hermes picks them up at its
next poll; without one they wait for the next start.

Options:
  --status failed     which messages (only "failed": replaying other states would deliver twice)
  --provider NAME     only this provider's messages (default: every provider)
  -c, --config FILE   the configuration naming the database
  -h, --help          this help
`

/** `hermes redispatch --status failed [--provider NAME]`: puts dead letters back in the dispatch queue. A TypeError means a bad option. */
export async function redispatchCommand (options: { status?: string | undefined, provider?: string | undefined }, config: HermesConfig, log: Logger): Promise<number> {
  const status = options.status ?? 'failed'
  const provider = options.provider
  if (status !== 'failed') throw new TypeError(`--status must be "failed" (replaying other states would deliver twice), got ${JSON.stringify(status)}`)
  const { url, stop } = await database(config, log)
  try {
    const client = await openSession(url, sessionProfiles.redispatch)
    client.on('error', () => {}) // the query in flight reports it
    try {
      const count = await redispatch(client, provider === undefined ? { status } : { status, provider })
      log.info({ count, provider: provider ?? 'all' }, 'messages re-queued for dispatch')
      return count
    } finally {
      await client.end().catch(() => {})
    }
  } finally {
    await stop()
  }
}

/** The configured database; for the embedded one, the running instance's server if there is one, else a short-lived one. */
async function database (config: HermesConfig, log: Logger): Promise<{ url: string, stop: () => Promise<void> }> {
  if (config.database.url !== null) return { url: config.database.url, stop: async () => {} }
  const url = embeddedUrl(config.database.embeddedPort)
  const probe = new pg.Client({ connectionString: url })
  try {
    await probe.connect()
    await probe.end()
    return { url, stop: async () => {} }
  } catch {
    const db = await startEmbeddedPostgres({ dataDir: config.database.embeddedDir, port: config.database.embeddedPort, log })
    return { url: db.url, stop: db.stop }
  }
}

import pg from 'pg'
import type { HermesConfig } from '../config.js'
import type { Logger } from '../log.js'
import { redispatch } from '../dispatch/redispatch.js'
import { embeddedUrl, startEmbeddedPostgres } from '../store/embedded-postgres.js'
import { openSession, sessionProfiles } from '../store/session.js'

/** `hermes redispatch --status failed [--provider NAME]`: puts dead letters back in the dispatch queue. */
export async function redispatchCommand (args: readonly string[], config: HermesConfig, log: Logger): Promise<number> {
  const status = flag(args, '--status') ?? 'failed'
  const provider = flag(args, '--provider')
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

function flag (args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name)
  if (i >= 0) return args[i + 1]
  const inline = args.find((a) => a.startsWith(`${name}=`))
  return inline?.slice(name.length + 1)
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

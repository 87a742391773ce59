/**
 * The operator's dead-letter replay (`hermes redispatch --status failed
 * [--provider X]`): failed messages go back to 'pending' with a fresh retry
 * budget, due now. A running dispatcher picks them up at its next poll.
 * Only 'failed' is accepted: replaying 'sent' would deliver twice.
 */
import { HermesError } from '../errors.js'
import type { Queryable } from './dispatch-sql.js'

export interface RedispatchOptions {
  readonly status: 'failed'
  /** Only this provider's messages (by provider name); all providers when absent. */
  readonly provider?: string
}

export class UnknownProviderError extends HermesError {
  constructor (name: string) {
    super('HERMES_ERR_UNKNOWN_PROVIDER', `no provider named ${JSON.stringify(name)} in the database`, 400)
    this.name = 'UnknownProviderError'
  }
}

const redispatchSql = `
UPDATE message m
   SET dispatch_status = 'pending', dispatch_attempts = 0, next_attempt_at = now(),
       claimed_until = NULL, last_error = NULL
 WHERE m.dispatch_status = $1
   AND ($2::text IS NULL OR m.channel_id IN (
         SELECT c.id FROM channel c JOIN provider p ON p.id = c.provider_id WHERE p.name = $2))`

/** Returns how many messages were put back. */
export async function redispatch (client: Queryable, options: RedispatchOptions): Promise<number> {
  if (options.status !== 'failed') throw new TypeError(`redispatch only replays status "failed", not ${JSON.stringify(options.status)}`)
  const provider = options.provider ?? null
  if (provider !== null) {
    const known = await client.query('SELECT 1 FROM provider WHERE name = $1', [provider])
    if (known.rowCount === 0) throw new UnknownProviderError(provider)
  }
  const result = await client.query(redispatchSql, [options.status, provider])
  return result.rowCount ?? 0
}

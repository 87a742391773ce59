/**
 * The dispatcher's SQL: claim due work, write outcomes back, release claims.
 *
 * A claim sets status 'sending' and a lease (claimed_until), and moves the
 * message's next_attempt_at to the lease's end: that is when it is due
 * again if no outcome is stored (a crash), and it keeps messages in flight
 * out of the front of the due index. With them left at their old due time,
 * every claim stepped over all of them, one heap visit each to read
 * claimed_until (Rows Removed by Filter: 2000 for a 64-row claim with 2000
 * in flight). The lease is also the claim's fencing token: every write-back matches
 * `claimed_until = <the lease we got>`, so an instance whose lease expired
 * (and whose message another instance re-claimed) cannot overwrite the newer
 * claim's outcome. It travels as text, because a JS Date would cut
 * PostgreSQL's microseconds off and never match.
 *
 * All times are the database's now(), never this process's clock, so
 * instances with skewed clocks agree on what is due.
 */
import type pg from 'pg'

/**
 * Claims up to $2 due messages of the channels $1 with a lease of $3 ms.
 * The due rows are picked in a MATERIALIZED CTE (not `id IN (SELECT … LIMIT)`),
 * which PostgreSQL could re-run inside a join and so claim more than the limit.
 *
 * Every other lookup is written so that it can only be an index probe: the
 * update finds its rows by `id = ANY (ARRAY(…))` and the addresses come from
 * scalar subqueries. As joins, the planner hashed them: for a claim of 1000
 * rows (and for any claim under the prepared statement's generic plan, which
 * cannot know the limit) it read the whole message table and the whole party
 * table per claim. Measured on 62k messages with 12k due: generic plan 16.7
 * -> 2.8 ms for 64 rows and 38.8 -> 27.7 ms for 1000; custom plan for 1000
 * rows 78 -> 30 ms; and the seq scans grow with the table, the probes do not.
 */
export const claimSql = `
WITH due AS MATERIALIZED (
  SELECT id FROM message
   WHERE dispatch_status IN ('pending', 'sending')
     AND next_attempt_at <= now()
     AND (claimed_until IS NULL OR claimed_until < now())
     AND channel_id = ANY($1::smallint[])
   ORDER BY next_attempt_at
   LIMIT $2
   FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE message m
     SET dispatch_status = 'sending', claimed_until = now() + $3::float8 * interval '1 millisecond',
         next_attempt_at = now() + $3::float8 * interval '1 millisecond'
   WHERE m.id = ANY (ARRAY(SELECT id FROM due))
  RETURNING m.id, m.channel_id, m.external_id, m.sender_id, m.recipient_id, m.body, m.sent_at,
            m.dispatch_attempts, m.claimed_until, m.received_at
)
SELECT c.id::text AS id, c.channel_id, c.external_id,
       (SELECT p.address FROM party p WHERE p.id = c.sender_id) AS sender,
       (SELECT p.address FROM party p WHERE p.id = c.recipient_id) AS recipient,
       c.body, floor(extract(epoch FROM c.sent_at) * 1000)::float8 AS sent_at_ms,
       floor(extract(epoch FROM c.received_at) * 1000)::float8 AS received_at_ms, c.dispatch_attempts AS attempts, c.claimed_until::text AS lease,
       coalesce((SELECT array_agg(a.url ORDER BY a.position) FROM attachment a WHERE a.message_id = c.id), '{}') AS attachments
  FROM claimed c
 ORDER BY c.id`

/**
 * Settings of the connection that runs the claims (db-session.ts,
 * openClaimSession). The due rows must come out of the due index in
 * next_attempt_at order, read only as far as the claim needs. On a message
 * table PostgreSQL has not analysed yet (a new database that takes a
 * backlog before autovacuum first gets to it), the planner guessed that few
 * rows were due and gathered all of them by bitmap scans, then sorted them:
 * 35,000 rows read for a claim of 64 (test/dispatch-stale-plans.test.ts),
 * 50-120 ms a claim with 30,000 due, which a rate-limited provider's small
 * and frequent claims paid over and over. With sorts disabled that plan
 * costs more than any, and the ordered index read is the one left;
 * the claim's other sorts (its rows by id, attachments by position) have no
 * alternative and stay. The lookups by id are unaffected
 * (test/dispatch-plans.test.ts runs on this session too).
 */
export const claimSessionSettings: readonly string[] = ['SET enable_sort = off']

/**
 * Settings of both dispatch connections (claims and outcome write-backs):
 * their statements find message rows by id, and must do so by the primary
 * key whatever the planner believes of the table. On a new database, before
 * PostgreSQL has analysed message, the claim's generic plan updated its rows
 * through a sequential scan of message, and outcome writes were planned as
 * a hash join over one (auto_explain, during a sustained run); such a plan
 * is kept as the table grows until an ANALYZE comes (autovacuum, itself
 * starved on a busy machine), so every statement read every message ever
 * stored (test/dispatch-fresh-plans.test.ts). With sequential scans priced
 * out the probe by id is the plan left.
 */
export const dispatchSessionSettings: readonly string[] = ['SET enable_seqscan = off']

export interface ClaimedRow {
  readonly id: string
  readonly channel_id: number
  readonly external_id: string
  readonly sender: string
  readonly recipient: string
  readonly body: string
  /** Epoch milliseconds (whole: a JS Date's precision), read as numbers: parsing timestamps as text cost the dispatch thread more than its rows' other columns. */
  readonly sent_at_ms: number | null
  readonly received_at_ms: number
  readonly attempts: number
  readonly lease: string
  readonly attachments: string[]
}

/**
 * One outcome per row, all in one statement. `delay_ms` is the wait before
 * the next attempt of a row going back to 'pending' (counted from the
 * database's now()); `counted` is 1 for an attempt that counts towards
 * maxAttempts and 0 for one that does not (a provider's 429).
 *
 * The rows are found by `id = ANY($1)`, the primary key's own condition,
 * and matched by lease alone: claimed_until is only ever set together with
 * 'sending' (claims, pre-claimed inserts) and cleared by whatever moves a
 * message out of it (outcomes, releases, redispatch), so the lease implies
 * the status. Asked for as `dispatch_status = 'sending'`, the planner could
 * read every undelivered message through the due index (whose predicate
 * that condition implies) and hash them, which it did on a table it had not
 * analysed yet (test/dispatch-fresh-plans.test.ts).
 */
export const outcomeSql = `
UPDATE message m
   SET dispatch_status = v.status,
       dispatch_attempts = m.dispatch_attempts + v.counted,
       next_attempt_at = CASE WHEN v.status = 'pending' THEN now() + v.delay_ms * interval '1 millisecond' ELSE m.next_attempt_at END,
       claimed_until = NULL,
       provider_message_id = CASE WHEN v.status = 'sent' THEN v.provider_message_id ELSE m.provider_message_id END,
       last_error = v.last_error,
       dispatched_at = CASE WHEN v.status = 'sent' THEN now() ELSE m.dispatched_at END
  FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::int[], $5::float8[], $6::text[], $7::text[])
       AS v(id, lease, status, counted, delay_ms, provider_message_id, last_error)
 WHERE m.id = ANY ($1::bigint[]) AND m.id = v.id AND m.claimed_until = v.lease
RETURNING m.id::text`

/** Gives claimed but unsent messages back, due at once, untouched otherwise (no attempt counted); found as outcomes are. */
export const releaseSql = `
UPDATE message m
   SET dispatch_status = 'pending', claimed_until = NULL, next_attempt_at = now()
  FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, lease)
 WHERE m.id = ANY ($1::bigint[]) AND m.id = v.id AND m.claimed_until = v.lease
RETURNING m.id::text`

export const channelIdsSql = 'SELECT id, name FROM channel WHERE name = ANY($1::text[])'

export type Status = 'pending' | 'sent' | 'failed'

/** One row's outcome, as the write-back stores it. */
export interface Outcome {
  readonly id: string
  readonly lease: string
  readonly status: Status
  readonly counted: 0 | 1
  readonly delayMs: number
  readonly providerMessageId: string | null
  readonly lastError: string | null
}

export function outcomeParams (outcomes: readonly Outcome[]): unknown[] {
  return [
    outcomes.map((o) => o.id),
    outcomes.map((o) => o.lease),
    outcomes.map((o) => o.status),
    outcomes.map((o) => o.counted),
    outcomes.map((o) => o.delayMs),
    outcomes.map((o) => o.providerMessageId),
    outcomes.map((o) => o.lastError)
  ]
}

export type Queryable = Pick<pg.ClientBase, 'query'>

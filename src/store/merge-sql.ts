import { stagingColumns } from '../staging-row.js'

/**
 * The writer's SQL. A batch is COPYed into a per-connection temporary
 * staging table (each line prefixed by the writer with the party and
 * conversation ids it has cached, or NULL, and with the lease of a row to be
 * inserted pre-claimed for this instance's dispatcher, or NULL), then merged
 * in the same transaction:
 *  - resolve (only when some row is not cached): upsert the unknown parties,
 *    fill in their ids, upsert the ordered conversation pairs, fill in the
 *    conversation ids, and return them so the writer can cache them;
 *  - insert: messages deduplicated on (channel, external id), attachments;
 *    a pre-claimed message is inserted 'sending' with its lease, and what
 *    the dispatcher needs to send it is returned (src/preclaim-credit.ts).
 * Ids are looked up with scalar subqueries on purpose: the staging table
 * has no statistics, and a join lets the planner hash the whole party table
 * for every batch; a subquery is one index probe per row, and a missing id
 * becomes a NOT NULL error (the batch is retried and the row isolated),
 * never a silently dropped row. The statements are separate (not one CTE
 * chain) because under READ COMMITTED each takes a fresh snapshot, so a
 * party or conversation another instance committed a moment ago is visible
 * to the next one. Rows are inserted in key order so concurrent writers
 * lock in one order.
 */
export const createStagingTable = `
CREATE TEMP TABLE IF NOT EXISTS hermes_staging (
  from_id          bigint,
  to_id            bigint,
  conversation_id  bigint,
  claim_ms         integer,
  channel          text NOT NULL,
  external_id      text NOT NULL,
  address_kind     text NOT NULL,
  from_address     text NOT NULL,
  to_address       text NOT NULL,
  body             text NOT NULL,
  sent_at          timestamptz,
  received_at      timestamptz NOT NULL,
  attachments      text[] NOT NULL,
  subject          text,
  files            text
) ON COMMIT PRESERVE ROWS`

/**
 * How the staging table is emptied. Each transaction ends with a DELETE of
 * its rows, or with a TRUNCATE (which cuts the file back) once this many
 * bytes were staged since the last cut, the transaction's own included.
 *
 * `ON COMMIT DELETE ROWS` truncated the file at every commit, and on ext4 a
 * truncate is a journalled metadata change that waits behind the WAL fsyncs
 * of every other session: sampled in pg_stat_activity during durable-half,
 * the writer's backend spent 24% of its busy time in IO/DataFileTruncate.
 * A DELETE only marks rows in the session's own buffers; scans then skip
 * the dead rows, and pruning frees their pages (the table has no index), so
 * the bound keeps both the scans and the file small.
 */
export const kStagingBytesPerTruncate = 1024 * 1024

const copyIntoStaging = `COPY hermes_staging (from_id, to_id, conversation_id, claim_ms, ${stagingColumns.join(', ')}) FROM STDIN`

/** Upserts the parties of rows not cached, in address order (so concurrent writers lock in one order). */
const resolveParties = `
INSERT INTO party (phone, email)
SELECT CASE WHEN kind = 'phone' THEN address END, CASE WHEN kind = 'email' THEN address END
FROM (
  SELECT address_kind AS kind, from_address AS address FROM hermes_staging WHERE from_id IS NULL
  UNION
  SELECT address_kind, to_address FROM hermes_staging WHERE to_id IS NULL
) AS addresses
ORDER BY address
ON CONFLICT (address) DO NOTHING`

/** Fills in the party ids of rows not cached. */
const resolvePartyIds = `
UPDATE hermes_staging s
SET from_id = coalesce(s.from_id, (SELECT id FROM party WHERE address = s.from_address)),
    to_id = coalesce(s.to_id, (SELECT id FROM party WHERE address = s.to_address))
WHERE s.conversation_id IS NULL`

/** Upserts the ordered conversation pairs of rows not cached. */
const resolveConversations = `
INSERT INTO conversation (party_a_id, party_b_id)
SELECT DISTINCT least(from_id, to_id), greatest(from_id, to_id)
FROM hermes_staging
WHERE conversation_id IS NULL
ORDER BY 1, 2
ON CONFLICT (party_a_id, party_b_id) DO NOTHING`

/** Fills in the conversation ids of rows not cached and returns the ids learned, for the cache. */
const resolveConversationIds = `
UPDATE hermes_staging s
SET conversation_id = (SELECT c.id FROM conversation c
                        WHERE c.party_a_id = least(s.from_id, s.to_id) AND c.party_b_id = greatest(s.from_id, s.to_id))
WHERE s.conversation_id IS NULL
RETURNING s.from_address, s.to_address, s.from_id::text, s.to_id::text, s.conversation_id::text`

/** The batch (deduplicated), its messages inserted, and their attachments: shared by both inserts below. */
const insertCtes = `
WITH batch AS (
  -- the same (channel, id) twice in one batch is one message
  -- LEFT JOIN: an unknown channel becomes a NULL channel_id, a NOT NULL error (isolated, refused), never a dropped row
  SELECT DISTINCT ON (s.channel, s.external_id) s.*, c.id AS channel_id
  FROM hermes_staging s LEFT JOIN channel c ON c.name = s.channel
  ORDER BY s.channel, s.external_id
), inserted AS (
  INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, sent_at, received_at,
                       dispatch_status, claimed_until, next_attempt_at, subject)
  SELECT channel_id, external_id, conversation_id, from_id, to_id, body, sent_at, received_at,
         CASE WHEN claim_ms IS NULL THEN 'pending' ELSE 'sending' END, now() + claim_ms * interval '1 millisecond',
         now() + coalesce(claim_ms, 0) * interval '1 millisecond', subject
  FROM batch
  ORDER BY channel_id, external_id
  ON CONFLICT (channel_id, external_id) DO NOTHING
  RETURNING id, channel_id, external_id, claimed_until
), attachments AS (
  INSERT INTO attachment (message_id, position, url)
  SELECT i.id, u.position, u.url
  FROM inserted i
  JOIN batch b ON b.channel_id = i.channel_id AND b.external_id = i.external_id
  CROSS JOIN LATERAL unnest(b.attachments) WITH ORDINALITY AS u(url, position)
  RETURNING 1
)`

const byChannel = `(SELECT coalesce(json_object_agg(c.name, x.n), '{}')
          FROM (SELECT channel_id, count(*) AS n FROM inserted GROUP BY channel_id) x JOIN channel c ON c.id = x.channel_id
       ) AS by_channel`

/**
 * Inserts the batch's messages and attachments; returns one row of counts
 * and the pre-claimed messages as JSON text, an array of PreclaimedRow
 * objects (src/messages.ts; the writer passes it on to the dispatch thread
 * unparsed). A duplicate is not inserted, so it is never
 * claimed. The lease is counted from now(), the transaction's start, and a
 * pre-claimed message is next due at its end, as a claimed one is
 * (src/dispatch/dispatch-sql.ts).
 */
const insertMessages = `${insertCtes}, files AS (
  -- an email's attached files (format sendgrid-parse): JSON with hex SHA-256 and base64 bytes
  INSERT INTO attachment_file (message_id, position, filename, content_type, size, sha256, content)
  SELECT i.id, f.position, f.value->>'filename', f.value->>'type', (f.value->>'size')::int,
         decode(f.value->>'sha256', 'hex'), decode(f.value->>'data', 'base64')
  FROM inserted i
  JOIN batch b ON b.channel_id = i.channel_id AND b.external_id = i.external_id AND b.files IS NOT NULL
  CROSS JOIN LATERAL json_array_elements(b.files::json) WITH ORDINALITY AS f(value, position)
  RETURNING 1
)
SELECT (SELECT count(*) FROM inserted)::int AS inserted,
       (SELECT count(*) FROM attachments)::int + (SELECT count(*) FROM files)::int AS attachments,
       (SELECT count(*) FROM inserted WHERE claimed_until IS NOT NULL)::int AS claimed,
       ${byChannel},
       -- one PreclaimedRow (src/messages.ts) per pre-claimed message, by name
       (SELECT json_agg(json_build_object('id', i.id::text, 'channel_id', i.channel_id, 'external_id', i.external_id,
                                          'sender', b.from_address, 'recipient', b.to_address, 'body', b.body,
                                          'sent_at', b.sent_at, 'received_at', b.received_at,
                                          'attachments', b.attachments, 'lease', i.claimed_until::text))::text
          FROM inserted i JOIN batch b ON b.channel_id = i.channel_id AND b.external_id = i.external_id
         WHERE i.claimed_until IS NOT NULL
       ) AS preclaimed`

/**
 * The same insert for a batch in which no row is pre-claimed and none has
 * files, the common case: without the files insert and the pre-claim JSON,
 * whose executor set-up is paid per batch whatever its rows (about a tenth
 * of the backend's CPU for a 30-row batch, bench/README.md "Ingest CPU per
 * message"). Its result has the same columns.
 */
const insertPlainMessages = `${insertCtes}
SELECT (SELECT count(*) FROM inserted)::int AS inserted,
       (SELECT count(*) FROM attachments)::int AS attachments,
       0 AS claimed,
       ${byChannel},
       NULL::text AS preclaimed`

/**
 * The merge's statements, prepared once per connection (after the staging
 * table exists): a batch of a few dozen rows spent about a third of its
 * insert in planning (0.43 of 1.4 ms, EXPLAIN ANALYZE), and planning them all
 * afresh for every batch was the writer backend's largest fixed cost. Their
 * plans are generic (they take no parameters) and do not depend on the batch
 * size: index probes into party, conversation and message, and joins within
 * the batch.
 */
const statements = [
  ['hermes_resolve_parties', resolveParties],
  ['hermes_resolve_party_ids', resolvePartyIds],
  ['hermes_resolve_conversations', resolveConversations],
  ['hermes_resolve_conversation_ids', resolveConversationIds],
  ['hermes_insert_messages', insertMessages],
  ['hermes_insert_plain_messages', insertPlainMessages]
] as const

const resolveStatements = ['hermes_resolve_parties', 'hermes_resolve_party_ids', 'hermes_resolve_conversations', 'hermes_resolve_conversation_ids']

export const prepareMerge = statements.map(([name, sql]) => `PREPARE ${name} AS ${sql.trim()}`).join(';\n')

/**
 * Set on the writer's session before anything is prepared. A prepared
 * statement without parameters keeps the one generic plan made at its first
 * EXECUTE until the statistics of a table it reads change (an ANALYZE). On a
 * fresh database that first EXECUTE sees party and conversation nearly empty,
 * so the planner picks a sequential scan for the id lookups, and every later
 * batch then scans the whole table once per row, until autovacuum gets round
 * to an ANALYZE, with the writer backend using a whole core (bench/README.md,
 * "Design measurements"). With sequential scans priced out, the lookups are index probes
 * whatever the statistics say. Nothing the writer runs needs a sequential
 * scan of a real table; the staging table has no index, so it is still
 * scanned (the only way left to the planner).
 *
 * This is safe here because every lookup is an equality on a unique index,
 * so the index path left is a probe of one entry (test/writer-plans.test.ts
 * checks that too). It is not a general cure for stale plans: on dispatch's
 * claim, which joins ranges of rows, the same setting made the planner read
 * whole indexes instead, and a backlog took 5x longer to claim.
 */
export const writerSessionSettings = 'SET enable_seqscan = off'

/** A batch's transaction as one query string, and where its results are. */
export interface WriterTransaction {
  readonly sql: string
  /** Index of the result holding the ids learned (with resolve), or null. */
  readonly idsAt: number | null
  /** Index of the result holding the counts (the insert's). */
  readonly countsAt: number
}

/**
 * A batch's whole transaction as one query string: BEGIN, the COPY into
 * staging, the merge (resolve only when some row is not cached; the plain
 * insert when no row is pre-claimed or has files), the
 * emptying of the staging table (a TRUNCATE when it is due to be cut back,
 * else a DELETE) and COMMIT, sent with the COPY data in one round trip
 * (src/store/copy-transaction.ts). Results come back one per statement.
 */
export function writerTransaction (options: { resolve: boolean, truncate: boolean, plain: boolean }): WriterTransaction {
  const insert = options.plain ? 'hermes_insert_plain_messages' : 'hermes_insert_messages'
  const executes = options.resolve ? [...resolveStatements, insert] : [insert]
  const head = ['BEGIN', copyIntoStaging]
  const empty = options.truncate ? 'TRUNCATE hermes_staging' : 'DELETE FROM hermes_staging'
  const sql = [...head, ...executes.map((name) => `EXECUTE ${name}`), empty, 'COMMIT'].join('; ')
  const countsAt = head.length + executes.length - 1 // the insert is the last EXECUTE
  return { sql, idsAt: options.resolve ? countsAt - 1 : null, countsAt }
}

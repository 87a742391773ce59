import { stagingColumns } from '../staging-row.js'

/**
 * The writer's SQL. A batch is COPYed into a per-connection temporary
 * staging table, then merged by three set-based statements in the same
 * transaction. Ids are looked up with scalar subqueries on purpose: the
 * staging table has no statistics, and a join lets the planner hash the
 * whole party table for every batch; a subquery is one index probe per row,
 * and a missing id becomes a NOT NULL error (the batch is retried and the
 * row isolated), never a silently dropped row.
 * They are separate statements (not one CTE chain) on purpose:
 * under READ COMMITTED each statement takes a fresh snapshot, so a party or
 * conversation that another instance committed a moment ago is visible to
 * the next statement and no message can be lost to a join miss.
 * Rows are inserted in key order so concurrent writers lock in one order.
 */
export const createStagingTable = `
CREATE TEMP TABLE IF NOT EXISTS hermes_staging (
  channel       text NOT NULL,
  external_id   text NOT NULL,
  address_kind  text NOT NULL,
  from_address  text NOT NULL,
  to_address    text NOT NULL,
  body          text NOT NULL,
  sent_at       timestamptz,
  received_at   timestamptz NOT NULL,
  attachments   text[] NOT NULL
) ON COMMIT DELETE ROWS`

export const copyIntoStaging = `COPY hermes_staging (${stagingColumns.join(', ')}) FROM STDIN`

export const mergeStaging = `
INSERT INTO party (phone, email)
SELECT CASE WHEN kind = 'phone' THEN address END, CASE WHEN kind = 'email' THEN address END
FROM (
  SELECT address_kind AS kind, from_address AS address FROM hermes_staging
  UNION
  SELECT address_kind, to_address FROM hermes_staging
) AS addresses
ORDER BY address
ON CONFLICT (address) DO NOTHING;

INSERT INTO conversation (party_a_id, party_b_id)
SELECT DISTINCT least(f, t), greatest(f, t)
FROM (
  SELECT (SELECT id FROM party WHERE address = s.from_address) AS f,
         (SELECT id FROM party WHERE address = s.to_address) AS t
  FROM hermes_staging s
) AS pairs
ORDER BY 1, 2
ON CONFLICT (party_a_id, party_b_id) DO NOTHING;

WITH batch AS (
  -- the same (channel, id) twice in one batch is one message
  SELECT DISTINCT ON (channel, external_id) * FROM hermes_staging ORDER BY channel, external_id
), resolved AS (
  SELECT b.*,
         (SELECT id FROM channel WHERE name = b.channel) AS channel_id,
         (SELECT id FROM party WHERE address = b.from_address) AS sender_id,
         (SELECT id FROM party WHERE address = b.to_address) AS recipient_id
  FROM batch b
), inserted AS (
  INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, sent_at, received_at)
  SELECT r.channel_id, r.external_id,
         (SELECT c.id FROM conversation c
           WHERE c.party_a_id = least(r.sender_id, r.recipient_id) AND c.party_b_id = greatest(r.sender_id, r.recipient_id)),
         r.sender_id, r.recipient_id, r.body, r.sent_at, r.received_at
  FROM resolved r
  ORDER BY r.channel_id, r.external_id
  ON CONFLICT (channel_id, external_id) DO NOTHING
  RETURNING id, channel_id, external_id
), attachments AS (
  INSERT INTO attachment (message_id, position, url)
  SELECT i.id, u.position, u.url
  FROM inserted i
  JOIN resolved r ON r.channel_id = i.channel_id AND r.external_id = i.external_id
  CROSS JOIN LATERAL unnest(r.attachments) WITH ORDINALITY AS u(url, position)
  RETURNING 1
)
SELECT (SELECT count(*) FROM inserted)::int AS inserted,
       (SELECT count(*) FROM attachments)::int AS attachments,
       (SELECT count(*) FROM batch)::int AS distinct_rows;

COMMIT`

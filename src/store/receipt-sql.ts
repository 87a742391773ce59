/**
 * The writer's SQL for delivery receipts. A batch holds one staging line per
 * receipt request: the provider's name, the receipt time and its events as
 * JSON (src/process/receipts.ts, ReceiptEvent). One transaction COPYs them,
 * stores each event once (ON CONFLICT on the provider's event identity),
 * finds each event's message (Hermes' own id from SendGrid's custom_args
 * first, else the provider message id, among that provider's channels) and
 * moves delivery_status forward only (hermes_delivery_rank, schema.sql).
 *
 * An event whose message is not found is stored with message_id NULL: the
 * provider can call back before Hermes has stored the provider message id
 * of its own send. The adoption sweep links such events to their message
 * once the id is there and applies their status then; it runs while any
 * wait (src/store/receipt-sweep.ts).
 */
export const createReceiptStagingTable = `
CREATE TEMP TABLE IF NOT EXISTS hermes_receipt_staging (
  provider     text NOT NULL,
  received_at  timestamptz NOT NULL,
  events       text NOT NULL
) ON COMMIT PRESERVE ROWS`

/** Moves delivery_status forward for the best new status per message in `changes` (message_id, status, at). */
const applyStatuses = (changes: string): string => `
best AS (
  SELECT DISTINCT ON (message_id) message_id, status, at
  FROM ${changes}
  WHERE message_id IS NOT NULL AND status IS NOT NULL
  ORDER BY message_id, hermes_delivery_rank(status) DESC, at
), moved AS (
  UPDATE message m
     SET delivery_status = b.status, delivery_updated_at = now()
    FROM best b
   WHERE m.id = b.message_id
     AND hermes_delivery_rank(m.delivery_status) < 9
     AND hermes_delivery_rank(b.status) > hermes_delivery_rank(m.delivery_status)
  RETURNING b.status, extract(epoch FROM b.at - m.dispatched_at)::float8 AS seconds
)`

const delivered = `(SELECT coalesce(json_agg(seconds), '[]') FROM moved WHERE status = 'delivered' AND seconds IS NOT NULL)::text AS delivered`

const mergeReceipts = `
WITH ev AS (
  -- LEFT JOIN: an unknown provider is a NOT NULL error (the row is isolated and refused), never a dropped event
  SELECT p.id AS provider_id, s.received_at, e.value AS e
  FROM hermes_receipt_staging s
  LEFT JOIN provider p ON p.name = s.provider
  CROSS JOIN LATERAL jsonb_array_elements(s.events::jsonb) AS e(value)
), keyed AS (
  SELECT DISTINCT ON (provider_id, e->>'key') provider_id, received_at, e,
         coalesce(
           (SELECT m.id FROM message m JOIN channel c ON c.id = m.channel_id
             WHERE m.id = (e->>'hmid')::bigint AND c.provider_id = ev.provider_id),
           (SELECT m.id FROM message m JOIN channel c ON c.id = m.channel_id
             WHERE m.provider_message_id = e->>'pmid' AND c.provider_id = ev.provider_id
             ORDER BY m.id DESC LIMIT 1)
         ) AS message_id
  FROM ev
  ORDER BY provider_id, e->>'key'
), inserted AS (
  INSERT INTO delivery_event (provider_id, event_key, message_id, provider_message_id, event, status, error, occurred_at, received_at, payload)
  SELECT provider_id, e->>'key', message_id, e->>'pmid', e->>'event', e->>'status', e->>'error',
         (e->>'at')::timestamptz, received_at, coalesce(e->'payload', '{}'::jsonb)
  FROM keyed
  ORDER BY provider_id, e->>'key'
  ON CONFLICT ON CONSTRAINT delivery_event_provider_key DO NOTHING
  RETURNING provider_id, message_id, provider_message_id, event, status, coalesce(occurred_at, received_at) AS at
), ${applyStatuses('inserted')}
SELECT (SELECT count(*) FROM ev)::int AS events,
       (SELECT count(*) FROM inserted)::int AS inserted,
       (SELECT count(*) FROM inserted WHERE message_id IS NULL AND provider_message_id IS NOT NULL)::int AS waiting,
       (SELECT coalesce(json_agg(json_build_array(p.name, x.status, x.event, x.n)), '[]')
          FROM (SELECT provider_id, status, event, count(*)::int AS n FROM inserted GROUP BY 1, 2, 3) x
          JOIN provider p ON p.id = x.provider_id)::text AS counts,
       ${delivered}`

/** Links waiting events to their message once its provider message id is stored, and applies their status. */
export const adoptWaitingEvents = `
WITH adopted AS (
  UPDATE delivery_event e
     SET message_id = m.id
    FROM message m JOIN channel c ON c.id = m.channel_id
   WHERE e.message_id IS NULL AND e.provider_message_id IS NOT NULL
     AND m.provider_message_id = e.provider_message_id AND c.provider_id = e.provider_id
  RETURNING e.message_id, e.status, coalesce(e.occurred_at, e.received_at) AS at
), ${applyStatuses('adopted')}
SELECT (SELECT count(*) FROM adopted)::int AS adopted,
       -- the statement's snapshot: still counts the rows adopted above
       (SELECT count(*) FROM delivery_event WHERE message_id IS NULL AND provider_message_id IS NOT NULL)::int AS waiting,
       ${delivered}`

export const prepareReceiptMerge = `PREPARE hermes_merge_receipts AS ${mergeReceipts.trim()}`

/** One round trip: BEGIN, the COPY, the merge, emptying the staging table, COMMIT; the merge's result is statement 2. */
export const receiptTransaction = {
  sql: ['BEGIN', 'COPY hermes_receipt_staging (provider, received_at, events) FROM STDIN', 'EXECUTE hermes_merge_receipts', 'DELETE FROM hermes_receipt_staging', 'COMMIT'].join('; '),
  countsAt: 2
} as const

export interface ReceiptCounts {
  readonly events: number
  readonly inserted: number
  readonly waiting: number
  /** [provider, status, event, count] per kind of new event. */
  readonly counts: string
  /** Seconds from the provider accepting each newly delivered message to its delivered event (JSON array). */
  readonly delivered: string
}

/**
 * The statements of one retention batch. A batch walks the primary key from
 * where the last one stopped (message ids grow with commit order, and so,
 * nearly, does received_at), so no index on received_at is needed and no
 * batch rescans rows an earlier one already looked at.
 */

/** Serialises sweeps across the fleet: only the instance holding this session lock sweeps. */
export const kRetentionLock = 0x48726574 // "Hret"

/**
 * The next `$2` rows after id `$1`: those received before `$3` whose
 * dispatch has ended are locked for deletion. Returns them and how far the
 * scan got; `old` counts scanned rows older than the cutoff (none: the walk
 * has passed the cutoff and the sweep ends).
 */
export const scanBatchSql = `
WITH scan AS (
  SELECT id, received_at, dispatch_status FROM message WHERE id > $1 ORDER BY id LIMIT $2
), doomed AS (
  SELECT m.id FROM message m JOIN scan s ON s.id = m.id
   WHERE s.received_at < $3 AND s.dispatch_status IN ('sent', 'failed')
   FOR UPDATE OF m SKIP LOCKED
)
SELECT (SELECT max(id) FROM scan)::text AS last_id,
       (SELECT count(*) FROM scan)::int AS scanned,
       (SELECT count(*) FROM scan WHERE received_at < $3)::int AS old,
       coalesce((SELECT array_agg(id) FROM doomed), '{}')::bigint[] AS ids`

/**
 * Deletes the locked rows; the status is checked again, so a message a
 * redispatch made pending in the meantime stays. Attachments go with their
 * message (ON DELETE CASCADE).
 */
export const deleteMessagesSql = `
DELETE FROM message WHERE id = ANY($1::bigint[]) AND dispatch_status IN ('sent', 'failed')`

/**
 * Delivery receipts, when the table exists (it belongs to the receipts
 * feature): removed first, whether or not its foreign key cascades.
 */
export const receiptsTableSql = `
SELECT EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = 'delivery_event' AND column_name = 'message_id') AS present`
export const deleteReceiptsSql = 'DELETE FROM delivery_event WHERE message_id = ANY($1::bigint[])'

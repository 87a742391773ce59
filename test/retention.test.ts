// Retention deletes messages whose dispatch ended more than retention.days after receipt, with their attachments and receipts, in batches, one instance at a time; everything else stays.
import t from 'tap'
import pg from 'pg'
import { dispatchFixture } from '../src/harness/fake-provider.js'
import { RetentionSweeper } from '../src/fleet/retention.js'
import { kRetentionLock } from '../src/fleet/retention-sql.js'
import { resolveConfig } from '../src/config.js'
import { ConfigError } from '../src/errors.js'
import { createLogger } from '../src/log.js'

const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'mock' } },
  providers: { mock: { kind: 'mock' } }
})
const log = createLogger('silent')
const day = 86_400_000

/** Sets status and received_at (days ago) of these messages. */
async function age (ids: string[], status: string, daysAgo: number): Promise<void> {
  await fx.db.query(`UPDATE message SET dispatch_status = $2, received_at = now() - make_interval(days => $3) WHERE id = ANY($1::bigint[])`, [ids, status, daysAgo])
}

const sweeper = (options: Partial<ConstructorParameters<typeof RetentionSweeper>[0]> = {}): RetentionSweeper => {
  const s = new RetentionSweeper({ databaseUrl: fx.db.url, days: 30, intervalMs: 60_000, firstSweepMs: 60_000, batchRows: 7, log, ...options })
  t.teardown(() => s.stop())
  return s
}

t.test('retention.days is a positive number, and absent means keep forever', async (t) => {
  const base = { channels: { sms: { provider: 'mock', secrets: ['s'] } }, providers: { mock: { kind: 'mock' } } }
  t.equal(resolveConfig(base, {}).retention.days, null)
  t.equal(resolveConfig({ ...base, retention: { days: 0.5 } }, {}).retention.days, 0.5)
  const problemsOf = (raw: unknown): readonly string[] => {
    try { resolveConfig(raw, {}) } catch (error) { if (error instanceof ConfigError) return error.problems; throw error }
    return []
  }
  for (const days of [0, -1, '30', true]) {
    t.strictSame(problemsOf({ ...base, retention: { days } }), ['retention.days must be a positive number'], `days ${JSON.stringify(days)}`)
  }
  t.strictSame(problemsOf({ ...base, retention: { batchRows: 0 } }), ['retention.batchRows must be an integer from 1 to 100000'])
  t.strictSame(problemsOf({ ...base, fleet: { heartbeatMs: 1000, deadAfterMs: 1500 } }), ['fleet.deadAfterMs must be at least 2 × fleet.heartbeatMs (2000)'])
})

t.test('a sweep deletes ended old messages with their attachments and receipts, and nothing else', async (t) => {
  const attachments = ['https://example.com/a.png', 'https://example.com/b.png']
  const oldSent = await fx.insert('sms', 20, { attachments })
  const oldFailed = await fx.insert('sms', 5)
  const oldPending = await fx.insert('sms', 4)
  const newSent = await fx.insert('sms', 6, { attachments })
  await age(oldSent, 'sent', 40)
  await age(oldFailed, 'failed', 31)
  await age(oldPending, 'pending', 40)
  await age(newSent, 'sent', 29)
  // Delivery receipts of the sent messages (schema.sql's delivery_event).
  await fx.db.query(`INSERT INTO delivery_event (provider_id, event_key, message_id, event, status, received_at, payload)
    SELECT (SELECT id FROM provider ORDER BY id LIMIT 1), 'SM' || id || ':delivered', id, 'delivered', 'delivered', now(), '{}'::jsonb
      FROM unnest($1::bigint[]) AS id`, [[...oldSent, ...newSent]])
  const before = await fx.db.query<{ parties: number; conversations: number }>('SELECT (SELECT count(*) FROM party)::int AS parties, (SELECT count(*) FROM conversation)::int AS conversations')

  let counted = 0
  const report = await sweeper({ onDeleted: (n) => { counted += n } }).sweep()
  t.ok(report.swept, 'the sweep ran')
  t.equal(report.deleted, 25, 'the 20 sent and 5 failed messages older than 30 days')
  t.equal(counted, 25, 'and reported them as they went')
  t.ok(report.batches >= 4, `in batches of 7 rows scanned (${report.batches})`)

  const left = await fx.db.query<{ id: string }>('SELECT id::text FROM message ORDER BY id')
  t.strictSame(left.rows.map((r) => r.id), [...oldPending, ...newSent], 'pending and recent messages stay')
  const att = await fx.db.query<{ n: number }>('SELECT count(*)::int AS n FROM attachment WHERE message_id = ANY($1::bigint[])', [oldSent])
  t.equal(att.rows[0]!.n, 0, 'the deleted messages lost their attachments')
  const kept = await fx.db.query<{ n: number }>('SELECT count(*)::int AS n FROM attachment WHERE message_id = ANY($1::bigint[])', [newSent])
  t.equal(kept.rows[0]!.n, 12, 'the kept ones did not')
  const events = await fx.db.query<{ n: number }>('SELECT count(*)::int AS n FROM delivery_event')
  t.equal(events.rows[0]!.n, 6, 'receipts of deleted messages are gone, the others stay')
  const after = await fx.db.query<{ parties: number; conversations: number }>('SELECT (SELECT count(*) FROM party)::int AS parties, (SELECT count(*) FROM conversation)::int AS conversations')
  t.strictSame(after.rows[0], before.rows[0], 'parties and conversations stay')

  // The same rows, seen from a clock 2 days later: the 29-day-old messages are now past 30 days.
  const later = await sweeper({ now: () => Date.now() + 2 * day }).sweep()
  t.equal(later.deleted, 6, 'the cutoff follows the clock')
})

t.test('only one instance sweeps at a time', async (t) => {
  const ids = await fx.insert('sms', 3)
  await age(ids, 'sent', 100)
  const holder = new pg.Client({ connectionString: fx.db.url })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('SELECT pg_advisory_lock($1)', [kRetentionLock])
  const blocked = await sweeper().sweep()
  t.equal(blocked.swept, false, 'another session holds the retention lock: nothing is done')
  t.equal((await fx.rows(ids)).size, 3)
  await holder.query('SELECT pg_advisory_unlock($1)', [kRetentionLock])
  const report = await sweeper().sweep()
  t.equal(report.deleted, 3, 'once it is free, the sweep runs')
})

t.test('sweeps run by themselves: first after firstSweepMs, then every intervalMs', async (t) => {
  const first = await fx.insert('sms', 2)
  await age(first, 'sent', 100)
  let deleted = 0
  const s = sweeper({ firstSweepMs: 50, intervalMs: 200, onDeleted: (n) => { deleted += n } })
  s.start()
  const deadline = Date.now() + 10_000
  while (deleted < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(deleted, 2, 'the first sweep deleted the old messages')
  const second = await fx.insert('sms', 3)
  await age(second, 'failed', 100)
  while (deleted < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(deleted, 5, 'a later sweep deleted the ones that aged since')
  await s.stop()
})

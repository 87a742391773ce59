// On a new database the dispatch statements' prepared plans are made while message holds a few rows and
// PostgreSQL has not analysed it yet; such a plan is kept as the table grows (until an ANALYZE). Made that
// way, the outcome write hashed a sequential scan of message: every write read every message ever stored.
// Both dispatch sessions' generic plans must find message rows by id, however small the table looked.
import t, { type Test } from 'tap'
import { claimSql, outcomeSql, releaseSql } from '../src/dispatch/dispatch-sql.js'
import { openClaimSession, openWriteSession, type DbSession } from '../src/dispatch/db-session.js'
import { createLogger } from '../src/log.js'
import { dispatchFixture } from '../src/harness/fake-provider.js'

const fx = await dispatchFixture(t, { channels: { sms: { provider: 'mock' } }, providers: { mock: { kind: 'mock' } } })
await fx.insert('sms', 300) // a few hundred rows, never analysed: a new installation's first seconds
await fx.db.query("UPDATE message SET dispatch_status = 'sending', claimed_until = now() + interval '1 minute' WHERE id % 2 = 0") // half of them in flight
const { rows: [analysed] } = await fx.db.query("SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL AS done FROM pg_stat_user_tables WHERE relname = 'message'")
const { rows: [channel] } = await fx.db.query("SELECT id FROM channel WHERE name = 'sms'")
const log = createLogger('silent')

/** The generic plan of `sql` on `session` (PREPARE + force_generic_plan: what a prepared statement settles on). */
async function genericPlan (session: DbSession, sql: string, args: string): Promise<string> {
  await session.query('SET plan_cache_mode = force_generic_plan')
  await session.query(`PREPARE hermes_fresh_probe AS ${sql}`)
  try {
    const { rows } = await session.query(`EXPLAIN (COSTS OFF) EXECUTE hermes_fresh_probe(${args})`)
    return rows.map((r) => r['QUERY PLAN'] as string).join('\n')
  } finally {
    await session.query('DEALLOCATE hermes_fresh_probe')
    await session.query('RESET plan_cache_mode')
  }
}

function assertProbes (t: Test, plan: string): void {
  const reads = plan.split('\n').filter((line) => /Seq Scan on message\b/.test(line)).map((line) => line.trim())
  t.same(reads, [], reads.length === 0 ? 'no whole-table read of message' : `whole-table reads in the plan:\n${plan}`)
}

/** A write-back finds its rows through the primary key only: not by reading the due index (every undelivered message) or any other. */
function assertByPrimaryKey (t: Test, plan: string): void {
  assertProbes(t, plan)
  const others = plan.split('\n').filter((line) => /(Index|Index Only|Bitmap Index) Scan (Backward )?on message_(?!pkey)\w+/.test(line)).map((line) => line.trim())
  t.same(others, [], others.length === 0 ? 'message rows found by primary key' : `other indexes read:\n${plan}`)
}

t.test('the table is as a new installation has it: not analysed yet', async (t) => {
  t.equal(analysed['done'], false)
})

/** The plan PostgreSQL makes for `sql` with these values (a custom plan: a prepared statement's first executions). */
async function customPlan (session: DbSession, sql: string, params: unknown[]): Promise<string> {
  const { rows } = await session.query(`EXPLAIN (COSTS OFF) ${sql}`, params)
  return rows.map((r) => r['QUERY PLAN'] as string).join('\n')
}

t.test('the outcome write and the release, on the write-back session, probe message by id', async (t) => {
  const session = openWriteSession(fx.db.url, log)
  t.teardown(() => session.close())
  const n = 64
  const ids = Array.from({ length: n }, (_, i) => String(i + 1))
  const leases = ids.map(() => '2026-01-01 00:00:00+00')
  const outcome = [ids, leases, ids.map(() => 'sent'), ids.map(() => 1), ids.map(() => 0), ids.map((id) => `SM${id}`), ids.map(() => null)]
  assertByPrimaryKey(t, await customPlan(session, outcomeSql, outcome))
  assertByPrimaryKey(t, await customPlan(session, releaseSql, [ids, leases]))
  assertByPrimaryKey(t, await genericPlan(session, outcomeSql, "'{1,2}', '{2026-01-01 00:00:00+00,2026-01-01 00:00:00+00}', '{sent,sent}', '{1,1}', '{0,0}', '{SM1,SM2}', '{NULL,NULL}'"))
  assertByPrimaryKey(t, await genericPlan(session, releaseSql, "'{1,2}', '{2026-01-01 00:00:00+00,2026-01-01 00:00:00+00}'"))
})

t.test('the claim, on the claim session, probes message by id', async (t) => {
  const session = openClaimSession(fx.db.url, log)
  t.teardown(() => session.close())
  assertProbes(t, await genericPlan(session, claimSql, `'{${Number(channel['id'])}}', 64, 60000`))
})

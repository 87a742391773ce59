// Dispatch claims look messages and parties up by id. Written as joins, PostgreSQL hashed them:
// every claim of a large batch, and every claim under the prepared statement's generic plan (which
// cannot know the limit), read the whole message and party tables, a cost that grows with
// everything ever stored. The plans are checked here on a table shaped like a running system's:
// most messages delivered, a backlog due.
import t, { type Test } from 'tap'
import { claimSql } from '../src/dispatch/dispatch-sql.js'
import { openClaimSession } from '../src/dispatch/db-session.js'
import { createLogger } from '../src/log.js'
import { dispatchFixture } from '../src/harness/fake-provider.js'

const fx = await dispatchFixture(t, { channels: { sms: { provider: 'mock' } }, providers: { mock: { kind: 'mock' } } })
for (let i = 0; i < 4; i++) await fx.insert('sms', 10_000)
await fx.db.query("UPDATE message SET dispatch_status = 'sent'")
await fx.insert('sms', 10_000)
await fx.db.query('VACUUM ANALYZE message, party')
const { rows: [channel] } = await fx.db.query("SELECT id FROM channel WHERE name = 'sms'")
// Claims run on this session, with its planner settings (dispatch-sql.ts, claimSessionSettings).
const session = openClaimSession(fx.db.url, createLogger('silent'))
t.teardown(() => session.close())

function assertProbes (t: Test, plan: string): void {
  const reads = plan.split('\n').filter((line) => /Seq Scan on (message|party)\b/.test(line)).map((line) => line.trim())
  t.same(reads, [], reads.length === 0 ? 'no whole-table read of message or party' : `whole-table reads in the plan:\n${plan}`)
}

t.test('the generic plan (what a prepared claim settles on) probes by id', async (t) => {
  // PREPARE + force_generic_plan shows the generic plan on every supported version (EXPLAIN (GENERIC_PLAN) is 16+).
  await session.query('SET plan_cache_mode = force_generic_plan')
  await session.query(`PREPARE hermes_generic_probe AS ${claimSql}`)
  try {
    const { rows } = await session.query(`EXPLAIN (COSTS OFF) EXECUTE hermes_generic_probe('{${Number(channel['id'])}}', 64, 60000)`)
    const plan = rows.map((r) => r['QUERY PLAN'] as string).join('\n')
    assertProbes(t, plan)
  } finally {
    await session.query('DEALLOCATE hermes_generic_probe')
    await session.query('RESET plan_cache_mode')
  }
})

for (const limit of [64, 1000]) {
  t.test(`a claim of ${limit} rows probes by id`, async (t) => {
    const { rows } = await session.query(`EXPLAIN (COSTS OFF) ${claimSql}`, [[channel['id']], limit, 60_000])
    const plan = rows.map((r) => r['QUERY PLAN'] as string).join('\n')
    assertProbes(t, plan)
  })
}

t.test('a claim does not step over the messages in flight', async (t) => {
  // 2000 messages claimed and not yet sent, as under load.
  const { rows: inFlight } = await fx.db.query(claimSql, [[channel['id']], 2000, 60_000])
  t.equal(inFlight.length, 2000)
  await session.query('BEGIN')
  const { rows } = await session.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${claimSql}`, [[channel['id']], 64, 60_000])
  await session.query('ROLLBACK')
  const removed: number[] = []
  const visit = (node: Record<string, unknown>): void => {
    if (node['Index Name'] === 'message_dispatch_due_idx') removed.push(Number(node['Rows Removed by Filter'] ?? 0))
    for (const child of (node['Plans'] as Array<Record<string, unknown>> | undefined) ?? []) visit(child)
  }
  visit((rows[0]['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan)
  t.equal(removed.length, 1, 'the due messages are found through the due index')
  t.ok(removed[0]! < 64, `${removed[0]} index entries read and thrown away for a claim of 64`)
})

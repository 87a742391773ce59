// A backlog in a message table PostgreSQL has not analysed yet (a new database that takes a backlog
// before autovacuum first gets to it): without statistics the planner guessed that few rows were
// due, and found a claim's due rows by bitmap scans of every due message and of the channel's
// messages, then a sort (35,000 rows read for a claim of 64 here; 50-120 ms a claim with 30,000
// due), so a rate-limited provider, whose claims are small and frequent, kept a backend busy in
// proportion to the backlog. The claim session's settings (dispatch-sql.ts, claimSessionSettings)
// leave the ordered read of the due index as the only plan worth taking.
import t, { type Test } from 'tap'
import { claimSql } from '../src/dispatch/dispatch-sql.js'
import { openClaimSession } from '../src/dispatch/db-session.js'
import { createLogger } from '../src/log.js'
import { dispatchFixture } from '../src/harness/fake-provider.js'

const kBacklog = 30_000
const kClaim = 64

const fx = await dispatchFixture(t, { channels: { sms: { provider: 'mock' } }, providers: { mock: { kind: 'mock' } } })
await fx.insert('sms', 5000)
await fx.db.query("UPDATE message SET dispatch_status = 'sent'")
await fx.db.query('VACUUM message, party') // vacuumed, never analysed
await fx.insert('sms', kBacklog)
const { rows: [channel] } = await fx.db.query("SELECT id FROM channel WHERE name = 'sms'")
const session = openClaimSession(fx.db.url, createLogger('silent'))
t.teardown(() => session.close())

interface PlanNode { 'Node Type': string, 'Actual Rows': number, 'Actual Loops': number, 'Index Name'?: string, 'Subplan Name'?: string, Plans?: PlanNode[] }

/** The nodes that find the due rows: the `due` CTE's subtree. */
function dueSubtree (root: PlanNode): PlanNode[] {
  const found: PlanNode[] = []
  const collect = (node: PlanNode): void => { found.push(node); for (const child of node.Plans ?? []) collect(child) }
  const search = (node: PlanNode): void => {
    if (node['Subplan Name'] === 'CTE due') collect(node)
    else for (const child of node.Plans ?? []) search(child)
  }
  search(root)
  return found
}

async function claimPlan (explained: string, params: unknown[]): Promise<PlanNode> {
  await session.query('BEGIN')
  try {
    const { rows } = await session.query(explained, params)
    return (rows[0]!['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan
  } finally {
    await session.query('ROLLBACK')
  }
}

function assertOrderedRead (t: Test, root: PlanNode): void {
  const nodes = dueSubtree(root)
  t.ok(nodes.length > 0, 'the plan has the due CTE')
  const types = nodes.map((n) => n['Node Type'] + (n['Index Name'] === undefined ? '' : ` on ${n['Index Name']}`))
  t.notOk(types.some((type) => /Sort|Bitmap/.test(type)), `the due rows are read in index order, not gathered and sorted: ${types.join(' > ')}`)
  const read = Math.max(...nodes.filter((n) => /Scan/.test(n['Node Type'])).map((n) => n['Actual Rows'] * n['Actual Loops']))
  t.ok(read <= 2 * kClaim, `${read} due rows read for a claim of ${kClaim} out of ${kBacklog}`)
}

t.test(`a claim from a backlog the statistics do not know of reads about what it claims (custom plan)`, async (t) => {
  assertOrderedRead(t, await claimPlan(`EXPLAIN (ANALYZE, FORMAT JSON) ${claimSql}`, [[channel['id']], kClaim, 60_000]))
})

t.test('and so does the generic plan a prepared claim settles on', async (t) => {
  await session.query('SET plan_cache_mode = force_generic_plan')
  t.teardown(() => session.query('RESET plan_cache_mode'))
  await session.query(`PREPARE stale_claim (smallint[], int, float8) AS ${claimSql.replace('$1::smallint[]', '$1').replaceAll('$3::float8', '$3')}`)
  assertOrderedRead(t, await claimPlan(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE stale_claim('{${channel['id'] as number}}', ${kClaim}, 60000)`, []))
})

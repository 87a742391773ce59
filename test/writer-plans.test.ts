// The writer prepares its merge once per connection, and PostgreSQL keeps one plan for such a
// statement until the statistics of its tables change. A plan made while party and conversation
// were nearly empty must not go on scanning them whole for every row once they have grown.
import t from 'tap'
import { postAll, type Webhook } from './helpers/load.js'
import { startTestHermes, smsPayload } from './helpers/hermes.js'
import { until } from '../src/harness/wait.js'

const h = await startTestHermes(t)
const db = h.db
// Statistics that say "empty", as the bench's reset or autovacuum on a young database leaves them.
// (Hermes applied the schema at start; the writer plans at its first batch, below.)
await db.query('ANALYZE party, conversation')

interface ScanCounts { seq: number, idx: number, idxRows: number }

async function conversationScans (): Promise<ScanCounts> {
  const result = await db.query(`SELECT t.seq_scan::int AS seq, coalesce(t.idx_scan, 0)::int AS idx,
                                        (SELECT coalesce(sum(i.idx_tup_read), 0)::int FROM pg_stat_user_indexes i WHERE i.relid = t.relid) AS "idxRows"
                                   FROM pg_stat_user_tables t WHERE t.relname = 'conversation'`)
  return result.rows[0] as ScanCounts
}

t.test('id lookups stay index probes after the tables grow from empty', async (t) => {
  // The first batch makes the plan, with both tables empty.
  t.equal((await h.postSigned('sms', smsPayload())).status, 202)

  // Then many new parties and conversations, in batches that all run that plan.
  const newConversations = 300
  const webhooks: Webhook[] = Array.from({ length: newConversations }, (_, i) => {
    const payload = smsPayload({ from: `+1415600${String(i).padStart(4, '0')}`, to: `+1212700${String(i).padStart(4, '0')}` })
    return { id: payload['id'] as string, body: JSON.stringify(payload) }
  })
  const result = await postAll(`${h.base}/webhooks/sms`, webhooks)
  t.equal(result.acknowledged.length, newConversations, 'every webhook answered 202')

  // Backends report their counters to the statistics system within about a second of going idle.
  const scans = await until('the writer\'s conversation lookups in the statistics', 15_000, async () => {
    const counts = await conversationScans()
    return counts.seq + counts.idx >= newConversations ? counts : undefined
  })
  t.ok(scans.seq < 10, `the conversation table was scanned whole ${scans.seq} times (index probes: ${scans.idx})`)
  // ... nor read whole through an index instead: a probe reads at most the one entry it looks for.
  t.ok(scans.idxRows <= scans.idx, `${scans.idxRows} index entries read in ${scans.idx} index scans`)
})

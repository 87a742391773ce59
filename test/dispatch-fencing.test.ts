// Claims and outcome write-backs run on two connections. An outcome whose message this instance
// re-claimed meanwhile must be stored with the newer lease, even when the write returns before the
// claim's rows reach adopt(); an outcome whose message someone else claimed must not overwrite it.
import t, { type Test } from 'tap'
import { dispatchFixture } from '../src/harness/fake-provider.js'
import { DbSession } from '../src/dispatch/db-session.js'
import { StatusWriter, type Entry } from '../src/dispatch/status-writer.js'
import { claimSql, type ClaimedRow } from '../src/dispatch/dispatch-sql.js'
import { claimedFromRow, type Claimed } from '../src/dispatch/claimed.js'
import { createLogger } from '../src/log.js'

const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'mock' } },
  providers: { mock: { kind: 'mock' } }
})
const log = createLogger('silent')
const channelId = (await fx.db.query<{ id: number }>("SELECT id FROM channel WHERE name = 'sms'")).rows[0]!.id

async function claimOne (): Promise<ClaimedRow> {
  const { rows } = await fx.db.query<ClaimedRow>(claimSql, [[channelId], 1, 60_000])
  if (rows.length !== 1) throw new Error(`claimed ${rows.length} rows`)
  return rows[0]!
}

/** Lets the message's lease run out, as if its send had outlived it (a claim makes it due again at the lease's end). */
async function expire (id: string): Promise<void> {
  await fx.db.query("UPDATE message SET claimed_until = now() - interval '1 second', next_attempt_at = now() - interval '1 second' WHERE id = $1", [id])
}

function sent (item: Claimed): Entry {
  return { item, provider: 'mock', decision: { status: 'sent', counted: 1, delayMs: 0, providerMessageId: 'SM-fencing', lastError: null } }
}

async function writeOne (t: Test, entry: Entry, claimsSettled: () => Promise<void>): Promise<readonly Entry[]> {
  const session = new DbSession(fx.db.url, log)
  t.teardown(() => session.close())
  let stored: readonly Entry[] = []
  const writer = new StatusWriter(session, log, (entries) => { stored = entries }, claimsSettled)
  writer.add(entry)
  t.ok(await writer.drain(Date.now() + 10_000), 'the write finished')
  return stored
}

t.test('re-claimed by this instance, adopted only after the write returned: stored with the new lease', async (t) => {
  const [id] = await fx.insert('sms', 1)
  const item = claimedFromRow(await claimOne(), { name: 'sms', type: 'sms' }, performance.now())
  await expire(id!)
  // This instance's next claim takes the message again and commits; its rows are not adopted yet.
  const again = await claimOne()
  t.equal(again.id, id, 'the same message was claimed again')
  t.not(again.lease, item.lease, 'with a new lease')
  let waited = 0
  const stored = await writeOne(t, sent(item), async () => { waited++; item.lease = again.lease }) // adopt() runs now
  t.equal(waited, 1, 'the write waited for the claims in flight before deciding')
  t.same(stored.map((e) => e.item.id), [id], 'the outcome is reported stored')
  const row = (await fx.rows([id!])).get(id!)!
  t.equal(row.status, 'sent', 'and it is in the database')
  t.equal(row.providerMessageId, 'SM-fencing')
})

t.test('claimed by another instance: the outcome is dropped, the other claim stands', async (t) => {
  const [id] = await fx.insert('sms', 1)
  const item = claimedFromRow(await claimOne(), { name: 'sms', type: 'sms' }, performance.now())
  await expire(id!)
  const theirs = await claimOne()
  let waited = 0
  await writeOne(t, sent(item), async () => { waited++ }) // nothing of ours adopts it
  t.equal(waited, 1, 'the write waited for the claims in flight before deciding')
  const row = (await fx.rows([id!])).get(id!)!
  t.equal(row.status, 'sending', 'the other instance still holds it')
  const { rows } = await fx.db.query<{ lease: string }>('SELECT claimed_until::text AS lease FROM message WHERE id = $1', [id])
  t.equal(rows[0]!.lease, theirs.lease, 'with its own lease')
})

t.test('a write that matched: no wait for claims', async (t) => {
  const [id] = await fx.insert('sms', 1)
  const item = claimedFromRow(await claimOne(), { name: 'sms', type: 'sms' }, performance.now())
  let waited = 0
  await writeOne(t, sent(item), async () => { waited++ })
  t.equal(waited, 0, 'claims were not waited for')
  t.equal((await fx.rows([id!])).get(id!)!.status, 'sent')
})

t.test('stored, then claimed again by this instance before the write returned: reported as new work, not as the outcome\'s', async (t) => {
  const [id] = await fx.insert('sms', 1)
  const item = claimedFromRow(await claimOne(), { name: 'sms', type: 'sms' }, performance.now())
  const session = new DbSession(fx.db.url, log)
  t.teardown(() => session.close())
  let again: ClaimedRow | null = null
  // The write's answer arrives after a claim of ours took the retry (due at once) and adopt() gave the item its lease.
  const query = session.query.bind(session)
  session.query = (async (...args: Parameters<DbSession['query']>) => {
    const result = await query(...args)
    again = await claimOne()
    item.lease = again.lease
    return result
  }) as DbSession['query']
  let stored: readonly Entry[] = []
  let claimedAgain: readonly Entry[] = []
  const writer = new StatusWriter(session, log, (entries, newWork) => { stored = entries; claimedAgain = newWork })
  writer.add({ item, provider: 'mock', decision: { status: 'pending', counted: 1, delayMs: 0, providerMessageId: null, lastError: 'a 500' } })
  t.ok(await writer.drain(Date.now() + 10_000), 'the write finished')
  t.equal(again!.id, id, 'the claim took the same message')
  t.same(stored.map((e) => e.item.id), [id], 'the outcome is reported stored')
  t.same(claimedAgain.map((e) => e.item.id), [id], 'and the message as claimed again: the claim is new work')
  const row = (await fx.rows([id!])).get(id!)!
  t.equal(row.status, 'sending', 'held by that claim')
  t.equal(row.attempts, 1, 'after the stored attempt')
})

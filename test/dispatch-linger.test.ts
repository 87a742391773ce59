// Outcomes wait a little for company before they are written (status-writer.ts, lingerMs): a
// provider held to its rate finishes its sends one at a time, and a commit per message is costly.
// An outcome that keeps queued work from its provider's last concurrency slot is written at once.
import t from 'tap'
import { dispatchFixture, startFakeProvider } from './helpers/fake-provider.js'
import { DbSession } from '../src/dispatch/db-session.js'
import { StatusWriter, type Entry } from '../src/dispatch/status-writer.js'
import { claimSql, type ClaimedRow } from '../src/dispatch/dispatch-sql.js'
import { claimedFromRow, type Claimed } from '../src/dispatch/claimed.js'
import { ProviderLane } from '../src/dispatch/provider-lane.js'
import { createProviderClient } from '../src/dispatch/providers/index.js'
import { createLogger } from '../src/log.js'

const fake = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' }, email: { provider: 'mock' } },
  providers: {
    twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 8, rateLimit: { perSecond: 100, burst: 1 } },
    mock: { kind: 'mock', concurrency: 1 }
  }
})
const log = createLogger('silent')

t.test('a provider held to 100/s: its outcomes share writes', async (t) => {
  const count = 120
  const ids = await fx.insert('sms', count)
  const dispatcher = await fx.startDispatcher()
  dispatcher.wake()
  await fx.waitForStatus(ids, 'sent', 30_000)
  t.equal(fake.requests.length, count, 'each message sent once')
  // dispatched_at is the write's now(): one value per write.
  const { rows } = await fx.db.query<{ writes: number }>('SELECT count(DISTINCT dispatched_at)::int AS writes FROM message WHERE id = ANY($1::bigint[])', [ids])
  t.ok(rows[0]!.writes <= count / 2, `${count} outcomes in ${rows[0]!.writes} writes (one a message without lingering)`)
})

async function claimOne (): Promise<Claimed> {
  const [id] = await fx.insert('email', 1)
  const channel = (await fx.db.query<{ id: number }>("SELECT id FROM channel WHERE name = 'email'")).rows[0]!.id
  const { rows } = await fx.db.query<ClaimedRow>(claimSql, [[channel], 1, 60_000]) // the earlier ones are claimed: this is the one due
  if (rows[0]?.id !== id) throw new Error(`claimed ${JSON.stringify(rows)} instead of ${id}`)
  return claimedFromRow(rows[0], { name: 'email', type: 'email' }, performance.now())
}

t.test('a lingering outcome waits for its time, or for flush()', async (t) => {
  const session = new DbSession(fx.db.url, log)
  t.teardown(() => session.close())
  let stored: readonly Entry[] = []
  const written = new Promise<void>((resolve) => {
    const writer = new StatusWriter(session, log, (entries) => { stored = entries; resolve() }, async () => {}, 60_000)
    t.teardown(() => writer.close())
    void claimOne().then(async (item) => {
      writer.add({ item, provider: 'mock', decision: { status: 'sent', counted: 1, delayMs: 0, providerMessageId: 'SM-linger', lastError: null } })
      // Nothing to wait for but time: the outcome must still be unwritten.
      await new Promise((resolve) => setTimeout(resolve, 300))
      t.equal(stored.length, 0, 'not written while it lingers')
      const row = (await fx.rows([item.id])).get(item.id)!
      t.equal(row.status, 'sending', 'the message is still claimed')
      writer.flush()
    })
  })
  await written
  t.equal(stored.length, 1, 'written once flush() was called, long before its 60 s were up')
  const row = (await fx.rows([stored[0]!.item.id])).get(stored[0]!.item.id)!
  t.equal(row.status, 'sent')
})

t.test('a lane asks for a write when queued work waits for a slot held by an unstored outcome', async (t) => {
  const config = fx.config.providers['mock']!
  const held: number[] = []
  const results: Claimed[] = []
  const lane = new ProviderLane(config, [], 60_000, createProviderClient(config), {
    onResult: (_lane, item) => { results.push(item) },
    onRelease: () => {},
    onHungry: () => {},
    onSlotsHeld: (l) => { held.push(l.queued) }
  })
  const items = [await claimOne(), await claimOne()]
  lane.enqueue(items)
  while (results.length < 1) await new Promise((resolve) => setImmediate(resolve))
  t.same(held.at(-1), 1, 'its one slot is held by the first outcome, the second message waits: asked')
  const asked = held.length
  lane.settled(results[0]!) // the first outcome is stored: the slot is free, the second is sent
  while (results.length < 2) await new Promise((resolve) => setImmediate(resolve))
  t.equal(held.length, asked, 'nothing queued behind the second: not asked again')
  lane.stop()
  lane.abandon()
})

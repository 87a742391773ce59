// Outcomes wait a little for company before they are written (status-writer.ts, lingerMs): a
// provider held to its rate finishes its sends one at a time, and a commit per message is costly.
// An outcome that keeps queued work from its provider's last concurrency slot is written at once.
import t from 'tap'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { DbSession } from '../src/dispatch/db-session.js'
import { StatusWriter, type Entry } from '../src/dispatch/status-writer.js'
import { claimSql, type ClaimedRow } from '../src/dispatch/dispatch-sql.js'
import { claimedFromRow, type Claimed } from '../src/dispatch/claimed.js'
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
  // Stopped here, not at the file's end: the tests below claim their messages by hand.
  await dispatcher.stop()
})

async function claimOne (): Promise<Claimed> {
  const [id] = await fx.insert('email', 1)
  const channel = (await fx.db.query<{ id: number }>("SELECT id FROM channel WHERE name = 'email'")).rows[0]!.id
  const { rows } = await fx.db.query<ClaimedRow>(claimSql, [[channel], 1, 60_000]) // the earlier ones are claimed: this is the one due
  if (rows[0]?.id !== id) throw new Error(`claimed ${JSON.stringify(rows)} instead of ${id}`)
  return claimedFromRow(rows[0], { name: 'email', type: 'email' }, performance.now())
}

/** Records the statements a session is asked to run (by prepared name, else SQL). */
function spy (session: DbSession): string[] {
  const asked: string[] = []
  const query = session.query.bind(session)
  session.query = (async (sql: string, params?: unknown[], name?: string) => {
    asked.push(name ?? sql)
    return await query(sql, params, name)
  }) as typeof session.query
  return asked
}

const sentDecision = { status: 'sent', counted: 1, delayMs: 0, providerMessageId: 'SM-linger', lastError: null } as const

/** Turns of the event loop: a writer that does not linger has asked for its write within two (it gathers for one). */
async function turns (n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

t.test('without lingering, an outcome is written within a turn or two of the event loop', async (t) => {
  const session = new DbSession(fx.db.url, log)
  t.teardown(() => session.close())
  const asked = spy(session)
  const item = await claimOne()
  const stored = new Promise<readonly Entry[]>((resolve) => {
    const writer = new StatusWriter(session, log, resolve, async () => {}, 0)
    t.teardown(() => writer.close())
    writer.add({ item, provider: 'mock', decision: sentDecision })
  })
  await turns(5)
  t.same(asked, ['hermes_outcome'], 'the write was asked for at once')
  t.equal((await stored).length, 1)
})

t.test('a lingering outcome waits for its time, or for flush()', async (t) => {
  const session = new DbSession(fx.db.url, log)
  t.teardown(() => session.close())
  const asked = spy(session)
  const item = await claimOne()
  let writer!: StatusWriter
  const stored = new Promise<readonly Entry[]>((resolve) => {
    writer = new StatusWriter(session, log, resolve, async () => {}, 60_000)
    t.teardown(() => writer.close())
  })
  writer.add({ item, provider: 'mock', decision: sentDecision })
  await turns(5)
  t.same(asked, [], 'no write asked for while it lingers (one would have been by now without lingering)')
  t.equal(writer.size, 1, 'the outcome waits in the writer')
  t.equal((await fx.rows([item.id])).get(item.id)!.status, 'sending', 'the message is still claimed')
  writer.flush()
  const entries = await stored
  t.equal(entries.length, 1, 'written once flush() was called, long before its 60 s were up')
  t.equal((await fx.rows([item.id])).get(item.id)!.status, 'sent')
})

// That a lane asks for this flush when queued work waits for a slot held by an unstored outcome is
// a rule of the dispatch core: test/lane-core.test.ts.

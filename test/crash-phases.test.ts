// SIGKILL at the two kill points that matter to the writer's transaction, each proven by
// PostgreSQL's own view (pg_stat_activity, pg_locks, pg_stat_progress_copy, pg_xact_status),
// with no hook in Hermes: during the merge (its INSERT into message is waiting on a lock the
// test holds) and during the COPY into the staging table (the process is frozen while the
// writer's backend waits for more COPY data). After each kill: nothing committed half-way, no
// orphan rows, every id answered 202 stored exactly once, nothing in flight was answered 202,
// and after a restart the senders' retries of those are stored once.
import t from 'tap'
import pg from 'pg'
import { SECRET } from './helpers/hermes.js'
import { testDatabase } from '../src/harness/database.js'
import { spawnHermes, writeConfigFile, type RunningHermes } from './helpers/process.js'
import { postAll, startLoad, type LoadResult, type Outcome, type Webhook } from './helpers/load.js'
import { until } from '../src/harness/wait.js'
import { writerTransaction } from '../src/store/merge-sql.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const kStallLanes = 16
const kCopyAttempts = 60
const kCopyBodyChars = 48_000 // big rows make COPYs long enough to freeze the writer in the middle of one

// Two Hermes starts and two restarts on a shared 2-core machine: more than the default 120 s must not fail it.
t.setTimeout(240_000)
const db = await testDatabase(t)
const file = writeConfigFile(t.testdir(), {
  database: { url: db.url },
  ackTimeoutMs: 300_000, // a request held up by the test's lock must still be waiting (not 503) at the kill
  // The writer sends a batch's query and COPY data in one write, so a frozen Hermes leaves a COPY
  // unfinished only if part of that write is still in the process. 200 ms per batch gathers a
  // request from nearly every lane of the COPY test (~7.7 MB), more than the loopback socket
  // buffers take at once; at 20 ms a catch took ~30 SIGSTOPs.
  writer: { maxBatchDelayMs: 200 },
  channels: { sms: { provider: 'mock', secrets: [SECRET] } },
  providers: { mock: { kind: 'mock' } }
})
const url = (port: number): string => `http://127.0.0.1:${port}/webhooks/sms`

/** The test's own sessions: one to watch PostgreSQL, one to hold a lock. */
async function session (t: Pick<Test, 'teardown'>, name: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.url, application_name: name })
  await client.connect()
  t.teardown(() => client.end().catch(() => {}))
  return client
}
const observer = await session(t, 'crash-phases-observer')

async function start (t: Test): Promise<{ run: RunningHermes, port: number }> {
  const run = spawnHermes(t, ['--config', file])
  const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
  return { run, port: started['port'] as number }
}

/** Attachments each sent id should have once stored. */
const attachmentsOf = new Map<string, number>()
let sequence = 0
function webhook (prefix: string, options: { attachments?: number, bodyChars?: number } = {}): Webhook {
  const n = ++sequence
  const id = `${prefix}-${n}`
  const attachments = Array.from({ length: options.attachments ?? 0 }, (_, i) => `https://files.example.com/${id}/${i}.jpg`)
  attachmentsOf.set(id, attachments.length)
  // A new recipient per message: every batch has parties and a conversation to create before its messages.
  const to = `+1650${String(n).padStart(7, '0')}`
  const body = options.bodyChars === undefined ? `crash phases ${n}` : `${n} `.padEnd(options.bodyChars, 'x')
  return { id, body: JSON.stringify({ id, from: '+14155550000', to, body, attachments }) }
}

/** How often each of `ids` is stored. */
async function storedCounts (ids: readonly string[]): Promise<Map<string, number>> {
  const r = await observer.query('SELECT external_id, count(*)::int AS n FROM message WHERE external_id = ANY($1) GROUP BY external_id', [ids])
  return new Map(r.rows.map((row) => [row['external_id'] as string, row['n'] as number]))
}

/**
 * Orphans and half-merges. message has no foreign keys (schema.sql), so a message whose
 * conversation or parties are missing would go unnoticed by PostgreSQL. And since every
 * message in this file has a new recipient, a party or conversation with no message could
 * only be the first half of a merge committed without its second.
 */
async function checkIntegrity (t: Test, when: string): Promise<void> {
  const r = await observer.query(`
    SELECT
      (SELECT count(*) FROM message m LEFT JOIN conversation c ON c.id = m.conversation_id
                                       AND c.party_a_id = least(m.sender_id, m.recipient_id)
                                       AND c.party_b_id = greatest(m.sender_id, m.recipient_id)
        WHERE c.id IS NULL)::int AS messages_without_their_conversation,
      (SELECT count(*) FROM message m WHERE m.sender_id NOT IN (SELECT id FROM party)
                                         OR m.recipient_id NOT IN (SELECT id FROM party))::int AS messages_without_parties,
      (SELECT count(*) FROM message m WHERE m.channel_id NOT IN (SELECT id FROM channel))::int AS messages_without_channel,
      (SELECT count(*) FROM conversation c WHERE c.party_a_id NOT IN (SELECT id FROM party)
                                              OR c.party_b_id NOT IN (SELECT id FROM party))::int AS conversations_without_parties,
      (SELECT count(*) FROM attachment a WHERE a.message_id NOT IN (SELECT id FROM message))::int AS attachments_without_message,
      (SELECT count(*) FROM party p WHERE p.id NOT IN (SELECT sender_id FROM message UNION SELECT recipient_id FROM message))::int AS parties_without_message,
      (SELECT count(*) FROM conversation c WHERE c.id NOT IN (SELECT conversation_id FROM message))::int AS conversations_without_message`)
  const counts = r.rows[0] as Record<string, number>
  t.same(counts, Object.fromEntries(Object.keys(counts).map((k) => [k, 0])), `${when}: no orphans, no half-merged rows`)
  const attachments = await observer.query('SELECT m.external_id, count(a.id)::int AS n FROM message m LEFT JOIN attachment a ON a.message_id = m.id GROUP BY m.id')
  const wrong = attachments.rows.filter((row) => attachmentsOf.get(row['external_id'] as string) !== row['n'])
  t.same(wrong, [], `${when}: each of the ${attachments.rowCount} messages has exactly its attachments`)
}

/**
 * Waits until every backend of a killed Hermes is gone (PostgreSQL only notices a dead client when it next talks to it).
 * Only this file's database counts: the server is shared with other test files, whose Hermes have backends of their own.
 */
async function hermesBackendsGone (): Promise<void> {
  await until('the killed process\'s backends to end', 60_000, async () => {
    const r = await observer.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'hermes-%' AND datname = current_database()")
    return r.rows[0]!['n'] === 0 ? true : undefined
  })
}

/** What a transaction left: its status and the rows it wrote (xmin), by table. */
async function transactionOutcome (xid: string): Promise<{ status: string, message: number, party: number, conversation: number, attachment: number }> {
  // (The dead process's dispatcher may have claimed, i.e. updated, messages since; parties and conversations are never updated.)
  const r = await observer.query(`
    SELECT pg_xact_status($1::text::xid8) AS status,
           (SELECT count(*) FROM message WHERE xmin::text = $1::text)::int AS message,
           (SELECT count(*) FROM party WHERE xmin::text = $1::text)::int AS party,
           (SELECT count(*) FROM conversation WHERE xmin::text = $1::text)::int AS conversation,
           (SELECT count(*) FROM attachment WHERE xmin::text = $1::text)::int AS attachment`, [xid])
  return r.rows[0]
}

/** After the kill: 202s stored once, no answer for what was in flight; then a restart, the retries, and all of it stored once. */
async function verifyAfterKill (t: Test, acknowledged: readonly string[], unanswered: readonly Outcome[]): Promise<void> {
  const ackedCounts = await storedCounts(acknowledged)
  t.equal(ackedCounts.size, acknowledged.length, `all ${acknowledged.length} ids answered 202 are stored`)
  t.ok([...ackedCounts.values()].every((n) => n === 1), 'each exactly once')
  const inFlight = await storedCounts(unanswered.map((o) => o.id))
  t.ok([...inFlight.values()].every((n) => n === 1), `the ${unanswered.length} requests in flight at the kill are absent or stored once (${inFlight.size} stored)`)
  await checkIntegrity(t, 'after the kill')

  const { run, port } = await start(t)
  const retried = await postAll(url(port), unanswered)
  t.same(retried.outcomes.filter((o) => o.status !== 202).map((o) => o.status), [], 'after a restart every retry of a request in flight at the kill is answered 202')
  const all = [...acknowledged, ...unanswered.map((o) => o.id)]
  const counts = await storedCounts(all)
  t.ok(counts.size === all.length && [...counts.values()].every((n) => n === 1), `all ${all.length} ids (answered 202 before the kill, or retried after it) are stored exactly once`)
  await checkIntegrity(t, 'after the restart')
  t.comment(`in flight at the kill: ${unanswered.length}, of which ${inFlight.size} were already stored and ${unanswered.length - inFlight.size} were stored by their retry`)
  run.child.kill('SIGTERM')
  t.equal((await run.exited).code, 0, 'the restarted process drains and exits 0')
}

t.test('SIGKILL while the merge is waiting on a lock: nothing half-merged, every 202 stored once', async (t) => {
  const { run, port } = await start(t)
  const before = await postAll(url(port), Array.from({ length: 40 }, () => webhook('merge', { attachments: 2 })))
  t.equal(before.acknowledged.length, 40, 'before the lock: 40 webhooks answered 202')

  // SHARE ROW EXCLUSIVE conflicts with the merge's INSERT (ROW EXCLUSIVE) but not with the
  // COPY into the writer's temporary staging table nor with its party/conversation upserts.
  const locker = await session(t, 'crash-phases-locker')
  await locker.query('BEGIN')
  await locker.query('LOCK TABLE message IN SHARE ROW EXCLUSIVE MODE')
  const load = startLoad({ url: url(port), lanes: kStallLanes, next: () => webhook('merge', { attachments: 2 }) })

  const waiting = await until('the writer\'s merge to wait on the lock on message', 60_000, async () => {
    const r = await observer.query(`
      SELECT a.pid, a.backend_xid::text AS xid, a.state, a.wait_event_type, a.wait_event, l.mode,
             a.query, left(ltrim(a.query), 40) AS query_start
        FROM pg_stat_activity a
        JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted AND l.locktype = 'relation' AND l.relation = 'message'::regclass
       WHERE a.application_name = 'hermes-writer' AND a.datname = current_database() AND a.state = 'active' AND a.wait_event_type = 'Lock'`)
    // Every batch here has a new party, so the merge opens with its resolve step; the query text
    // is cut at track_activity_query_size (1 kB by default), so the two agree up to the shorter.
    return r.rows.find((row) => {
      const query = row['query'] as string
      return query.length > 0 && [true, false].some((truncate) => [true, false].some((plain) => {
        const { sql } = writerTransaction({ resolve: true, truncate, plain })
        return sql.startsWith(query) || query.startsWith(sql)
      }))
    })
  })
  run.child.kill('SIGKILL')
  load.stop()
  const stalled: LoadResult = await load.finished
  t.equal((await run.exited).signal, 'SIGKILL', 'Hermes was killed')
  t.comment(`at the kill the writer's backend (pid ${waiting['pid']}, xid ${waiting['xid']}) was ${waiting['state']}, waiting on ${waiting['wait_event_type']}/${waiting['wait_event']} for ${waiting['mode']} on message, in the merge starting "${String(waiting['query_start']).replace(/\s+/g, ' ').trim()}…"`)
  t.ok(waiting['xid'] !== null, 'the writer\'s transaction had written (the staging COPY) and so has an xid')

  t.equal(stalled.outcomes.length, kStallLanes, 'one request per lane was in flight')
  t.same(stalled.outcomes.filter((o) => o.status !== null).map((o) => o.status), [], 'no request sent while the merge was held up was answered (no 202): each got no answer at all')

  // The writer's session sets client_connection_check_interval (1 s, PostgreSQL 14+), so its backend
  // notices the dead client while still queued for the lock and rolls the merge back, instead of
  // holding the batch's new party keys until the lock goes away.
  const noticed = await until('the dead writer\'s backend to notice the kill while waiting for the lock', 15_000, async () =>
    (await observer.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [waiting['pid']])).rowCount === 0 ? true : undefined).catch(() => false)
  const version = Number((await observer.query('SHOW server_version_num')).rows[0]!['server_version_num'])
  if (version >= 140000) t.ok(noticed, 'the dead writer\'s backend went away on its own, the lock still held')
  await locker.query('COMMIT')
  await hermesBackendsGone()
  // Hermes is dead and the lock released: from here on nothing else can commit a message, so the
  // in-flight ids stored now are exactly what the dead writer's transaction committed.
  const outcome = await transactionOutcome(waiting['xid'] as string)
  const merged = await storedCounts(stalled.unanswered.map((o) => o.id))
  t.comment(`the dead writer's transaction ${waiting['xid']} ended ${outcome.status} once the lock was released: ${merged.size} of the ${stalled.unanswered.length} unanswered messages stored, ${outcome.party} parties, ${outcome.conversation} conversations`)
  if (version >= 140000) t.equal(outcome.status, 'aborted', 'its transaction was rolled back, not left waiting to commit')
  if (outcome.status === 'committed') {
    // The merge and its COMMIT are one query string, so PostgreSQL finishes it without the client.
    t.ok(merged.size > 0, 'it committed whole: its messages')
    t.equal(outcome.party, merged.size, 'the new recipient of each (the sender existed already)')
    t.equal(outcome.conversation, merged.size, 'a new conversation for each')
    t.equal(outcome.attachment, 2 * merged.size, 'and their two attachments each')
  } else {
    t.equal(outcome.status, 'aborted', 'it did not commit')
    t.same({ merged: merged.size, party: outcome.party, conversation: outcome.conversation }, { merged: 0, party: 0, conversation: 0 }, 'and left no row')
  }
  await verifyAfterKill(t, before.acknowledged, stalled.unanswered)
})

t.test('SIGKILL while the writer is in the middle of a COPY: the transaction rolls back, every 202 stored once', async (t) => {
  const { run, port } = await start(t)
  const load = startLoad({ url: url(port), lanes: 160, next: () => webhook('copy', { bodyChars: kCopyBodyChars }) })
  const pid = run.child.pid!
  const warm = Date.now()
  await until('100 answers under load', 60_000, async () => load.answered >= 100 ? true : undefined)
  t.comment(`100 answers under load in ${Date.now() - warm} ms; now hunting for a COPY`)
  // Polled as fast as PostgreSQL answers: a COPY lasts milliseconds.
  const copying = async (): Promise<Record<string, unknown> | undefined> => (await observer.query(`
    SELECT a.pid, a.backend_xid::text AS xid, a.state, a.wait_event_type, a.wait_event,
           p.tuples_processed::int AS tuples, p.bytes_processed::int AS bytes
      FROM pg_stat_activity a LEFT JOIN pg_stat_progress_copy p ON p.pid = a.pid
     WHERE a.application_name = 'hermes-writer' AND a.datname = current_database() AND a.state = 'active' AND a.query LIKE '%COPY hermes_staging %FROM STDIN%'`)).rows[0]
  const inCopy = (row: Record<string, unknown> | undefined): boolean => row !== undefined && ((row['bytes'] as number | null) ?? 0) > 0
  let caught: Record<string, unknown> | undefined
  const misses = new Map<string, number>()
  const deadline = Date.now() + 60_000
  for (let attempt = 1; caught === undefined && attempt <= kCopyAttempts && Date.now() < deadline; attempt++) {
    // Wait until the backend has read some COPY data (the query and its data go out together).
    // No progress row (bytes null) means its COPY is over and the merge runs: wait for the next.
    let seen: Record<string, unknown> | undefined
    while (Date.now() < deadline && !inCopy(seen = await copying())) {}
    if (!inCopy(seen)) break
    process.kill(pid, 'SIGSTOP')
    // Frozen: no more COPY data can come. The backend either finishes what it already has
    // (the whole COPY was sent: a miss) or drains it and waits to read more (caught mid-COPY).
    const settled = await until('the writer\'s backend to settle after SIGSTOP', 30_000, async () => {
      const now = await copying()
      if (now === undefined) return { state: 'past the end of the COPY' }
      // The COPY is over (its progress row is gone) and the rest of the query string runs: the
      // merge, whose answer (the pre-claimed rows, bodies included) can fill the socket to the
      // frozen client, so it may wait on ClientWrite until the SIGCONT.
      if (now['tuples'] === null) return { state: `past the end of the COPY (in the merge, ${String(now['wait_event'] ?? 'running')})` }
      return now['wait_event'] === 'ClientRead' ? now : undefined
    })
    // Rows already in the staging table make it a COPY in the middle, not one about to start.
    if (settled['wait_event'] === 'ClientRead' && (settled['tuples'] as number) > 0) {
      // Read twice: a frozen client means nothing moves in between.
      const again = await copying()
      if (again !== undefined && again['bytes'] === settled['bytes']) caught = { ...settled, attempt }
    }
    if (caught === undefined) {
      const miss = settled['wait_event'] === 'ClientRead' ? 'before the first row' : String(settled['state'])
      misses.set(miss, (misses.get(miss) ?? 0) + 1)
      process.kill(pid, 'SIGCONT')
    }
  }
  const missed = [...misses].map(([where, n]) => `${n} landed ${where}`).join(', ')
  if (caught === undefined) {
    run.child.kill('SIGKILL')
    load.stop()
    await load.finished
    t.fail(`never caught the writer in the middle of a COPY within ${kCopyAttempts} SIGSTOPs or 60 s (${missed})`)
    return
  }
  run.child.kill('SIGKILL')
  load.stop()
  const result = await load.finished
  t.equal((await run.exited).signal, 'SIGKILL', 'Hermes was killed')
  t.comment(`SIGSTOP ${caught['attempt']}${missed === '' ? '' : ` (of the earlier ones ${missed})`}: at the kill the writer's backend (pid ${caught['pid']}, xid ${caught['xid']}) was ${caught['state']} in COPY FROM STDIN, waiting on ${caught['wait_event_type']}/${caught['wait_event']} after ${caught['tuples']} rows, ${caught['bytes']} bytes`)
  t.ok(caught['xid'] !== null, 'the COPY had written rows into the staging table, so its transaction has an xid')

  await hermesBackendsGone()
  const outcome = await transactionOutcome(caught['xid'] as string)
  t.same(outcome, { status: 'aborted', message: 0, party: 0, conversation: 0, attachment: 0 }, 'the killed COPY\'s transaction rolled back and left no row')
  const others = result.outcomes.filter((o) => o.status !== null && o.status !== 202)
  t.same(others.map((o) => o.status), [], 'every answer before the kill was 202')
  t.comment(`answered 202: ${result.acknowledged.length}; in flight at the kill (no answer): ${result.unanswered.length}`)
  t.ok(result.acknowledged.length > 0, 'some webhooks were answered 202 before the kill')
  await verifyAfterKill(t, result.acknowledged, result.unanswered)
})

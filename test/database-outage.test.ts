// PostgreSQL goes away and comes back: 503 with Retry-After meanwhile, /readyz tells the truth, recovery needs no restart.
import t from 'tap'
import pg from 'pg'
import { Agent } from 'node:http'
import { SECRET, send, smsPayload, startTestHermes } from './helpers/hermes.js'
import { postKeepAlive } from '../src/harness/keep-alive.js'
import { testDatabase } from '../src/harness/database.js'
import { until } from '../src/harness/wait.js'

const db = await testDatabase(t, { ownServer: true })
const skip = db.embedded ? false : 'needs an embedded PostgreSQL it can stop (DATABASE_URL is set)'
// One Hermes lives through both outages (the second subtest also shows it recovered from the first).
// Its ack timeout outlasts a stop and a start of the server: the second subtest's webhooks wait through one.
const h = skip === false ? await startTestHermes(t, { ackTimeoutMs: 15_000 }, db) : undefined
{
  t.test('while the database is down Hermes answers 503, and it recovers by itself', { skip }, async (t) => {
    if (h === undefined) return
    const acknowledged: string[] = []
    const before = smsPayload()
    t.equal((await h.postSigned('sms', before)).status, 202)
    acknowledged.push(before['id'] as string)

    await db.stop()
    await until('/readyz to report 503', 10_000, async () => (await send('GET', `${h.base}/readyz`)).status === 503 ? true : undefined)
    const during = await h.postSigned('sms', smsPayload())
    t.equal(during.status, 503, 'a webhook is refused while the database is down')
    t.equal(during.json.error.code, 'HERMES_ERR_DATABASE_UNAVAILABLE')
    t.ok(Number(during.headers['retry-after']) >= 1, 'with Retry-After in seconds')
    t.equal((await send('GET', `${h.base}/healthz`)).status, 200, 'yet the process is alive')

    // A client retrying through the outage keeps its connection: the refused body is read, not left unread.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const sockets = new Set<unknown>()
    agent.on('free', (socket) => sockets.add(socket))
    for (let i = 0; i < 3; i++) {
      const answer = await postKeepAlive(agent, h.hermes.port, JSON.stringify(smsPayload()), SECRET, 5000)
      t.equal(answer.code, 'HERMES_ERR_DATABASE_UNAVAILABLE', `keep-alive request ${i + 1} refused with 503`)
    }
    t.equal(sockets.size, 1, 'all three on one connection (a refusal does not close it)')

    await db.start()
    await until('/readyz to report 200 again', 20_000, async () => (await send('GET', `${h.base}/readyz`)).status === 200 ? true : undefined)
    const after = smsPayload()
    t.equal((await h.postSigned('sms', after)).status, 202, 'webhooks are stored again')
    acknowledged.push(after['id'] as string)
    const stored = await db.query('SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1)', [acknowledged])
    t.equal(stored.rows[0]!['n'], acknowledged.length, 'nothing acknowledged was lost')
  })

  t.test('webhooks waiting for their commit when the database dies are stored once it returns, and only then answered 202', { skip }, async (t) => {
    if (h === undefined) return
    // Hold the writer mid-transaction so the requests are surely in flight when the server dies.
    const locker = new pg.Client({ connectionString: db.url })
    locker.on('error', () => {}) // the server's shutdown terminates this session
    await locker.connect()
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE message IN ACCESS EXCLUSIVE MODE')
    const payloads = Array.from({ length: 40 }, () => smsPayload())
    const written = h.hermes.ring.written
    const answers = Promise.all(payloads.map(async (p) => await h.postSigned('sms', p)))
    await until('all 40 in the ring', 10_000, async () => h.hermes.ring.written >= written + 40 ? true : undefined)
    await db.stop()
    await locker.end().catch(() => {})
    await db.start()
    const results = await answers
    t.same(results.map((r) => r.status), Array(40).fill(202), 'all answered 202 after the database returned')
    const stored = await db.query('SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1)', [payloads.map((p) => p['id'])])
    t.equal(stored.rows[0]!['n'], 40, 'and all are stored, once')
  })
}

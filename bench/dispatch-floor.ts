// Run: node dist/bench/dispatch-floor.js (DISPATCH_FLOOR_MESSAGES=N, default 20,000; DISPATCH_FLOOR_CONCURRENCY=C, default 64).
/**
 * What one delivered message costs at the least on this machine, part by
 * part, to hold the dispatch figures (bench/dispatch-throughput.ts) against.
 * A goal of 20,000 sends/s on 2 cores leaves 100 us of CPU per send
 * for everything: the provider's answer, the client, the database.
 *
 * - The HTTP exchange alone: C keep-alive connections to the fast loopback
 *   Twilio (bench/fast-provider.ts), no database, no dispatcher. Once with
 *   the least client Node allows (net sockets, the request written in one
 *   piece, answers framed by their Content-Length: a measuring stick, not a
 *   client for real providers), once with Hermes' own transport (undici).
 * - PostgreSQL alone: the server's CPU per message for Hermes' claim and
 *   outcome statements, which write two versions of each message row (the
 *   claim, then the outcome), and for the least a claim can cost under this
 *   schema: row locks held in an open transaction and the outcome written
 *   before COMMIT, one version. Every version of a message row is a new
 *   entry in each of its four unconditional indexes (primary key, channel +
 *   external id, sent_at, conversation), which is where the time goes.
 */
import t from 'tap'
import net from 'node:net'
import { availableParallelism } from 'node:os'
import pg from 'pg'
import { HttpTransport } from '../src/dispatch/providers/http-transport.js'
import { claimSql, outcomeSql, outcomeParams, type ClaimedRow, type Outcome } from '../src/dispatch/dispatch-sql.js'
import { dispatchFixture } from '../src/harness/fake-provider.js'
import { cpuSeconds, startFastProvider, stopServer } from './processes.js'

const count = Number(process.env['DISPATCH_FLOOR_MESSAGES'] ?? 20_000)
const concurrency = Number(process.env['DISPATCH_FLOOR_CONCURRENCY'] ?? 64)
t.setTimeout(Math.max(60_000, count * 10)) // not tap's 30 s default for a file run on its own

const accountSid = 'AC1'
const path = `/2010-04-01/Accounts/${accountSid}/Messages.json`
const authorization = `Basic ${Buffer.from(`${accountSid}:tok`).toString('base64')}`
const formOf = (i: number): string => new URLSearchParams({ To: `+1212${String(i).padStart(7, '0')}`, From: '+14155550100', Body: `hello ext-${i}` }).toString()

interface Cost { perSecond: number; clientUs: number; providerUs: number }

/** Times `count` requests made by `start` (which calls `done` per answer) and measures CPU per request on both sides. */
async function exchange (providerPid: number, start: (done: () => void, fail: (error: Error) => void) => void): Promise<Cost> {
  const cpu0 = process.cpuUsage()
  const provider0 = cpuSeconds(providerPid)
  const began = performance.now()
  await new Promise<void>((resolve, reject) => {
    let answered = 0
    start(() => { if (++answered === count) resolve() }, reject)
  })
  const seconds = (performance.now() - began) / 1000
  const cpu = process.cpuUsage(cpu0)
  return {
    perSecond: Math.round(count / seconds),
    clientUs: (cpu.user + cpu.system) / count,
    providerUs: (cpuSeconds(providerPid) - provider0) * 1e6 / count
  }
}

/** C sockets, each writing a whole request and waiting for its whole answer, then the next. */
async function minimalClient (port: number, providerPid: number): Promise<Cost> {
  let started = 0
  return await exchange(providerPid, (done, fail) => {
    for (let c = 0; c < concurrency; c++) {
      const socket = net.connect(port, '127.0.0.1')
      socket.setNoDelay(true)
      socket.on('error', fail)
      let pending: Buffer = Buffer.alloc(0)
      const next = (): void => {
        if (started >= count) { socket.end(); return }
        const body = formOf(started++)
        socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nuser-agent: floor\r\naccept: application/json\r\n` +
          `authorization: ${authorization}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      }
      socket.on('connect', next)
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
        const headEnd = pending.indexOf('\r\n\r\n')
        if (headEnd < 0) return
        const length = Number(/content-length: *(\d+)/i.exec(pending.toString('latin1', 0, headEnd))?.[1] ?? Number.NaN)
        if (Number.isNaN(length)) { fail(new Error('an answer without a Content-Length')); return }
        if (pending.length < headEnd + 4 + length) return
        const { sid } = JSON.parse(pending.toString('utf8', headEnd + 4, headEnd + 4 + length)) as { sid?: unknown }
        if (typeof sid !== 'string') { fail(new Error('an answer without a sid')); return }
        pending = pending.subarray(headEnd + 4 + length)
        done()
        next()
      })
    }
  })
}

async function hermesTransport (baseUrl: string, providerPid: number): Promise<Cost> {
  const transport = new HttpTransport(baseUrl, concurrency, 10_000)
  let started = 0
  try {
    return await exchange(providerPid, (done, fail) => {
      const next = (): void => {
        if (started >= count) return
        transport.post(path, { authorization, 'content-type': 'application/x-www-form-urlencoded' }, formOf(started++)).then((reply) => {
          if (reply.status !== 201 || typeof (JSON.parse(reply.body) as { sid?: unknown }).sid !== 'string') { fail(new Error(`HTTP ${reply.status}: ${reply.body}`)); return }
          done()
          next()
        }, fail)
      }
      for (let c = 0; c < concurrency; c++) next()
    })
  } finally {
    transport.close()
  }
}

/** The least each part cost over the rounds, in us of CPU per message: the floor. */
const floor = { minimalHttp: Infinity, hermesHttp: Infinity, oneVersion: Infinity, twoVersions: Infinity }

await t.test(`the HTTP exchange alone: ${count} requests to the fast loopback Twilio over ${concurrency} keep-alive connections`, async (t) => {
  const provider = await startFastProvider()
  t.teardown(async () => await stopServer(provider))
  const pid = provider.child.pid!
  for (let round = 1; round <= 2; round++) {
    const minimal = await minimalClient(provider.port, pid)
    floor.minimalHttp = Math.min(floor.minimalHttp, minimal.clientUs + minimal.providerUs)
    t.comment(`round ${round}, minimal client: ${minimal.perSecond} req/s; CPU per request: client ${minimal.clientUs.toFixed(1)} us, provider ${minimal.providerUs.toFixed(1)} us`)
    const undici = await hermesTransport(`http://127.0.0.1:${provider.port}`, pid)
    floor.hermesHttp = Math.min(floor.hermesHttp, undici.clientUs + undici.providerUs)
    t.comment(`round ${round}, Hermes' transport (undici): ${undici.perSecond} req/s; CPU per request: client ${undici.clientUs.toFixed(1)} us, provider ${undici.providerUs.toFixed(1)} us`)
  }
  const { accepted } = await (await fetch(`http://127.0.0.1:${provider.port}/count`)).json() as { accepted: number }
  t.equal(accepted, 4 * count, 'every request reached the provider once')
})

/** Hermes' claim without its UPDATE: the rows stay locked by this transaction until it ends. */
const lockedClaimSql = `
SELECT m.id::text AS id, m.channel_id, m.external_id,
       (SELECT p.address FROM party p WHERE p.id = m.sender_id) AS sender,
       (SELECT p.address FROM party p WHERE p.id = m.recipient_id) AS recipient,
       m.body, m.sent_at, m.received_at, m.dispatch_attempts AS attempts,
       coalesce((SELECT array_agg(a.url ORDER BY a.position) FROM attachment a WHERE a.message_id = m.id), '{}') AS attachments
  FROM message m
 WHERE m.dispatch_status IN ('pending', 'sending') AND m.next_attempt_at <= now()
   AND (m.claimed_until IS NULL OR m.claimed_until < now()) AND m.channel_id = ANY($1::smallint[])
 ORDER BY m.next_attempt_at
 LIMIT $2
   FOR UPDATE OF m SKIP LOCKED`

const lockedOutcomeSql = `
UPDATE message m
   SET dispatch_status = 'sent', dispatch_attempts = m.dispatch_attempts + 1, provider_message_id = v.provider_message_id,
       last_error = NULL, dispatched_at = now()
  FROM unnest($1::bigint[], $2::text[]) AS v(id, provider_message_id)
 WHERE m.id = v.id`

await t.test(`PostgreSQL alone: ${count} messages claimed ${concurrency} at a time and stored as sent`, async (t) => {
  const fx = await dispatchFixture(t, { channels: { sms: { provider: 'mock' } }, providers: { mock: { kind: 'mock' } } })
  const channelIds = [(await fx.db.query<{ id: number }>("SELECT id FROM channel WHERE name = 'sms'")).rows[0]!.id]
  const connect = async (): Promise<{ client: pg.Client; pid: number }> => {
    const client = new pg.Client({ connectionString: fx.db.url })
    await client.connect()
    t.teardown(() => client.end())
    return { client, pid: (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid }
  }
  const claims = await connect()
  const outcomes = await connect()
  let serial = 0

  /** Inserts `count` fresh messages, runs `deliver` until none is due, and returns the servers' CPU per message. */
  const measure = async (deliver: () => Promise<number>): Promise<{ perSecond: number; claimUs: number; outcomeUs: number; clientUs: number }> => {
    const ids = await fx.insert('sms', count)
    await fx.db.query('VACUUM ANALYZE message')
    const claim0 = cpuSeconds(claims.pid)
    const outcome0 = cpuSeconds(outcomes.pid)
    const client0 = process.cpuUsage()
    const began = performance.now()
    let delivered = 0
    for (let n = await deliver(); n > 0; n = await deliver()) delivered += n
    const seconds = (performance.now() - began) / 1000
    const client = process.cpuUsage(client0)
    t.equal(delivered, count, 'every message claimed once')
    const { rows } = await fx.db.query<{ n: number }>("SELECT count(*)::int AS n FROM message WHERE id = ANY($1::bigint[]) AND dispatch_status = 'sent'", [ids])
    t.equal(rows[0]!.n, count, 'and stored as sent')
    return {
      perSecond: Math.round(count / seconds),
      claimUs: (cpuSeconds(claims.pid) - claim0) * 1e6 / count,
      outcomeUs: (cpuSeconds(outcomes.pid) - outcome0) * 1e6 / count,
      clientUs: (client.user + client.system) / count
    }
  }

  // As the dispatcher does it: a claim on one connection, its outcomes in two write-backs on the other.
  const leased = async (): Promise<number> => {
    const { rows } = await claims.client.query<ClaimedRow>(claimSql, [channelIds, concurrency, 60_000])
    for (let i = 0; i < rows.length; i += Math.ceil(concurrency / 2)) {
      const part: Outcome[] = rows.slice(i, i + Math.ceil(concurrency / 2)).map((row) => ({
        id: row.id, lease: row.lease, status: 'sent', counted: 1, delayMs: 0, providerMessageId: `SM${++serial}`, lastError: null
      }))
      const stored = await outcomes.client.query(outcomeSql, outcomeParams(part))
      if (stored.rowCount !== part.length) throw new Error(`stored ${stored.rowCount} of ${part.length} outcomes`)
    }
    return rows.length
  }
  // One version per message: locked, then written, in one transaction.
  const locked = async (): Promise<number> => {
    await claims.client.query('BEGIN')
    const { rows } = await claims.client.query<{ id: string }>(lockedClaimSql, [channelIds, concurrency])
    if (rows.length > 0) await claims.client.query(lockedOutcomeSql, [rows.map((r) => r.id), rows.map(() => `SM${++serial}`)])
    await claims.client.query('COMMIT')
    return rows.length
  }

  for (let round = 1; round <= 2; round++) {
    const two = await measure(leased)
    floor.twoVersions = Math.min(floor.twoVersions, two.claimUs + two.outcomeUs + two.clientUs)
    t.comment(`round ${round}, Hermes' claim + outcome (two row versions): ${two.perSecond} messages/s; server CPU per message: claim ${two.claimUs.toFixed(1)} us + outcome ${two.outcomeUs.toFixed(1)} us = ${(two.claimUs + two.outcomeUs).toFixed(1)} us; this process (node-postgres) ${two.clientUs.toFixed(1)} us`)
    const one = await measure(locked)
    floor.oneVersion = Math.min(floor.oneVersion, one.claimUs + one.outcomeUs + one.clientUs)
    t.comment(`round ${round}, locked claim + outcome in one transaction (one row version): ${one.perSecond} messages/s; server CPU per message: ${(one.claimUs + one.outcomeUs).toFixed(1)} us; this process (node-postgres) ${one.clientUs.toFixed(1)} us`)
  }
})

// Nothing else may run for these sums to be reachable: no dispatcher logic, no ingest, and both cores busy all the time.
const cores = availableParallelism()
const ceiling = (us: number): string => `${Math.round(cores * 1e6 / us)} sends/s`
t.comment(`least CPU per send on ${cores} cores: HTTP (minimal client + provider) ${floor.minimalHttp.toFixed(1)} us + PostgreSQL, one row version (server + node-postgres) ${floor.oneVersion.toFixed(1)} us = ${(floor.minimalHttp + floor.oneVersion).toFixed(1)} us, at most ${ceiling(floor.minimalHttp + floor.oneVersion)}`)
t.comment(`with Hermes' transport and statements: ${floor.hermesHttp.toFixed(1)} us + ${floor.twoVersions.toFixed(1)} us = ${(floor.hermesHttp + floor.twoVersions).toFixed(1)} us, at most ${ceiling(floor.hermesHttp + floor.twoVersions)}, before the dispatcher's own work`)

/**
 * A loopback stand-in for the providers: a real HTTP server on 127.0.0.1
 * (port 0) that speaks the Twilio Messages, SendGrid v3 mail send and
 * generic `http` APIs, records every request, and can be scripted per test.
 * Below it, the fixtures the dispatch tests share: a config pointing at
 * fake providers, a prepared database, and messages inserted straight with SQL.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Worker } from 'node:worker_threads'
import { randomBytes } from 'node:crypto'
import { threadExecArgv } from './thread-exec-argv.js'
import { kConnections, kInFlight, kMaxInFlight, providerClock, type ArrivedRequest, type FromProviderThread, type ToProviderThread, type WireReply } from './fake-provider-thread.js'
import pg from 'pg'
import { resolveConfig, type HermesConfig } from '../config.js'
import { prepareDatabase } from '../store/schema.js'
import { Dispatcher, type DispatcherOptions } from '../dispatch/dispatcher.js'
import { createLogger } from '../log.js'
import { testDatabase, type TestDatabase, type TestDatabaseOptions } from './database.js'

interface Teardown { teardown (fn: () => unknown): void }

export { providerClock }

export type Api = 'twilio' | 'sendgrid' | 'http' | 'other'

export interface FakeRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
  readonly raw: string
  /** Form fields (repeated keys as arrays) for Twilio, parsed JSON otherwise. */
  readonly body: any
  readonly api: Api
  /** The recipient, read from the API's own field. */
  readonly to: string | undefined
  /** When the provider's thread received the request's headers: ms since the epoch, on a monotonic clock. */
  readonly at: number
}

export interface Reply {
  readonly status?: number
  readonly headers?: Record<string, string>
  readonly body?: string | object
  /** Answer after this long (the client may time out first). */
  readonly delayMs?: number
  /** Answer only when the test calls releaseHeld() (the client may time out first): a provider that hangs for as long as the test needs. */
  readonly hold?: boolean
  /** 'before-response': drop the connection without answering; 'mid-response': send the status line and half a body, then drop it. */
  readonly close?: 'before-response' | 'mid-response'
}

/** Decides the answer to one request (`index` counts requests from 0); undefined means the API's normal success. */
export type Responder = (request: FakeRequest, index: number) => Reply | undefined

export interface FakeProvider {
  readonly url: string
  readonly port: number
  readonly requests: readonly FakeRequest[]
  /** Requests being answered right now, and the most there ever were at once. */
  readonly inFlight: number
  readonly maxInFlight: number
  /** TCP connections accepted since start (keep-alive reuse keeps this near the client's pool size). */
  readonly connections: number
  respond (responder: Responder | null): void
  /** These replies to the next requests, in order, then the normal success (or the responder). */
  script (...replies: Reply[]): void
  /** These replies to the next requests for recipient `to`, in order, then the normal success. */
  scriptFor (to: string, ...replies: Reply[]): void
  requestsTo (to: string): FakeRequest[]
  /** Stop listening and drop every connection: clients get ECONNREFUSED until start(). */
  stop (): Promise<void>
  /** Listen again on the same port. */
  start (): Promise<void>
  /** Answers every request held by a `hold` reply, now. */
  releaseHeld (): void
}

/**
 * `record: false` keeps only a count (the bench sends hundreds of thousands of requests).
 * The listening side runs in a thread of its own (fake-provider-thread.ts), which stamps each
 * request as it arrives; replies are decided here, on the test's thread.
 */
export async function startFakeProvider (t: Teardown, options: { record?: boolean } = {}): Promise<FakeProvider> {
  const record = options.record ?? true
  const requests: FakeRequest[] = []
  let responder: Responder | null = null
  let scripted: Reply[] = []
  const scriptedFor = new Map<string, Reply[]>()
  const counters = new Int32Array(new SharedArrayBuffer(3 * 4))
  let port = 0
  let listening = false
  let seen = 0
  const timers = new Set<NodeJS.Timeout>()
  const held = new Set<() => void>()
  const thread = new Worker(new URL('./fake-provider-thread.js', import.meta.url), { workerData: { fakeProvider: true, counters: counters.buffer }, execArgv: [...threadExecArgv] })
  let waiting: { resolve: (port: number) => void, reject: (error: Error) => void } | null = null
  const send = (message: ToProviderThread): void => thread.postMessage(message)

  const onRequest = (arrived: ArrivedRequest): void => {
    const request = parseRequest(arrived.method, arrived.url, arrived.headers, arrived.raw, arrived.at)
    const index = seen++
    if (record) requests.push(request)
    const reply = (request.to === undefined ? undefined : scriptedFor.get(request.to)?.shift()) ?? scripted.shift() ?? responder?.(request, index) ?? undefined
    const answer = (): void => { if (listening) send({ type: 'reply', id: arrived.id, reply: wireReply(request, reply ?? successOf(request)) }) }
    if (reply?.hold === true) {
      held.add(answer)
    } else if (reply?.delayMs !== undefined && reply.delayMs > 0) {
      const timer = setTimeout(() => { timers.delete(timer); answer() }, reply.delayMs)
      timers.add(timer)
    } else {
      answer()
    }
  }
  thread.on('message', (message: FromProviderThread) => {
    if (message.type === 'request') { onRequest(message); return }
    const w = waiting
    waiting = null
    if (message.type === 'error') w?.reject(new Error(`fake provider: ${message.message}`))
    else w?.resolve(message.type === 'listening' ? message.port : port)
  })
  const ask = async (message: ToProviderThread): Promise<number> => await new Promise((resolve, reject) => {
    waiting = { resolve, reject }
    send(message)
  })

  const listen = async (): Promise<void> => {
    port = await ask({ type: 'listen', port })
    listening = true
  }
  const stop = async (): Promise<void> => {
    if (!listening) return
    listening = false
    for (const timer of timers) clearTimeout(timer)
    timers.clear()
    held.clear()
    await ask({ type: 'stop' })
  }
  t.teardown(async () => { await stop(); await thread.terminate() })
  await listen()

  return {
    get url () { return `http://127.0.0.1:${port}` },
    get port () { return port },
    requests,
    get inFlight () { return Atomics.load(counters, kInFlight) },
    get maxInFlight () { return Atomics.load(counters, kMaxInFlight) },
    get connections () { return Atomics.load(counters, kConnections) },
    respond: (fn) => { responder = fn },
    script: (...replies) => { scripted = [...scripted, ...replies] },
    scriptFor: (to, ...replies) => { scriptedFor.set(to, [...(scriptedFor.get(to) ?? []), ...replies]) },
    requestsTo: (to) => requests.filter((r) => r.to === to),
    stop,
    start: async () => { if (!listening) await listen() },
    releaseHeld: () => {
      const answers = [...held]
      held.clear()
      for (const answer of answers) answer()
    }
  }
}

/**
 * The most of `times` (ms, any order) that fall in one half-open window
 * [t, t + windowMs), as a rate is measured: what a provider's rate limit is
 * checked against (at most burst + perSecond per second).
 */
export function busiestWindow (times: readonly number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b)
  let busiest = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! - sorted[i]! < windowMs) j++
    busiest = Math.max(busiest, j - i)
  }
  return busiest
}

function parseRequest (method: string, url: string, headers: IncomingHttpHeaders, raw: string, at: number): FakeRequest {
  const path = url.split('?')[0]!
  if (/^\/2010-04-01\/Accounts\/[^/]+\/Messages\.json$/.test(path)) {
    const form: Record<string, string | string[]> = {}
    for (const [key, value] of new URLSearchParams(raw)) {
      const prior = form[key]
      form[key] = prior === undefined ? value : [...(Array.isArray(prior) ? prior : [prior]), value]
    }
    return { method, path, headers, raw, body: form, api: 'twilio', to: form['To'] as string | undefined, at }
  }
  let json: any
  try { json = JSON.parse(raw) } catch { json = undefined }
  if (path === '/v3/mail/send') return { method, path, headers, raw, body: json, api: 'sendgrid', to: json?.personalizations?.[0]?.to?.[0]?.email, at }
  if (path === '/api/messages') return { method, path, headers, raw, body: json, api: 'http', to: json?.to, at }
  return { method, path, headers, raw, body: json, api: 'other', to: undefined, at }
}

/** What each API answers when it accepts a message. */
function successOf (request: FakeRequest): Reply {
  switch (request.api) {
    case 'twilio': return { status: 201, body: { sid: `SM${randomBytes(16).toString('hex')}`, status: 'queued', to: request.to } }
    case 'sendgrid': return { status: 202, headers: { 'x-message-id': randomBytes(11).toString('base64url') }, body: '' }
    case 'http': return { status: 201, body: { id: `msg-${randomBytes(8).toString('hex')}` } }
    default: return { status: 404, body: { message: `no such endpoint: ${request.method} ${request.path}` } }
  }
}

/** The reply as the provider's thread writes it: status, headers and body text. */
function wireReply (request: FakeRequest, reply: Reply): WireReply {
  const status = reply.status ?? successOf(request).status ?? 200
  const text = reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
  const headers: Record<string, string> = { 'content-type': 'application/json', ...reply.headers }
  return reply.close === undefined ? { status, headers, text } : { status, headers, text, close: reply.close }
}

// ---------------------------------------------------------------------------
// Dispatch fixtures: a database prepared for a config, and messages in it.

export interface DispatchFixture {
  readonly db: TestDatabase
  readonly config: HermesConfig
  /** Inserts `count` messages on `channel`; returns their ids in insertion order. */
  insert (channel: string, count?: number, options?: InsertOptions): Promise<string[]>
  /** The dispatch columns of these messages (all when no ids), by id. */
  rows (ids?: readonly string[]): Promise<Map<string, DispatchRow>>
  /** Starts an in-process dispatcher for this config (stopped in teardown unless the test stops it). */
  startDispatcher (options?: Partial<Pick<DispatcherOptions, 'pollMs' | 'leaseMs' | 'stopTimeoutMs' | 'preclaimCredit'>>): Promise<Dispatcher>
  /** Polls until every one of `ids` has `status`; throws with the statuses seen at the deadline. */
  waitForStatus (ids: readonly string[], status: string, timeoutMs?: number): Promise<Map<string, DispatchRow>>
}

export interface InsertOptions {
  readonly from?: string
  readonly to?: string | ((i: number) => string)
  readonly body?: string
  readonly attachments?: readonly string[]
  readonly sentAt?: string
}

export interface DispatchRow {
  readonly id: string
  readonly status: string
  readonly attempts: number
  readonly providerMessageId: string | null
  readonly lastError: string | null
  readonly nextAttemptAt: Date
  readonly dispatchedAt: Date | null
  readonly claimedUntil: Date | null
}

/** A fresh database prepared for `channels` and `providers` (config file shapes; secrets are filled in). */
export async function dispatchFixture (t: Teardown, blocks: { providers: Record<string, unknown>; channels: Record<string, Record<string, unknown>> }, options: TestDatabaseOptions = {}): Promise<DispatchFixture> {
  const db = await testDatabase(t, options)
  const channels = Object.fromEntries(Object.entries(blocks.channels).map(([name, ch]) => [name, { secrets: ['test-secret'], ...ch }]))
  const config = resolveConfig({ logLevel: 'silent', database: { url: db.url }, channels, providers: blocks.providers }, {})
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  try { await prepareDatabase(client, config) } finally { await client.end() }
  let serial = 0

  const rows = async (ids?: readonly string[]): Promise<Map<string, DispatchRow>> => {
    const result = await db.query(
      `SELECT id::text, dispatch_status, dispatch_attempts, provider_message_id, last_error, next_attempt_at, dispatched_at, claimed_until
         FROM message WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[]) ORDER BY id`, [ids ?? null])
    return new Map(result.rows.map((r) => [r['id'] as string, {
      id: r['id'],
      status: r['dispatch_status'],
      attempts: r['dispatch_attempts'],
      providerMessageId: r['provider_message_id'],
      lastError: r['last_error'],
      nextAttemptAt: r['next_attempt_at'],
      dispatchedAt: r['dispatched_at'],
      claimedUntil: r['claimed_until']
    }]))
  }

  return {
    db,
    config,
    rows,
    insert: async (channel, count = 1, options = {}) => {
      const type = config.channels[channel]!.type
      const from = options.from ?? (type === 'email' ? 'alice@example.com' : '+14155550100')
      const externalIds: string[] = []
      const recipients: string[] = []
      for (let i = 0; i < count; i++) {
        serial++
        externalIds.push(`ext-${serial}`)
        recipients.push(typeof options.to === 'function' ? options.to(i) : options.to ?? (type === 'email' ? `r${serial}@example.com` : `+1212${String(serial).padStart(7, '0')}`))
      }
      return await insertMessages(db, channel, externalIds, from, recipients, options)
    },
    startDispatcher: async (options = {}) => {
      const dispatcher = new Dispatcher({
        databaseUrl: db.url,
        providers: Object.values(config.providers),
        channels: Object.values(config.channels),
        log: createLogger(process.env['DISPATCH_LOG'] ?? 'silent'),
        ...options
      })
      t.teardown(() => dispatcher.stop())
      await dispatcher.start()
      return dispatcher
    },
    waitForStatus: async (ids, status, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const seen = await rows(ids)
        if (ids.every((id) => seen.get(id)?.status === status)) return seen
        if (Date.now() > deadline) {
          const counts: Record<string, number> = {}
          for (const row of seen.values()) counts[row.status] = (counts[row.status] ?? 0) + 1
          throw new Error(`timed out after ${timeoutMs} ms waiting for ${ids.length} messages to be ${status}; seen ${JSON.stringify(counts)}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    }
  }
}

/** Parties, conversations, messages and attachments in five statements, whatever the count. */
async function insertMessages (db: TestDatabase, channel: string, externalIds: string[], from: string, recipients: string[], options: InsertOptions): Promise<string[]> {
  const addresses = [...new Set([from, ...recipients])]
  await db.query(
    `INSERT INTO party (phone, email)
     SELECT CASE WHEN a LIKE '+%' THEN a END, CASE WHEN a NOT LIKE '+%' THEN a END FROM unnest($1::text[]) AS a
     ON CONFLICT DO NOTHING`, [addresses])
  const pairs = `unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(ext, recipient, n)
     JOIN party s ON s.address = $3 JOIN party r ON r.address = x.recipient`
  await db.query(
    `INSERT INTO conversation (party_a_id, party_b_id)
     SELECT DISTINCT least(s.id, r.id), greatest(s.id, r.id) FROM ${pairs}
     ON CONFLICT DO NOTHING`, [externalIds, recipients, from])
  const result = await db.query(
    `INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, sent_at, received_at)
     SELECT ch.id, x.ext, cv.id, s.id, r.id, coalesce($5, 'hello ' || x.ext), $6, now()
       FROM ${pairs}
       JOIN conversation cv ON cv.party_a_id = least(s.id, r.id) AND cv.party_b_id = greatest(s.id, r.id)
       JOIN channel ch ON ch.name = $4
      ORDER BY x.n
     RETURNING id::text, external_id`,
    [externalIds, recipients, from, channel, options.body ?? null, options.sentAt ?? null])
  const idOf = new Map(result.rows.map((r) => [r['external_id'] as string, r['id'] as string]))
  const ids = externalIds.map((ext) => idOf.get(ext)!)
  if ((options.attachments ?? []).length > 0) {
    await db.query(
      `INSERT INTO attachment (message_id, position, url)
       SELECT m.id, u.position, u.url FROM unnest($1::bigint[]) AS m(id) CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS u(url, position)`,
      [ids, options.attachments])
  }
  return ids
}

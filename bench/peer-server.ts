/**
 * The bench's peer: what a Node team would build instead of Hermes. Fastify
 * checks the webhook's signature (HMAC-SHA256 of the raw body in
 * `x-provider-signature-256: sha256=<hex>`, as Hermes' seed channel), adds
 * one graphile-worker job per webhook inside the request and answers 202
 * once that insert has committed; a graphile-worker task delivers each job
 * to the provider (Twilio's Messages API) over keep-alive connections.
 *
 * PEER_ROLE=http runs the web server (and installs graphile-worker's schema),
 * PEER_ROLE=worker the job runner, PEER_ROLE=all both in one process: the
 * bench runs them as two processes, graphile-worker's documented deployment,
 * so that each can use a core as Hermes' threads do.
 *
 * Env: DATABASE_URL, SECRET, PROVIDER_URL (http://host:port), PORT,
 * PEER_POOL (HTTP side's PostgreSQL connections, default 20),
 * PEER_CONCURRENCY (jobs in flight, default 64). Prints
 * {"msg":"listening","port":N} when ready (N is 0 for the worker); stops on SIGTERM.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import Fastify from 'fastify'
import pg from 'pg'
import { Agent, request } from 'undici'
import { Logger, makeWorkerUtils, run, type Runner, type Task, type WorkerUtils } from 'graphile-worker'

const databaseUrl = process.env['DATABASE_URL'] ?? ''
const secret = process.env['SECRET'] ?? ''
const providerUrl = process.env['PROVIDER_URL'] ?? ''
const role = process.env['PEER_ROLE'] ?? 'all'
const poolSize = Number(process.env['PEER_POOL'] ?? 20)
const concurrency = Number(process.env['PEER_CONCURRENCY'] ?? 64)
if (databaseUrl === '' || secret === '') throw new Error('peer-server needs DATABASE_URL and SECRET')

interface Job { readonly id: string, readonly from: string, readonly to: string, readonly body: string }

function verified (raw: Buffer, header: unknown): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false
  const given = Buffer.from(header.slice(7), 'hex')
  const expected = createHmac('sha256', secret).update(raw).digest()
  return given.length === expected.length && timingSafeEqual(given, expected)
}

async function startHttp (): Promise<{ port: number, stop: () => Promise<void> }> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, application_name: 'peer-http' })
  const utils: WorkerUtils = await makeWorkerUtils({ pgPool: pool })
  await utils.migrate()
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 })
  // The signature covers the bytes as sent, so the body is parsed only after it is checked.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  app.post('/webhooks/sms', async (req, reply) => {
    const raw = req.body as Buffer
    if (!verified(raw, req.headers['x-provider-signature-256'])) return await reply.code(401).send({ error: 'bad signature' })
    let payload: Record<string, unknown>
    try { payload = JSON.parse(raw.toString('utf8')) as Record<string, unknown> } catch { return await reply.code(400).send({ error: 'not JSON' }) }
    const { id, from, to, body } = payload
    if (typeof id !== 'string' || typeof from !== 'string' || typeof to !== 'string' || typeof body !== 'string') return await reply.code(422).send({ error: 'id, from, to and body must be strings' })
    const job: Job = { id, from, to, body }
    await utils.addJob('deliver', job, { maxAttempts: 5 })
    const requestId = req.headers['x-request-id']
    if (typeof requestId === 'string') void reply.header('x-request-id', requestId)
    return await reply.code(202).send({ accepted: true })
  })
  await app.listen({ host: '127.0.0.1', port: Number(process.env['PORT'] ?? 0) })
  const address = app.server.address()
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    stop: async () => { await app.close(); await utils.release(); await pool.end() }
  }
}

async function startWorker (): Promise<{ stop: () => Promise<void> }> {
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 })
  const url = `${providerUrl}/2010-04-01/Accounts/ACbench/Messages.json`
  const authorization = `Basic ${Buffer.from('ACbench:bench').toString('base64')}`
  const deliver: Task = async (payload) => {
    const job = payload as Job
    const answer = await request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ From: job.from, To: job.to, Body: job.body }).toString()
    })
    await answer.body.text()
    if (answer.statusCode !== 201) throw new Error(`provider answered ${answer.statusCode}`)
  }
  const pool = new pg.Pool({ connectionString: databaseUrl, max: Math.min(concurrency, 20) + 2, application_name: 'peer-worker' })
  const runner: Runner = await run({
    pgPool: pool,
    concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: { deliver },
    // Only errors are printed: a log line per job would cost the peer more than its work.
    logger: new Logger(() => (level, message) => { if (level === 'error') process.stderr.write(`${message}\n`) })
  })
  return { stop: async () => { await runner.stop(); await pool.end(); await agent.close() } }
}

const stops: Array<() => Promise<void>> = []
let port = 0
if (role === 'http' || role === 'all') {
  const http = await startHttp()
  port = http.port
  stops.push(http.stop)
}
if (role === 'worker' || role === 'all') stops.push((await startWorker()).stop)
process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`)
process.once('SIGTERM', () => {
  void (async () => {
    for (const stop of stops) await stop().catch((error: unknown) => process.stderr.write(`peer stop: ${String(error)}\n`))
    process.exit(0)
  })()
})

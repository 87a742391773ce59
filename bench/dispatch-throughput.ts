// Run: node dist/bench/dispatch-throughput.js (DISPATCH_BENCH_MESSAGES=N, DISPATCH_BENCH_CONCURRENCY=C, default 64). How fast one dispatch thread delivers when the rate limit is out of the way: against a fast loopback Twilio in its own process (bench/fast-provider.ts), against the test suite's recording fake (in this process), and against mock (no network).
import t from 'tap'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import pg from 'pg'
import type { DispatchData, FromDispatch } from '../src/messages.js'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { cpuSeconds, startFastProvider, stopServer } from './processes.js'
import { postgresProcesses, threadSeconds } from './cpu-split.js'

const count = Number(process.env['DISPATCH_BENCH_MESSAGES'] ?? 10_000)
const concurrency = Number(process.env['DISPATCH_BENCH_CONCURRENCY'] ?? 64)
// tap's 30 s default for a file run on its own ended a 40,000-message run in its third measurement.
t.setTimeout(Math.max(60_000, count * 5))
const fast = { rateLimit: { perSecond: 1_000_000, burst: 1_000_000 }, concurrency, retry: { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 100 } }
const fake = await startFakeProvider(t)
const fastProvider = await startFastProvider()
t.teardown(async () => await stopServer(fastProvider))
const fastUrl = `http://127.0.0.1:${fastProvider.port}`
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' }, email: { provider: 'mock' }, mms: { provider: 'fast' } },
  providers: {
    fast: { kind: 'twilio', baseUrl: fastUrl, accountSid: 'AC1', authToken: 'tok', ...fast },
    twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', ...fast },
    mock: { kind: 'mock', ...fast }
  }
})

/** DISPATCH_BENCH_ONLY=fast: only the fast loopback Twilio measurement (for interleaved A/B runs of two builds). */
const only = process.env['DISPATCH_BENCH_ONLY']

const undeliveredSql = "SELECT 1 FROM message WHERE dispatch_status IN ('pending', 'sending') ORDER BY next_attempt_at LIMIT 1"

/** `instances` dispatch threads, each coordinating as a fleet instance of its own (src/fleet/) when `fleet` is set. */
async function measure (channel: string, instances = 1, fleet = false, callbackUrl: string | null = null, provider: number | null = null): Promise<{ perSecond: number; elapsedMs: number; sent: number; cpu: { threadUs: number; backendsUs: number; providerUs: number; sessions: string } }> {
  const ids = await fx.insert(channel, count)
  const data: DispatchData = {
    databaseUrl: fx.db.url,
    // callbackUrl is what publicUrl gives a Twilio provider: every send then carries StatusCallback.
    providers: Object.values(fx.config.providers).map((p) => ({ ...p, callbackUrl })),
    channels: Object.values(fx.config.channels),
    logLevel: 'silent',
    ...(fleet ? { fleet: { heartbeatMs: 250, deadAfterMs: 1000, pauseMs: 1000, maxPauseMs: 60_000 } } : {})
  }
  const threadsBefore = new Set(threadSeconds(process.pid).keys())
  const workers = await Promise.all(Array.from({ length: instances }, async () => {
    const worker = new Worker(new URL('../workers/dispatch.js', import.meta.url), { workerData: data })
    t.teardown(() => worker.terminate())
    const [ready] = await once(worker, 'message') as [FromDispatch]
    if (ready.type !== 'ready') throw new Error(JSON.stringify(ready))
    return worker
  }))
  // CPU of the window, read from the kernel's counters: the threads this measurement started (the dispatch
  // threads), and the PostgreSQL sessions of this database by application_name (claims, outcome writes).
  const newThreads = [...threadSeconds(process.pid).keys()].filter((tid) => !threadsBefore.has(tid))
  const client = new pg.Client({ connectionString: fx.db.url })
  await client.connect()
  const dbName = new URL(fx.db.url).pathname.slice(1)
  // The write-back session connects at the first outcome: its backend is looked up again at the end, counted from zero.
  const names = new Map<number, string>()
  const backendsNow = async (): Promise<Map<number, number>> => new Map([...await postgresProcesses(client, [dbName])].filter(([, name]) => name.startsWith('hermes-dispatch')).map(([pid, name]) => { names.set(pid, name); return [pid, cpuSeconds(pid)] }))
  const cpuNow = async (): Promise<{ thread: number; backends: Map<number, number>; provider: number }> => {
    const threads = threadSeconds(process.pid)
    return {
      thread: newThreads.reduce((sum, tid) => sum + (threads.get(tid) ?? 0), 0),
      backends: await backendsNow(),
      provider: provider === null ? 0 : cpuSeconds(provider)
    }
  }
  const cpu0 = await cpuNow()
  const started = performance.now()
  for (const worker of workers) worker.postMessage({ type: 'wake' })
  // While it runs, ask only whether anything is undelivered (each measurement runs alone): the
  // first entry of the due index. Counting all ids every 20 ms (as this bench first did) cost
  // about a sixth of the machine's CPU, taken from what is being measured.
  for (;;) {
    const { rows } = await fx.db.query(undeliveredSql)
    if (rows.length === 0) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const elapsedMs = performance.now() - started
  const cpu1 = await cpuNow()
  let backendSeconds = 0
  const byName: Record<string, number> = {}
  for (const [pid, seconds] of cpu1.backends) {
    backendSeconds += seconds - (cpu0.backends.get(pid) ?? 0)
    const name = names.get(pid)!
    byName[name] = (byName[name] ?? 0) + seconds - (cpu0.backends.get(pid) ?? 0)
  }
  await client.end()
  const us = (seconds: number): number => Math.round(seconds * 1e6 / count * 10) / 10
  const cpu = { threadUs: us(cpu1.thread - cpu0.thread), backendsUs: us(backendSeconds), providerUs: us(cpu1.provider - cpu0.provider), sessions: Object.entries(byName).map(([name, seconds]) => `${name} ${us(seconds)} us`).join(', ') }
  await Promise.all(workers.map(async (worker) => { worker.postMessage({ type: 'stop' }); await once(worker, 'exit') }))
  const { rows } = await fx.db.query("SELECT count(*)::int AS n FROM message WHERE id = ANY($1::bigint[]) AND dispatch_status = 'sent'", [ids])
  return { perSecond: Math.round(count / (elapsedMs / 1000)), elapsedMs: Math.round(elapsedMs), sent: rows[0]!['n'] as number, cpu }
}

t.test(`${count} messages through a fast loopback Twilio (uWebSockets.js, its own process; HTTP keep-alive, concurrency ${concurrency}), stored as sent`, async (t) => {
  const { perSecond, elapsedMs, sent, cpu } = await measure('mms', 1, false, null, fastProvider.child.pid!)
  t.equal(sent, count, 'every message stored as sent')
  t.comment(`fast twilio over loopback: ${count} sent in ${elapsedMs} ms = ${perSecond} sends/s`)
  t.comment(`fast twilio CPU per message: dispatch thread ${cpu.threadUs} us + dispatch sessions ${cpu.backendsUs} us = delivery ${(cpu.threadUs + cpu.backendsUs).toFixed(1)} us (${cpu.sessions}); provider ${cpu.providerUs} us`)
  const { accepted } = await (await fetch(`${fastUrl}/count`)).json() as { accepted: number }
  t.equal(accepted, count, 'each message sent once')
  t.ok(perSecond > 500, 'not pathologically slow')
})

if (only !== 'fast') t.test(`${count} messages through the test suite's fake Twilio (HTTP keep-alive, concurrency ${concurrency}), stored as sent`, async (t) => {
  const { perSecond, elapsedMs, sent } = await measure('sms')
  t.equal(sent, count, 'every message stored as sent')
  t.comment(`twilio over loopback: ${count} sent in ${elapsedMs} ms = ${perSecond} sends/s (connections opened: ${fake.connections})`)
  t.equal(fake.requests.length, count, 'each message sent once')
  t.ok(fake.connections <= concurrency, 'one pool, at most its concurrency in connections')
  t.ok(perSecond > 500, 'not pathologically slow')
})

if (only !== 'fast') t.test(`${count} messages through mock (no network): the claim/write-back ceiling`, async (t) => {
  const { perSecond, elapsedMs, sent } = await measure('email')
  t.equal(sent, count, 'every message stored as sent')
  t.comment(`mock: ${count} sent in ${elapsedMs} ms = ${perSecond} sends/s`)
  t.ok(perSecond > 500)
})

// DISPATCH_BENCH_INSTANCES=2: the fleet's coordination must not slow a provider with no real limit (issue: ≥ 0.8× one instance, same run).
const instances = Number(process.env['DISPATCH_BENCH_INSTANCES'] ?? 0)
if (instances >= 2) {
  t.test(`${count} messages through the fast Twilio: one fleet instance, then ${instances} sharing the database`, async (t) => {
    const one = await measure('mms', 1, true)
    const many = await measure('mms', instances, true)
    t.equal(one.sent + many.sent, 2 * count, 'every message stored as sent')
    const ratio = many.perSecond / one.perSecond
    t.comment(`fleet of 1: ${one.perSecond} sends/s; fleet of ${instances}: ${many.perSecond} sends/s (${ratio.toFixed(2)}x)`)
    t.ok(ratio >= 0.8, `${instances} instances deliver at least 0.8x what one does (${ratio.toFixed(2)}x)`)
  })
}

// DISPATCH_BENCH_CALLBACK_PAIRS=N: N interleaved pairs through the fast Twilio, each send with and without
// StatusCallback (publicUrl set or not), the order alternating so drift on a shared machine cancels out.
const callbackPairs = Number(process.env['DISPATCH_BENCH_CALLBACK_PAIRS'] ?? 0)
if (callbackPairs >= 1) {
  t.test(`${count} messages through the fast Twilio with StatusCallback and without it, ${callbackPairs} interleaved pairs`, async (t) => {
    const callbackUrl = 'https://hermes.bench.example/callbacks/fast'
    const ratios: number[] = []
    for (let pair = 0; pair < callbackPairs; pair++) {
      const withFirst = pair % 2 === 0
      const first = await measure('mms', 1, false, withFirst ? callbackUrl : null)
      const second = await measure('mms', 1, false, withFirst ? null : callbackUrl)
      const [withCallback, without] = withFirst ? [first, second] : [second, first]
      t.equal(withCallback.sent + without.sent, 2 * count, 'every message stored as sent')
      ratios.push(withCallback.perSecond / without.perSecond)
      t.comment(`pair ${pair + 1} (${withFirst ? 'with' : 'without'} first): with StatusCallback ${withCallback.perSecond} sends/s, without ${without.perSecond} sends/s (${ratios.at(-1)!.toFixed(2)}x)`)
    }
    const sorted = [...ratios].sort((a, b) => a - b)
    t.comment(`with/without StatusCallback: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)}x, range ${sorted[0]!.toFixed(2)}-${sorted.at(-1)!.toFixed(2)}x`)
  })
}

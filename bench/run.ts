/**
 * `npm run bench [-- options]`: Hermes and its reference points measured
 * side by side in one run (on a shared machine only ratios from the same
 * run mean anything). Starts everything it needs (PostgreSQL embedded or
 * DATABASE_URL, a loopback fake provider, the servers, wrk), stops it all.
 *
 * Options: --quick (short runs), --duration S (default 6), --connections N, --runs N,
 * --durable-connections N (durable's load; default 3000, see below),
 * --workload repeat|cold, --overload S, --rows N (storage scenarios),
 * --requests N (pre-signed requests in each HTTP scenario's file; a fifth as many warm-up ones),
 * --scenarios a,b,… (ceiling, naive, durable, durable-half, enqueued,
 * raw-copy, writer, overload, twilio, receipts; also sustained and peer, not run by default:
 * see bench/sustained.ts and its --sustained-* options), --out DIR (default bench/results),
 * --half-rate N (durable-half at a fixed N/s instead of half of durable's: the
 * same load for two builds being compared; its target is then not judged),
 * --fixed-rate N (durable, twilio and receipts each sent at a fixed N/s: on a
 * busy machine their rates swing with the neighbours' load, and the cpu ms per
 * stored request at one and the same load is what compares them; the
 * twilio and receipts targets are then not judged),
 * --provider-rate N (the provider's rate limit per second; default out of
 * the way, so dispatch keeps up with ingest and competes with it for CPU),
 * --instances N (the `fleet` scenario: durable ingest and delivery through N
 * instances sharing the database, each loaded by a wrk of its own, beside
 * `durable`'s one instance in the same run; alone it runs just those two).
 *
 * Durable Hermes is loaded with more connections than the others. Each
 * durable answer waits for its batch's commit, so a closed-loop load of N
 * connections can never get more than N / commit latency per second
 * (Little's law; bench/README.md has the figures per connection count). The
 * naive server stays at --connections: it is no faster with more or fewer,
 * so changing its load would only move the figure Hermes is compared with. `durable-half`
 * then sends at half the rate durable reached in the same run, on a fixed
 * schedule (an open loop), which is what "latency at half the sustained
 * rate" means; a closed loop at fewer connections measured a lower rate
 * and a latency that depended on the connection count chosen.
 * BENCH_HERMES_NODE_ARGS (space-separated) go on Hermes' node command line,
 * e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' for one profile per thread.
 */
import { mkdtempSync, chmodSync, writeFileSync, readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { generateRequests, generateTwilioRequests, twilioSid } from '../src/harness/gen-requests.js'
import { listeningPort, startFastProvider, startServer, stopServer, cpuSeconds, cpuSecondsOf, rssBytes, type Server } from './processes.js'
import { ensureWrk, runWrk, type WrkResult, type WrkTarget } from '../src/harness/wrk.js'
import { rawCopy, writerStage } from './storage.js'
import { median, printReport, writeReport, type ScenarioSummary, type Target } from './report.js'
import { EndToEnd, sustainedOptions } from './sustained.js'
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.js'
import { isServerKind, serverKinds, startPostgresServer } from '../src/harness/postgres-server.js'
import { freePort } from '../src/harness/free-port.js'
import { createLogger } from '../src/log.js'
import { resolveConfig } from '../src/config.js'
import { prepareDatabase } from '../src/store/schema.js'
import { cpuDelta, readCpu, startMeasuredHermes, type Sources } from './cpu-split.js'

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url))
const secret = 'bench-secret'
const hermesNodeArgs = (process.env['BENCH_HERMES_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '')
/** Where each measured HTTP run's two scrapes of /metrics (before, after) are written as JSON, if set. */
const metricsDir = process.env['BENCH_METRICS_DIR']
const allScenarios = ['ceiling', 'naive', 'durable', 'durable-half', 'enqueued', 'raw-copy', 'writer', 'overload', 'twilio', 'receipts'] as const
/** Provider-native scenarios: Twilio-signed forms, durable, judged against durable's rate in the same run. */
const publicUrl = 'https://hermes.bench.example'
const twilioToken = 'bench'
// Minutes each (a rate search; a peer with its own database), so only run when listed.
const endToEndScenarios = ['sustained', 'peer'] as const
type EndToEndScenario = typeof endToEndScenarios[number]
/** N instances on one database (--instances N), judged against durable's one instance in the same run. */
const fleetScenario = 'fleet' as const
type Scenario = typeof allScenarios[number] | EndToEndScenario | typeof fleetScenario
const isEndToEnd = (s: Scenario): s is EndToEndScenario => (endToEndScenarios as readonly string[]).includes(s)

const usage = `Usage: npm run bench -- [options]

Measures Hermes beside its reference points in one run (bench/README.md).

Options:
  --quick                    short runs (about a minute in all)
  --duration S               seconds per measured run (6; 3 with --quick)
  --runs N                   runs per HTTP scenario (3; 1 with --quick)
  --warmup S                 seconds of warm-up load before each HTTP run (3; 1 with --quick; 0: none)
  --connections N            connections of every HTTP scenario but durable's (100)
  --durable-connections N    durable's connections (3000)
  --workload repeat|cold     reused parties, or every party new (repeat)
  --overload S               overload scenario length (30; 5 with --quick)
  --rows N                   rows of the storage scenarios (100000; 20000 with --quick)
  --requests N               pre-signed requests per file (200000; 100000 with --quick), a fifth as many for warm-up
  --scenarios a,b,...        ${allScenarios.join(', ')} (all)
  --out DIR                  where the JSON and SVG reports go (bench/results)
  --provider-rate N          the provider's rate limit per second (1000000: out of the way)
  --half-rate N              durable-half at a fixed N requests/s instead of half of durable's
  --fixed-rate N             durable, twilio and receipts at a fixed N requests/s (compare their cpu ms per stored request; ratios not judged)
  --instances N              add the fleet scenario: durable ingest and delivery through N instances on
                             one database, each loaded by its own wrk with 1/N of durable's connections,
                             beside durable's one instance in the same run (alone: --scenarios durable,fleet)
  --sustained-seconds S      sustained: measured seconds per rate step (60; 10 with --quick)
  --sustained-warmup S       sustained: warm-up seconds per step (10; 2 with --quick)
  --sustained-steps N        sustained: rate steps of the search (5; 3 with --quick)
  --sustained-min N          sustained: the first rate tried, per second (500)
  --sustained-max N          sustained: the highest rate tried (durable's rate in the same run)
  --database-url URL         run on this PostgreSQL (a database Hermes may empty); else DATABASE_URL
  --postgres KIND            start a server for the run: embedded (default), embedded-14 … embedded-17,
                             or debian-15 (Debian's stock postgresql-15, JIT on)
  -h, --help                 this help

Environment: DATABASE_URL (else an embedded PostgreSQL), BENCH_HERMES_NODE_ARGS, BENCH_METRICS_DIR.
`
const stringOption = { type: 'string' } as const
let parsed: ReturnType<typeof parseBenchArgs>
function parseBenchArgs () {
  return parseArgs({
    options: {
      quick: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      duration: stringOption,
      runs: stringOption,
      warmup: stringOption,
      connections: stringOption,
      'durable-connections': stringOption,
      workload: stringOption,
      overload: stringOption,
      rows: stringOption,
      requests: stringOption,
      scenarios: stringOption,
      out: stringOption,
      'provider-rate': stringOption,
      'half-rate': stringOption,
      'fixed-rate': stringOption,
      instances: stringOption,
      'sustained-seconds': stringOption,
      'sustained-warmup': stringOption,
      'sustained-steps': stringOption,
      'sustained-min': stringOption,
      'sustained-max': stringOption,
      'database-url': stringOption,
      postgres: stringOption
    },
    strict: true
  })
}
try {
  parsed = parseBenchArgs()
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n\n${usage}`)
  process.exit(2)
}
if (parsed.values.help === true) {
  process.stdout.write(usage)
  process.exit(0)
}
function option (name: keyof typeof parsed.values, fallback: string): string {
  const value = parsed.values[name]
  return typeof value === 'string' ? value : fallback
}
const quick = parsed.values.quick === true
const duration = Number(option('duration', quick ? '3' : '6'))
const connections = Number(option('connections', '100'))
const durableConnections = Number(option('durable-connections', '3000'))
const warmupSeconds = Number(option('warmup', quick ? '1' : '3'))
if (!(Number.isInteger(warmupSeconds) && warmupSeconds >= 0)) throw new Error('--warmup must be a whole number of seconds')
const runs = Number(option('runs', quick ? '1' : '3'))
const overloadSeconds = Number(option('overload', quick ? '5' : '30'))
const storageRows = Number(option('rows', quick ? '20000' : '100000'))
// Every wrk run parses its whole file first (seconds for 100000 on a busy machine): short runs need fewer.
const requestCount = Number(option('requests', quick ? '100000' : '200000'))
const warmupCount = parsed.values.requests === undefined ? (quick ? 20_000 : 50_000) : Math.max(1, Math.floor(requestCount / 5))
const workload = option('workload', 'repeat') as 'repeat' | 'cold'
const instances = Number(option('instances', '1'))
if (!(Number.isInteger(instances) && instances >= 1 && instances <= 8)) throw new Error('--instances must be an integer from 1 to 8')
// --instances alone runs durable and the fleet beside it; with --scenarios the fleet comes last.
const scenarios = option('scenarios', instances > 1 ? `durable,${fleetScenario}` : allScenarios.join(',')).split(',') as Scenario[]
if (instances > 1 && !scenarios.includes(fleetScenario)) scenarios.push(fleetScenario)
if (scenarios.includes(fleetScenario) && instances < 2) throw new Error('the fleet scenario needs --instances N (2 or more)')
if (scenarios.includes(fleetScenario) && !(scenarios.indexOf('durable') >= 0 && scenarios.indexOf('durable') < scenarios.indexOf(fleetScenario))) {
  throw new Error('the fleet scenario is judged against durable\'s one instance in the same run: list durable before it in --scenarios')
}
const outDir = option('out', here('../../bench/results'))
const providerRate = Number(option('provider-rate', '1000000'))
if (!(providerRate > 0)) throw new Error('--provider-rate must be a positive number')
for (const s of scenarios) if (![...allScenarios, ...endToEndScenarios, fleetScenario].includes(s)) throw new Error(`unknown scenario ${s}; known: ${[...allScenarios, ...endToEndScenarios, fleetScenario].join(', ')}`)
if (scenarios.some(isEndToEnd)) sustainedOptions(quick) // checks the --sustained-* options before anything starts
// A fixed rate for durable-half instead of half of durable's: latency compared between two builds at the same load.
const halfRate = option('half-rate', '') === '' ? undefined : Number(option('half-rate', ''))
if (halfRate !== undefined && !(Number.isInteger(halfRate) && halfRate > 0)) throw new Error('--half-rate must be a positive integer (requests per second)')
const fixedRate = option('fixed-rate', '') === '' ? undefined : Number(option('fixed-rate', ''))
if (fixedRate !== undefined && !(Number.isInteger(fixedRate) && fixedRate > 0)) throw new Error('--fixed-rate must be a positive integer (requests per second)')
if (halfRate === undefined && scenarios.includes('durable-half') && !(scenarios.indexOf('durable') >= 0 && scenarios.indexOf('durable') < scenarios.indexOf('durable-half'))) {
  throw new Error('durable-half sends at half the rate durable reached in the same run: list durable before it in --scenarios (or give --half-rate N)')
}
for (const [name, value] of [['connections', connections], ['durable-connections', durableConnections], ['requests', requestCount]] as const) {
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`--${name} must be a positive integer`)
}

interface HttpRun extends WrkResult { readonly confirmed: number, readonly distinctAccepted: number, readonly cpu: number, readonly postgresCpu: number, readonly commitP99: number | null, readonly rssBefore: number, readonly rssAfter: number, readonly busiestThread: string, readonly recordsPerTask: number | null, readonly dispatchedPerSecond: number | null, readonly preclaimedShare: number | null, readonly cpuSplit: Record<string, number> | null }

async function main (): Promise<void> {
  await ensureWrk()
  const work = mkdtempSync(join(tmpdir(), 'hermes-bench-'))
  chmodSync(work, 0o777)
  const cleanup: Array<() => Promise<void>> = []
  try {
    let databaseUrl = option('database-url', process.env['DATABASE_URL'] ?? '')
    const kind = option('postgres', 'embedded')
    if (!isServerKind(kind)) throw new Error(`--postgres ${kind}: not a server kind (${serverKinds.join(', ')})`)
    if (databaseUrl === '' && kind !== 'embedded') {
      const server = await startPostgresServer(kind, { settings: { max_connections: '300' } })
      cleanup.push(server.destroy)
      const admin = new pg.Client({ connectionString: server.adminUrl })
      await admin.connect()
      await admin.query('CREATE DATABASE hermes_bench')
      await admin.end()
      const url = new URL(server.adminUrl)
      url.pathname = '/hermes_bench'
      databaseUrl = url.href
    } else if (databaseUrl === '') {
      const db = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), port: await freePort(), log: createLogger('warn') })
      databaseUrl = db.url
      cleanup.push(db.stop)
    }
    const fake = await startFastProvider()
    cleanup.push(async () => await stopServer(fake))
    const configObject = {
      host: '127.0.0.1',
      logLevel: 'info',
      database: { url: databaseUrl },
      publicUrl,
      channels: { sms: { provider: 'twilio', secrets: [secret] }, twilio: { type: 'sms', provider: 'twilio', format: 'twilio' } },
      providers: { twilio: { kind: 'twilio', baseUrl: `http://127.0.0.1:${fake.port}`, accountSid: 'ACbench', authToken: twilioToken, rateLimit: { perSecond: providerRate, burst: Math.min(providerRate, 10_000) }, concurrency: 64 } }
    }
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    cleanup.push(async () => await client.end())
    await prepareDatabase(client, resolveConfig(configObject, {}))
    const postgresVersion = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version

    const requestsFile = join(work, 'requests.txt')
    // wrk parses this file in every thread of every run, so it is kept moderate; a run that sends more
    // wraps around and re-sends ids (deduplicated: they count once as stored, and loss is per distinct id).
    await generateRequests(requestsFile, requestCount, secret, workload, `b${Date.now().toString(36)}`)
    // Each server is warmed up before it is measured (JIT, connection pools, PostgreSQL's caches), with
    // ids of their own so that the measured requests are all new to it.
    const warmupFile = join(work, 'warmup.txt')
    await generateRequests(warmupFile, warmupCount, secret, workload, `w${Date.now().toString(36)}`)
    // The fleet's instances each get ids of their own (the first one durable's), so none of their work is a duplicate of another's.
    const fleetFiles = [requestsFile]
    for (let i = 1; scenarios.includes(fleetScenario) && i < instances; i++) {
      fleetFiles.push(join(work, `requests-${i}.txt`))
      await generateRequests(fleetFiles[i]!, requestCount, secret, workload, `f${i}${Date.now().toString(36)}`)
    }
    // The provider-native scenarios: inbound SMS forms, and status callbacks for messages stored beforehand.
    const native = new Map<'twilio' | 'receipts', { file: string, warmup: string, runId: string, warmupRunId: string, count: number, warmupCount: number }>()
    for (const scenario of ['twilio', 'receipts'] as const) {
      if (!scenarios.includes(scenario)) continue
      const kind = scenario === 'twilio' ? 'inbound' : 'status'
      const url = `${publicUrl}${scenario === 'twilio' ? '/webhooks/twilio' : '/callbacks/twilio'}`
      const entry = { file: join(work, `${scenario}.txt`), warmup: join(work, `${scenario}-warmup.txt`), runId: `${scenario[0]}${Date.now().toString(36)}`, warmupRunId: `${scenario[0]}w${Date.now().toString(36)}`, count: requestCount, warmupCount }
      await generateTwilioRequests(entry.file, entry.count, twilioToken, url, kind, workload, entry.runId)
      await generateTwilioRequests(entry.warmup, entry.warmupCount, twilioToken, url, kind, workload, entry.warmupRunId)
      native.set(scenario, entry)
    }
    /** The messages the receipts scenario's status callbacks are about, already sent (provider message id stored). */
    const storeSentMessages = async (runId: string, count: number): Promise<void> => {
      await client.query(`
        WITH a AS (INSERT INTO party (phone) VALUES ('+14150000001') ON CONFLICT (address) DO UPDATE SET phone = EXCLUDED.phone RETURNING id),
             b AS (INSERT INTO party (phone) VALUES ('+12120000001') ON CONFLICT (address) DO UPDATE SET phone = EXCLUDED.phone RETURNING id),
             c AS (INSERT INTO conversation (party_a_id, party_b_id) SELECT least(a.id, b.id), greatest(a.id, b.id) FROM a, b
                   ON CONFLICT (party_a_id, party_b_id) DO UPDATE SET party_a_id = EXCLUDED.party_a_id RETURNING id)
        INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, received_at, dispatch_status, provider_message_id, dispatched_at)
        SELECT ch.id, 'sent-' || $1 || '-' || i, c.id, a.id, b.id, 'sent', now(), 'sent', $2 || lpad(i::text, 8, '0'), now()
        FROM generate_series(0, $3::int - 1) AS i, a, b, c, channel ch WHERE ch.name = 'sms'`, [runId, twilioSid(runId, 0).slice(0, -8), count])
    }

    const reset = async (): Promise<void> => {
      await client.query('TRUNCATE attachment, attachment_file, delivery_event, message')
      // Every run starts from the same state: the naive server's upserts leave dead party and conversation
      // rows behind, and a checkpoint that falls inside a run slows it.
      await client.query('VACUUM ANALYZE party, conversation')
      // CHECKPOINT needs a superuser or pg_checkpoint; on a DATABASE_URL without either the runs go on without it.
      await client.query('CHECKPOINT').catch((error: unknown) => { if ((error as { code?: string }).code !== '42501') throw error })
    }
    /** Distinct ids answered 202, and how many of them are in the database. */
    const confirm = async (dir: string, receipts = false): Promise<{ distinct: number, stored: number }> => {
      const ids = [...new Set(readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l !== '')))]
      if (ids.length === 0) return { distinct: 0, stored: 0 }
      // A receipt counts once its event is stored and linked to its message.
      const sql = receipts
        ? 'SELECT count(*)::int AS n FROM delivery_event WHERE provider_message_id = ANY($1) AND message_id IS NOT NULL'
        : 'SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1)'
      const stored = Number((await client.query<{ n: number }>(sql, [ids])).rows[0]!.n)
      return { distinct: ids.length, stored }
    }
    const scrape = async (port: number): Promise<Map<string, number>> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      return new Map(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]))
    }
    const quantile = (m: Map<string, number>, name: string, q: number): number | null => {
      const buckets = [...m].filter(([k]) => k.startsWith(`${name}_bucket{`)).map(([k, v]) => [k.includes('+Inf') ? Infinity : Number(/le="([^"]+)"/.exec(k)![1]), v] as const).sort((a, b) => a[0] - b[0])
      const total = buckets.at(-1)?.[1] ?? 0
      if (total === 0) return null
      const found = buckets.find(([, v]) => v >= q * total)
      return found === undefined || !Number.isFinite(found[0]) ? null : found[0] * 1000
    }

    /** Messages delivered since Hermes started (all providers). */
    const providerSends = (m: Map<string, number>): number => [...m].filter(([k]) => k.startsWith('hermes_dispatch_sends_total{') && k.includes('outcome="sent"')).reduce((sum, [, v]) => sum + v, 0)
    /** Messages the writer handed to dispatch pre-claimed (the rest needed a claim statement). */
    const preclaims = (m: Map<string, number>): number => [...m].filter(([k]) => k.startsWith('hermes_dispatch_preclaimed_total{')).reduce((sum, [, v]) => sum + v, 0)

    let configFiles = 0
    /** Hermes with its threads named (bench/thread-ids.cjs), so that the CPU of a window splits per thread and per PostgreSQL session. */
    const startHermes = async (extra: Record<string, unknown>): Promise<{ server: Server, sources: Sources }> => {
      const file = join(work, `hermes-${++configFiles}.json`)
      const threadsFile = join(work, `threads-${configFiles}.txt`)
      writeFileSync(file, JSON.stringify({ ...configObject, port: await freePort(), ...extra }))
      const { server, label } = await startMeasuredHermes(file, threadsFile, hermesNodeArgs)
      const sources: Sources = { nodes: [{ prefix: 'hermes', pid: server.child.pid!, threadsFile, label }], processes: [{ label: 'fake provider', pid: fake.child.pid! }], client, databases: [new URL(databaseUrl).pathname.slice(1) || 'postgres'], postgresGroup: (name) => `postgres ${name === 'unnamed' ? 'bench client' : name}` }
      return { server, sources }
    }

    const httpRun = async (scenario: Scenario, conns: number, seconds: number, rate?: number): Promise<HttpRun> => {
      await reset()
      let server: Server
      let sources: Sources | null = null
      const hermes = scenario === 'durable' || scenario === 'durable-half' || scenario === 'enqueued' || scenario === 'overload' || scenario === 'twilio' || scenario === 'receipts'
      const nativeFiles = scenario === 'twilio' || scenario === 'receipts' ? native.get(scenario)! : undefined
      const target: WrkTarget = nativeFiles === undefined
        ? {}
        : { path: scenario === 'twilio' ? '/webhooks/twilio' : '/callbacks/twilio', contentType: 'application/x-www-form-urlencoded', signatureHeader: 'x-twilio-signature' }
      if (scenario === 'receipts') {
        await storeSentMessages(nativeFiles!.runId, nativeFiles!.count)
        await storeSentMessages(nativeFiles!.warmupRunId, nativeFiles!.warmupCount)
        await client.query('VACUUM ANALYZE message')
      }
      const measuredFile = nativeFiles?.file ?? requestsFile
      if (scenario === 'ceiling') server = await startServer(here('./ceiling-server.js'), [], { PORT: String(await freePort()) }, listeningPort)
      else if (scenario === 'naive') server = await startServer(here('./naive-server.js'), [], { PORT: String(await freePort()), DATABASE_URL: databaseUrl, SECRET: secret }, listeningPort)
      // Overload: a ring smaller than the connections, so that a closed-loop load generator
      // offers more than the pipeline absorbs and back-pressure shows as 503s.
      else ({ server, sources } = await startHermes(scenario === 'enqueued' ? { ack: 'enqueued' } : scenario === 'overload' ? { buffer: { maxMessages: Math.max(10, Math.floor(conns / 4)), maxBytes: 4 * 2 ** 20 } } : {}))
      const acceptedDir = join(work, `accepted-${scenario}-${Date.now()}`)
      mkdirSync(acceptedDir)
      const pid = server.child.pid!
      // RSS is compared after a warm-up (heap grown, ring pages touched), so growth means a leak or an unbounded queue.
      // Under this load V8's old generation takes about 25 s to reach the size it then saws around (npm run soak:
      // 185 MiB rising to ~290 by 25 s, then 280-306 for the next 70 s), so the warm-up lasts as long as the run.
      const pacing = rate === undefined ? {} : { rate }
      if (scenario === 'overload') await runWrk({ port: server.port, requestsFile, duration: quick ? 1 : seconds, connections: conns })
      else if (warmupSeconds > 0) await runWrk({ port: server.port, requestsFile: nativeFiles?.warmup ?? warmupFile, duration: warmupSeconds, connections: conns, target, ...pacing })
      const rssBefore = rssBytes(pid)
      const before = hermes ? await scrape(server.port) : null
      const sentBefore = before === null ? 0 : providerSends(before)
      const preclaimedBefore = before === null ? 0 : preclaims(before)
      const cpu0 = cpuSeconds(pid)
      const pg0 = cpuSecondsOf('postgres')
      const split0 = sources === null ? null : await readCpu(sources)
      let result: WrkResult
      let metrics: Map<string, number> | null = null
      let cpu: number
      let postgresCpu: number
      let rssAfter: number
      let cpuSplit: Record<string, number> | null = null
      try {
        result = await runWrk({ port: server.port, requestsFile: measuredFile, duration: seconds, connections: conns, target, ...(hermes || scenario === 'naive' ? { acceptedDir } : {}), ...pacing })
        cpu = cpuSeconds(pid) - cpu0
        postgresCpu = cpuSecondsOf('postgres') - pg0
        if (sources !== null && split0 !== null) cpuSplit = cpuDelta(split0, await readCpu(sources))
        rssAfter = rssBytes(pid)
        if (hermes) metrics = await scrape(server.port)
        // BENCH_METRICS_DIR: both scrapes of the measured window, for reading Hermes' own histograms (bench/README.md, "Profiling a run").
        if (metricsDir !== undefined && before !== null && metrics !== null) writeFileSync(join(metricsDir, `${scenario}-${Date.now()}.json`), JSON.stringify({ before: [...before], after: [...metrics] }))
      } finally {
        await stopServer(server) // Hermes drains on SIGTERM: whatever it accepted is stored before it exits
      }
      const threads = [...(metrics ?? new Map<string, number>())].filter(([k]) => k.startsWith('hermes_event_loop_utilization{'))
      const busiest = threads.sort((a, b) => b[1] - a[1])[0]
      return {
        ...result,
        ...(await (async () => {
          if (scenario === 'ceiling') return { confirmed: 0, distinctAccepted: 0 }
          const c = await confirm(acceptedDir, scenario === 'receipts')
          return { confirmed: c.stored, distinctAccepted: c.distinct }
        })()),
        cpu,
        postgresCpu,
        rssBefore,
        rssAfter,
        commitP99: metrics === null ? null : quantile(metrics, 'hermes_commit_latency_seconds', 0.99),
        busiestThread: busiest === undefined ? '' : `${/thread="([^"]+)"/.exec(busiest[0])![1]} ${busiest[1].toFixed(2)}`,
        // How well the feeder batches: ring records per worker task (each task costs the main thread a postMessage and a wake-up).
        recordsPerTask: metrics === null ? null : ((metrics.get('hermes_worker_records_total{outcome="accepted"}') ?? 0) + (metrics.get('hermes_worker_records_total{outcome="rejected"}') ?? 0)) / Math.max(1, metrics.get('hermes_worker_task_seconds_count') ?? 0),
        // Delivery runs beside ingest on the same cores; whether it kept pace belongs in the report.
        dispatchedPerSecond: metrics === null ? null : (providerSends(metrics) - sentBefore) / seconds,
        // Of the messages handed to dispatch in the window, how many came pre-claimed by the writer.
        preclaimedShare: metrics === null ? null : (preclaims(metrics) - preclaimedBefore) / Math.max(1, providerSends(metrics) - sentBefore),
        cpuSplit
      }
    }

    /**
     * Durable ingest through `instances` Hermes processes on the one database (the fleet of docs/fleet.md,
     * default fleet settings), each loaded by a wrk of its own with an equal part of `conns`, so the
     * load generator's threads and connections are those of the one-instance run. Delivery runs in every
     * instance beside ingest, on the provider limits split between them.
     */
    const fleetRun = async (conns: number, seconds: number): Promise<HttpRun> => {
      await reset()
      const servers = await Promise.all(Array.from({ length: instances }, async () => (await startHermes({})).server))
      try {
        // A newcomer sends nothing until the others have shrunk their shares (two heartbeats): wait for every share.
        const deadline = Date.now() + 30_000
        while (!(await Promise.all(servers.map(async (s) => (await scrape(s.port)).get('hermes_fleet_share_concurrency{provider="twilio"}') ?? 0))).every((c) => c > 0)) {
          if (Date.now() > deadline) throw new Error('the fleet never split its provider limits')
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
        const threads = Math.max(1, Math.floor(2 / instances))
        const part = Math.max(threads, Math.floor(conns / instances))
        if (warmupSeconds > 0) await Promise.all(servers.map(async (s) => await runWrk({ port: s.port, requestsFile: warmupFile, duration: warmupSeconds, connections: part, threads })))
        const dirs = servers.map((_, i) => join(work, `accepted-fleet-${i}-${Date.now()}`))
        for (const dir of dirs) mkdirSync(dir)
        const before = await Promise.all(servers.map(async (s) => await scrape(s.port)))
        const pids = servers.map((s) => s.child.pid!)
        const rssBefore = pids.reduce((sum, pid) => sum + rssBytes(pid), 0)
        const cpu0 = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
        const pg0 = cpuSecondsOf('postgres')
        const results = await Promise.all(servers.map(async (s, i) => await runWrk({ port: s.port, requestsFile: fleetFiles[i]!, duration: seconds, connections: part, threads, acceptedDir: dirs[i]! })))
        const cpu = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpu0
        const postgresCpu = cpuSecondsOf('postgres') - pg0
        const rssAfter = pids.reduce((sum, pid) => sum + rssBytes(pid), 0)
        const after = await Promise.all(servers.map(async (s) => await scrape(s.port)))
        await Promise.all(servers.map(async (s) => await stopServer(s)))
        const confirmed = await Promise.all(dirs.map(async (dir) => await confirm(dir)))
        const sum = (f: (r: WrkResult) => number): number => results.reduce((a, r) => a + f(r), 0)
        const max = (f: (r: WrkResult) => number): number => Math.max(...results.map(f))
        const sent = after.reduce((a, m, i) => a + providerSends(m) - providerSends(before[i]!), 0)
        const preclaimed = after.reduce((a, m, i) => a + preclaims(m) - preclaims(before[i]!), 0)
        const threadsOf = after.flatMap((m, i) => [...m].filter(([k]) => k.startsWith('hermes_event_loop_utilization{')).map(([k, v]) => [`#${i + 1} ${/thread="([^"]+)"/.exec(k)![1]}`, v] as const))
        const busiest = threadsOf.sort((a, b) => b[1] - a[1])[0]
        const commitP99s = after.map((m) => quantile(m, 'hermes_commit_latency_seconds', 0.99)).filter((q): q is number => q !== null)
        return {
          rps: sum((r) => r.rps),
          // Latency: the worse instance's (the load balancer's clients see both).
          p50: max((r) => r.p50),
          p99: max((r) => r.p99),
          p999: max((r) => r.p999),
          accepted: sum((r) => r.accepted),
          refused: sum((r) => r.refused),
          retryAfter: sum((r) => r.retryAfter),
          other: sum((r) => r.other),
          requests: sum((r) => r.requests),
          socketErrors: sum((r) => r.socketErrors),
          confirmed: confirmed.reduce((a, c) => a + c.stored, 0),
          distinctAccepted: confirmed.reduce((a, c) => a + c.distinct, 0),
          cpu,
          postgresCpu,
          rssBefore,
          rssAfter,
          commitP99: commitP99s.length === 0 ? null : Math.max(...commitP99s),
          busiestThread: busiest === undefined ? '' : `${busiest[0]} ${busiest[1].toFixed(2)}`,
          recordsPerTask: null,
          dispatchedPerSecond: sent / seconds,
          preclaimedShare: preclaimed / Math.max(1, sent),
          cpuSplit: null
        }
      } finally {
        await Promise.all(servers.map(async (s) => await stopServer(s)))
      }
    }

    const endToEnd = new EndToEnd({ work, client, databaseUrl, secret, configObject, fake, hermesNodeArgs, warmupFile, requestsFile, workload, quick, duration, warmupSeconds, durableConnections, reset, scrape })
    cleanup.push(async () => await endToEnd.close())
    const results = new Map<Scenario, HttpRun[]>()
    const storage = new Map<Scenario, number[]>()
    /** CPU per row of each storage run (backend + client, µs): unlike rows/s, hardly moved by other load on the machine. */
    const storageCpu = new Map<Scenario, number[]>()
    for (let run = 1; run <= runs; run++) {
      for (const scenario of scenarios) {
        if (isEndToEnd(scenario)) {
          const durable = results.get('durable')?.at(-1)
          await endToEnd.run(scenario, run, scenarios, durable === undefined ? undefined : durable.confirmed / duration)
          continue
        }
        if (scenario === 'raw-copy' || scenario === 'writer') {
          await reset()
          const r = scenario === 'raw-copy'
            ? await rawCopy(databaseUrl, storageRows, workload, `r${run}${Date.now().toString(36)}`)
            : await writerStage(databaseUrl, storageRows, workload, `w${run}${Date.now().toString(36)}`)
          storage.set(scenario, [...(storage.get(scenario) ?? []), r.rowsPerSecond])
          storageCpu.set(scenario, [...(storageCpu.get(scenario) ?? []), r.backendUsPerRow + r.clientUsPerRow])
          process.stderr.write(`${scenario} run ${run}: ${r.rowsPerSecond.toFixed(0)} rows/s, CPU ${r.backendUsPerRow.toFixed(1)} us/row backend + ${r.clientUsPerRow.toFixed(1)} us/row client\n`)
          continue
        }
        if (scenario === 'overload' && run > 1) continue
        if (scenario === fleetScenario) {
          const r = await fleetRun(durableConnections, duration)
          results.set(scenario, [...(results.get(scenario) ?? []), r])
          const one = results.get('durable')?.at(-1)
          process.stderr.write(`${scenario} run ${run}: ${instances} instances, ${r.rps.toFixed(0)} req/s, p99 ${r.p99} ms, 202=${r.accepted} confirmed=${r.confirmed} 503=${r.refused} other=${r.other}, delivered ${r.dispatchedPerSecond!.toFixed(0)}/s` +
            (one === undefined ? '' : `; / durable's one instance: ingest ${(r.confirmed / one.confirmed).toFixed(2)}, delivery ${(r.dispatchedPerSecond! / one.dispatchedPerSecond!).toFixed(2)}`) + '\n')
          continue
        }
        // durable-half's connections only need to outnumber the requests in flight at its rate.
        const conns = scenario === 'durable' || scenario === 'twilio' || scenario === 'receipts' ? durableConnections : scenario === 'durable-half' ? Math.max(2, Math.floor(durableConnections / 4)) : scenario === 'overload' ? connections * 8 : connections
        const rate = scenario === 'durable-half'
          ? halfRate ?? Math.max(1, Math.round(results.get('durable')!.at(-1)!.confirmed / duration / 2))
          : scenario === 'durable' || scenario === 'twilio' || scenario === 'receipts' ? fixedRate : undefined
        const r = await httpRun(scenario, conns, scenario === 'overload' ? overloadSeconds : duration, rate)
        results.set(scenario, [...(results.get(scenario) ?? []), r])
        process.stderr.write(`${scenario} run ${run}: ${rate === undefined ? '' : `sent at ${rate}/s, `}${r.rps.toFixed(0)} req/s, p99 ${r.p99} ms, 202=${r.accepted} confirmed=${r.confirmed} 503=${r.refused} other=${r.other}\n`)
        // Where the window's CPU went, in ms per request stored: what makes one scenario dearer than another.
        if (r.cpuSplit !== null && r.confirmed > 0) {
          const perStored = Object.entries(r.cpuSplit).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(1000 * v / r.confirmed).toFixed(3)}`)
          process.stderr.write(`  cpu ms per stored request: ${perStored.join(', ')}\n`)
        }
      }
    }

    const summaries: ScenarioSummary[] = scenarios.filter((s) => !isEndToEnd(s)).map((scenario) => {
      if (scenario === 'raw-copy' || scenario === 'writer') {
        const xs = storage.get(scenario) ?? []
        return { scenario, rps: median(xs), rpsMin: Math.min(...xs), rpsMax: Math.max(...xs), storedPerSecond: median(xs), p50: null, p99: null, p999: null, commitP99: null, cpuSeconds: null, postgresCpuSeconds: null, note: `rows/s, ${storageRows} rows, commit per 5000` }
      }
      const rs = results.get(scenario) ?? []
      const seconds = scenario === 'overload' ? overloadSeconds : duration
      // Only what was answered 202 *and* is in the database counts (the ceiling stores nothing).
      const counted = rs.map((r) => scenario === 'ceiling' ? r.rps : r.confirmed / seconds)
      const note = scenario === 'overload'
        ? `503 share ${(100 * median(rs.map((r) => r.refused / Math.max(1, r.accepted + r.refused + r.other)))).toFixed(0)}%, Retry-After on ${median(rs.map((r) => r.refused === 0 ? 1 : r.retryAfter / r.refused)) * 100}% of 503s, RSS ${(median(rs.map((r) => r.rssBefore)) / 2 ** 20).toFixed(0)}→${(median(rs.map((r) => r.rssAfter)) / 2 ** 20).toFixed(0)} MiB, lost ${median(rs.map((r) => r.distinctAccepted - r.confirmed))}`
        : [
            rs[0]?.busiestThread !== undefined && rs[0].busiestThread !== '' ? `busiest thread ${rs[0].busiestThread}` : '',
            rs[0]?.recordsPerTask != null ? `${median(rs.map((r) => r.recordsPerTask ?? 0)).toFixed(1)} records/task` : '',
            rs[0]?.dispatchedPerSecond != null ? `dispatch sent ${median(rs.map((r) => r.dispatchedPerSecond ?? 0)).toFixed(0)}/s (${(100 * median(rs.map((r) => r.preclaimedShare ?? 0))).toFixed(0)}% pre-claimed)` : ''
          ].filter((s) => s !== '').join(', ')
      return {
        scenario,
        rps: median(counted),
        rpsMin: Math.min(...counted),
        rpsMax: Math.max(...counted),
        storedPerSecond: scenario === 'ceiling' ? null : median(rs.map((r) => r.confirmed / seconds)),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        p999: median(rs.map((r) => r.p999)),
        commitP99: rs[0]?.commitP99 === undefined ? null : median(rs.map((r) => r.commitP99 ?? Number.NaN)),
        cpuSeconds: median(rs.map((r) => r.cpu)),
        postgresCpuSeconds: median(rs.map((r) => r.postgresCpu)),
        note
      }
    })
    summaries.push(...endToEnd.summaries())
    const by = (s: Scenario): ScenarioSummary | undefined => summaries.find((x) => x.scenario === s)
    const ratio = (a: Scenario, b: Scenario): number | null => by(a) !== undefined && by(b) !== undefined ? by(a)!.rps / by(b)!.rps : null
    /** The same comparison by CPU per row (raw COPY's over the writer's: as rows/s, higher is better), run by run. */
    const storageCpuDetail = (): string => {
      const w = storageCpu.get('writer') ?? []
      const r = storageCpu.get('raw-copy') ?? []
      if (w.length === 0 || r.length === 0) return ''
      const pairs = w.map((x, i) => r[i] === undefined ? '?' : (r[i]! / x).toFixed(2)).join(', ')
      return `by CPU per row (backend + client): raw COPY ${median(r).toFixed(1)} us, writer ${median(w).toFixed(1)} us, ratio ${(median(r) / median(w)).toFixed(2)} (runs ${pairs})`
    }
    const overload = results.get('overload')?.[0]
    const targets: Target[] = [
      { name: 'durable / naive', value: ratio('durable', 'naive'), goal: '>= 12', pass: ratio('durable', 'naive') === null ? null : ratio('durable', 'naive')! >= 12, detail: by('durable')?.note ?? '' },
      // With --half-rate the load is not half of durable's, so the target is reported, not judged.
      { name: 'durable p99 ms at half the sustained rate', value: by('durable-half')?.p99 ?? null, goal: '<= 50 ms', pass: by('durable-half') === undefined || halfRate !== undefined ? null : by('durable-half')!.p99! <= 50, detail: by('durable-half') === undefined ? '' : halfRate !== undefined ? `sent at a fixed ${halfRate}/s (--half-rate), not judged` : `sent on a fixed schedule; stored ${(100 * by('durable-half')!.rps / (by('durable')?.rps ?? Number.NaN)).toFixed(0)}% of durable's rate` },
      { name: 'durable / ceiling', value: ratio('durable', 'ceiling'), goal: '(reported)', pass: null, detail: '' },
      { name: 'twilio (signed forms) / durable', value: ratio('twilio', 'durable'), goal: '>= 0.90', pass: ratio('twilio', 'durable') === null || fixedRate !== undefined ? null : ratio('twilio', 'durable')! >= 0.9, detail: fixedRate !== undefined ? `sent at a fixed ${fixedRate}/s (--fixed-rate), not judged` : by('twilio')?.note ?? '' },
      { name: 'receipts (status callbacks) / durable', value: ratio('receipts', 'durable'), goal: '>= 0.90', pass: ratio('receipts', 'durable') === null || fixedRate !== undefined ? null : ratio('receipts', 'durable')! >= 0.9, detail: fixedRate !== undefined ? `sent at a fixed ${fixedRate}/s (--fixed-rate), not judged` : by('receipts')?.note ?? '' },
      { name: 'enqueued / ceiling', value: ratio('enqueued', 'ceiling'), goal: '>= 0.40', pass: ratio('enqueued', 'ceiling') === null ? null : ratio('enqueued', 'ceiling')! >= 0.4, detail: by('enqueued')?.note ?? '' },
      { name: 'writer / raw COPY', value: ratio('writer', 'raw-copy'), goal: '>= 0.60', pass: ratio('writer', 'raw-copy') === null ? null : ratio('writer', 'raw-copy')! >= 0.6, detail: storageCpuDetail() },
      { name: 'overload RSS growth', value: overload === undefined ? null : overload.rssAfter / overload.rssBefore - 1, goal: '< 0.10', pass: overload === undefined ? null : overload.rssAfter / overload.rssBefore - 1 < 0.1, detail: '' },
      { name: 'overload lost (202 not in the database)', value: overload === undefined ? null : overload.distinctAccepted - overload.confirmed, goal: '0', pass: overload === undefined ? null : overload.distinctAccepted === overload.confirmed, detail: '' }
    ]
    if (scenarios.includes(fleetScenario)) {
      // Each run's fleet against the durable run just before it (an interleaved pair), then the medians' ratio.
      const fleetRuns = results.get(fleetScenario) ?? []
      const oneRuns = results.get('durable') ?? []
      const pairs = (f: (r: HttpRun) => number): string => fleetRuns.map((r, i) => oneRuns[i] === undefined ? '?' : (f(r) / f(oneRuns[i]!)).toFixed(2)).join(', ')
      const delivered = (rs: HttpRun[]): number => median(rs.map((r) => r.dispatchedPerSecond ?? 0))
      const deliveryRatio = oneRuns.length === 0 || delivered(oneRuns) === 0 ? null : delivered(fleetRuns) / delivered(oneRuns)
      targets.push(
        { name: `fleet of ${instances} / one instance: durable ingest`, value: ratio(fleetScenario, 'durable'), goal: '(reported)', pass: null, detail: `pairs ${pairs((r) => r.confirmed)}; ${by(fleetScenario)?.note ?? ''}` },
        { name: `fleet of ${instances} / one instance: delivery`, value: deliveryRatio, goal: '(reported)', pass: null, detail: `pairs ${pairs((r) => r.dispatchedPerSecond ?? 0)}; delivered ${delivered(fleetRuns).toFixed(0)}/s vs ${delivered(oneRuns).toFixed(0)}/s` }
      )
    }
    targets.push(...endToEnd.targets((results.get('durable') ?? []).map((r) => r.confirmed / duration)))
    const machine = { cpu: cpus()[0]?.model ?? '?', cores: cpus().length, node: process.version, postgres: postgresVersion, load: `wrk -t2 (pre-signed requests, bench/wrk/post.lua)`, workload, providerRate, duration: `${duration}s`, connections, durableConnections, runs, instances }
    printReport(machine, summaries, targets)
    const files = writeReport(outDir, { machine, targets, raw: Object.fromEntries([...results].map(([k, v]) => [k, v])), storage: Object.fromEntries(storage), storageCpuUsPerRow: Object.fromEntries(storageCpu), endToEnd: endToEnd.data() }, summaries)
    console.log(`results: ${files.json}\nchart:   ${files.svg}`)
  } finally {
    for (const fn of cleanup.reverse()) await fn().catch(() => {})
    rmSync(work, { recursive: true, force: true })
  }
}

main().then(() => process.exit(0), (error: unknown) => { console.error(error); process.exit(1) })

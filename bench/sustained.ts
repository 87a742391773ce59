/**
 * End-to-end scenarios of the bench (bench/run.ts hands them its context):
 *
 * `sustained`: the highest rate at which webhooks are both accepted durably
 * and delivered, with nothing piling up. Each step starts Hermes afresh on
 * an empty table, sends pre-signed webhooks at a fixed rate (an open loop,
 * bench/wrk/post.lua's RATE) for a warm-up and then for the measured window,
 * and passes if (a) at least 99.9% of what was sent is answered 202 and the
 * load generator kept the rate (97%), (b) the answers' p99 is at most
 * 100 ms, and (c) the undelivered messages at the end (read from the
 * database) are under one second's worth and no more than at mid-window plus
 * growthAllowance (a quarter second's worth and 100). The search starts at
 * --sustained-min (halved while it fails, as on a loaded machine), then
 * bisects up to --sustained-max (default: durable's rate in the same run)
 * for --sustained-steps steps in all; each step also records where the CPU went
 * (bench/cpu-split.ts) and the CPU per message of ingest and of delivery.
 *
 * `peer`: the Fastify + graphile-worker peer (bench/peer-server.ts) under
 * durable's closed-loop load, per run; with `sustained` in the same run it
 * also gets the same search (`peer-sustained`), so both rates are compared
 * as same-run ratios.
 *
 * Options: --sustained-seconds S (measured window per step, default 60, 10
 * with --quick), --sustained-warmup S (default 10, 2 with --quick),
 * --sustained-steps N (default 5, 3 with --quick), --sustained-min R,
 * --sustained-max R (requests per second). A full search takes about
 * steps x (warm-up + window + 10 s): 6 minutes by default, so neither
 * scenario is in the default list.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { generateRequests } from '../src/harness/gen-requests.js'
import { listeningPort, startServer, stopServer, cpuSeconds, type Server } from './processes.js'
import { runWrk, type WrkResult } from '../src/harness/wrk.js'
import { cpuDelta, readCpu, startMeasuredHermes, threadIdsPreload, type Sources } from './cpu-split.js'
import { median, type ScenarioSummary, type Target } from './report.js'
import { freePort } from '../src/harness/free-port.js'

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url))

export interface BenchContext {
  readonly work: string
  readonly client: pg.Client
  readonly databaseUrl: string
  readonly secret: string
  readonly configObject: Record<string, unknown>
  readonly fake: Server
  readonly hermesNodeArgs: readonly string[]
  readonly warmupFile: string
  readonly requestsFile: string
  readonly workload: 'repeat' | 'cold'
  readonly quick: boolean
  readonly duration: number
  readonly warmupSeconds: number
  readonly durableConnections: number
  readonly reset: () => Promise<void>
  readonly scrape: (port: number) => Promise<Map<string, number>>
}

function option (name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}

/** The --sustained-* options, checked. */
export function sustainedOptions (quick: boolean): { seconds: number, warmup: number, steps: number, min: number, max: number | undefined } {
  const seconds = Number(option('sustained-seconds', quick ? '10' : '60'))
  const warmup = Number(option('sustained-warmup', quick ? '2' : '10'))
  const steps = Number(option('sustained-steps', quick ? '3' : '5'))
  const min = Number(option('sustained-min', '500'))
  const max = option('sustained-max', '') === '' ? undefined : Number(option('sustained-max', ''))
  for (const [name, value] of [['sustained-seconds', seconds], ['sustained-warmup', warmup], ['sustained-steps', steps], ['sustained-min', min], ['sustained-max', max ?? 1]] as const) {
    if (!(Number.isInteger(value) && value > 0)) throw new Error(`--${name} must be a positive integer`)
  }
  if (max !== undefined && max <= min) throw new Error('--sustained-max must be above --sustained-min')
  return { seconds, warmup, steps, min, max }
}

/** Something the end-to-end scenarios load: started afresh per step, stopped after it. */
interface Running {
  readonly port: number
  readonly sources: Sources
  readonly processCpu: () => number
  /** Messages the provider has accepted so far. */
  readonly sent: () => Promise<number>
  /** Messages accepted and not yet delivered (from the database). */
  readonly backlog: () => Promise<number>
  /** Cheap running totals, polled during the window: accepted so far and the backlog (Hermes: its metrics, whose backlog gauge lags by up to ~2 s). */
  readonly progress: () => Promise<{ accepted: number, backlog: number }>
  /** Receipt→commit histogram buckets so far (seconds → cumulative count), when the system has one. */
  readonly commitBuckets: () => Promise<Array<readonly [number, number]> | null>
  readonly stop: () => Promise<void>
}
interface System {
  readonly name: 'hermes' | 'peer'
  readonly reset: () => Promise<void>
  readonly start: () => Promise<Running>
  /** CPU labels charged to ingest and to delivery per message. */
  readonly ingest: (label: string) => boolean
  readonly delivery: (label: string) => boolean
}

export interface Step {
  readonly rate: number
  readonly pass: boolean
  readonly why: string
  readonly connections: number
  readonly wrk: WrkResult
  readonly acceptedPerSecond: number
  readonly deliveredPerSecond: number
  readonly backlogMid: number
  readonly backlogEnd: number
  readonly commitP99: number | null
  readonly cpu: Record<string, number>
  readonly serverCpuSeconds: number
  readonly ingestUsPerMessage: number
  readonly deliveryUsPerMessage: number
  /** The machine's 1-minute load average at the end of the window: on a shared machine, how much else was running. */
  readonly loadAverage: number
}

/**
 * How much more the backlog may be at the end than half-way through without
 * counting as growing: a quarter second's worth plus 100. Messages committed
 * and not yet claimed or answered are always in it (dispatch claims in
 * batches of up to 64 and lingers for more), and the mid-window figure is
 * Hermes' gauge, up to ~2 s old.
 */
export const growthAllowance = (rate: number): number => Math.ceil(0.25 * rate) + 100

/** The q-quantile in ms of a window's histogram (cumulative counts after minus before), interpolated within its bucket. */
export function windowQuantile (before: Array<readonly [number, number]>, after: Array<readonly [number, number]>, q: number): number | null {
  const counts = after.map(([le, n], i) => [le, n - (before[i]?.[1] ?? 0)] as const)
  const total = counts.at(-1)?.[1] ?? 0
  if (total <= 0) return null
  const i = counts.findIndex(([, n]) => n >= q * total)
  const [le, n] = counts[i]!
  if (!Number.isFinite(le)) return null
  const [lowLe, lowN] = i === 0 ? [0, 0] : counts[i - 1]!
  return 1000 * (lowLe + (le - lowLe) * (n === lowN ? 1 : (q * total - lowN) / (n - lowN)))
}

export class EndToEnd {
  private readonly options: ReturnType<typeof sustainedOptions>
  private readonly searches = new Map<'hermes' | 'peer', { steps: Step[], best: Step | null }>()
  private readonly closedLoop: Array<{ run: number, rate: number, wrk: WrkResult, deliveredPerSecond: number, cpu: Record<string, number> }> = []
  private peerDatabase: { url: string, name: string } | null = null
  private sustainedFile: { path: string, lines: number } | null = null

  constructor (private readonly ctx: BenchContext) {
    this.options = sustainedOptions(ctx.quick)
  }

  /** Runs `sustained` (first run only) or `peer` (every run; and its search in the first, when `sustained` is also listed). */
  async run (scenario: 'sustained' | 'peer', run: number, scenarios: readonly string[], durableRate: number | undefined): Promise<void> {
    if (scenario === 'sustained' && run === 1) await this.search(this.hermes(), durableRate)
    if (scenario === 'peer') {
      const peer = await this.peer()
      await this.peerClosedLoop(peer, run)
      if (run === 1 && scenarios.includes('sustained')) await this.search(peer, this.closedLoop.at(-1)!.rate * 1.5)
    }
  }

  private hermes (): System {
    const ctx = this.ctx
    return {
      name: 'hermes',
      reset: ctx.reset,
      ingest: (l) => /^hermes (main|worker-\d+|writer)$/.test(l) || l === 'postgres hermes-writer',
      delivery: (l) => l === 'hermes dispatch' || l.startsWith('postgres hermes-dispatch'),
      start: async () => {
        const config = join(ctx.work, `sustained-${Date.now()}.json`)
        const threadsFile = join(ctx.work, `threads-${Date.now()}.txt`)
        writeFileSync(config, JSON.stringify({ ...ctx.configObject, port: await freePort() }))
        const { server, label } = await startMeasuredHermes(config, threadsFile, ctx.hermesNodeArgs)
        const pid = server.child.pid!
        const sum = (m: Map<string, number>, prefix: string, has?: string): number => [...m].filter(([k]) => k.startsWith(prefix) && (has === undefined || k.includes(has))).reduce((s, [, v]) => s + v, 0)
        return {
          port: server.port,
          sources: { nodes: [{ prefix: 'hermes', pid, threadsFile, label }], processes: [{ label: 'fake provider', pid: ctx.fake.child.pid! }], client: ctx.client, databases: [new URL(ctx.databaseUrl).pathname.slice(1) || 'postgres'], postgresGroup: (name) => `postgres ${name === 'unnamed' ? 'bench client' : name}` },
          processCpu: () => cpuSeconds(pid),
          sent: async () => sum(await ctx.scrape(server.port), 'hermes_dispatch_sends_total{', 'outcome="sent"'),
          backlog: async () => Number((await ctx.client.query<{ n: number }>("SELECT count(*)::int AS n FROM message WHERE dispatch_status IN ('pending', 'sending')")).rows[0]!.n),
          progress: async () => { const m = await ctx.scrape(server.port); return { accepted: sum(m, 'hermes_ingest_accepted_total{'), backlog: sum(m, 'hermes_dispatch_backlog{') } },
          commitBuckets: async () => [...await ctx.scrape(server.port)].filter(([k]) => k.startsWith('hermes_commit_latency_seconds_bucket{'))
            .map(([k, v]) => [k.includes('+Inf') ? Infinity : Number(/le="([^"]+)"/.exec(k)![1]), v] as const).sort((a, b) => a[0] - b[0]),
          stop: async () => await stopServer(server)
        }
      }
    }
  }

  /** The peer's own database on the same server (graphile-worker installs a schema), created once. */
  private async peer (): Promise<System> {
    const ctx = this.ctx
    if (this.peerDatabase === null) {
      const name = `hermes_bench_peer_${process.pid}_${Date.now().toString(36)}`
      await ctx.client.query(`CREATE DATABASE ${name}`)
      const url = new URL(ctx.databaseUrl)
      url.pathname = `/${name}`
      this.peerDatabase = { url: url.toString(), name }
    }
    const { url: databaseUrl, name: databaseName } = this.peerDatabase
    const fakeCount = async (): Promise<number> => ((await (await fetch(`http://127.0.0.1:${ctx.fake.port}/count`)).json()) as { accepted: number }).accepted
    let jobsClient: pg.Client | null = null
    const jobs = async (): Promise<number> => {
      if (jobsClient === null) { jobsClient = new pg.Client({ connectionString: databaseUrl }); await jobsClient.connect() }
      return Number((await jobsClient.query<{ n: number }>('SELECT count(*)::int AS n FROM graphile_worker._private_jobs')).rows[0]!.n)
    }
    return {
      name: 'peer',
      reset: async () => {
        const c = new pg.Client({ connectionString: databaseUrl })
        await c.connect()
        await c.query('TRUNCATE graphile_worker._private_jobs').catch(() => {}) // absent before the first start
        await c.end()
      },
      // As for Hermes, only the JavaScript threads and their sessions are charged; V8's and libuv's threads are reported apart.
      ingest: (l) => l === 'peer http main' || l === 'postgres peer-http',
      delivery: (l) => l === 'peer worker main' || l === 'postgres peer-worker',
      start: async () => {
        const env = { DATABASE_URL: databaseUrl, SECRET: ctx.secret, PROVIDER_URL: `http://127.0.0.1:${ctx.fake.port}` }
        const httpThreads = join(ctx.work, `peer-http-threads-${Date.now()}.txt`)
        const workerThreads = join(ctx.work, `peer-worker-threads-${Date.now()}.txt`)
        const preload = ['--require', threadIdsPreload]
        const http = await startServer(here('./peer-server.js'), [], { ...env, PEER_ROLE: 'http', PORT: String(await freePort()), BENCH_THREADS_FILE: httpThreads }, listeningPort, preload)
        const worker = await startServer(here('./peer-server.js'), [], { ...env, PEER_ROLE: 'worker', BENCH_THREADS_FILE: workerThreads }, listeningPort, preload)
        return {
          port: http.port,
          sources: {
            nodes: [{ prefix: 'peer http', pid: http.child.pid!, threadsFile: httpThreads, label: () => 'main' }, { prefix: 'peer worker', pid: worker.child.pid!, threadsFile: workerThreads, label: () => 'main' }],
            processes: [{ label: 'fake provider', pid: ctx.fake.child.pid! }], client: ctx.client, databases: [databaseName], postgresGroup: (name) => `postgres ${name === 'unnamed' ? 'bench client' : name}` },
          processCpu: () => cpuSeconds(http.child.pid!) + cpuSeconds(worker.child.pid!),
          sent: fakeCount,
          backlog: jobs,
          progress: async () => { const backlog = await jobs(); return { accepted: backlog + await fakeCount(), backlog } },
          commitBuckets: async () => null,
          stop: async () => {
            await stopServer(http)
            await stopServer(worker)
            if (jobsClient !== null) await jobsClient.end()
            jobsClient = null
          }
        }
      }
    }
  }

  /** One step: warm-up and window at `rate`, judged by the three conditions. */
  private async step (system: System, rate: number): Promise<Step> {
    const { seconds, warmup } = this.options
    const connections = Math.min(this.ctx.durableConnections, Math.max(64, Math.ceil(rate * 0.1)))
    await system.reset()
    await this.ctx.reset()
    const running = await system.start()
    try {
      await runWrk({ port: running.port, requestsFile: this.ctx.warmupFile, duration: warmup, connections, rate })
      const cpu0 = await readCpu(running.sources)
      const server0 = running.processCpu()
      const sent0 = await running.sent()
      const commit0 = await running.commitBuckets()
      // The backlog is sampled every second; the one half-way through the window is compared with the end.
      // The window starts when the accepted count first moves (wrk reads its file before it sends).
      const samples: Array<{ at: number, accepted: number, backlog: number }> = []
      let polling = false
      const poll = setInterval(() => {
        if (polling) return
        polling = true
        running.progress().then((p) => { samples.push({ at: Date.now(), ...p }) }, () => {}).finally(() => { polling = false })
      }, 1000)
      const wrk = await runWrk({ port: running.port, requestsFile: this.sustainedFile!.path, duration: seconds, connections, rate }).finally(() => clearInterval(poll))
      const first = samples.findIndex((x) => x.accepted > (samples[0]?.accepted ?? 0))
      const startedAt = first <= 0 ? samples[0]?.at ?? 0 : samples[first - 1]!.at
      const midSample = samples.filter((x) => x.at >= startedAt + seconds * 500)[0]
      const backlogMid = midSample?.backlog ?? Number.NaN
      const cpu = cpuDelta(cpu0, await readCpu(running.sources))
      const serverCpuSeconds = running.processCpu() - server0
      const delivered = (await running.sent()) - sent0
      const backlogEnd = await running.backlog()
      const commit1 = await running.commitBuckets()
      const commitP99 = commit0 === null || commit1 === null ? null : windowQuantile(commit0, commit1, 0.99)
      const answered = wrk.accepted + wrk.refused + wrk.other + wrk.socketErrors
      const reasons = [
        wrk.accepted < 0.999 * answered ? `202 on ${(100 * wrk.accepted / Math.max(1, answered)).toFixed(2)}%` : '',
        answered < 0.97 * rate * seconds ? `sent only ${(answered / seconds).toFixed(0)}/s` : '',
        !(wrk.p99 <= 100) ? `p99 ${wrk.p99} ms` : '',
        !(backlogEnd < rate) ? `backlog ${backlogEnd} at the end` : '',
        backlogEnd > (Number.isNaN(backlogMid) ? 0 : backlogMid) + growthAllowance(rate) ? `backlog growing (${backlogMid} → ${backlogEnd})` : ''
      ].filter((r) => r !== '')
      const charged = (is: (l: string) => boolean): number => Object.entries(cpu).filter(([l]) => is(l)).reduce((s, [, v]) => s + v, 0)
      return {
        rate,
        pass: reasons.length === 0,
        why: reasons.join(', '),
        connections,
        wrk,
        acceptedPerSecond: wrk.accepted / seconds,
        deliveredPerSecond: delivered / seconds,
        backlogMid,
        backlogEnd,
        commitP99,
        cpu,
        serverCpuSeconds,
        ingestUsPerMessage: 1e6 * charged(system.ingest) / Math.max(1, wrk.accepted),
        deliveryUsPerMessage: 1e6 * charged(system.delivery) / Math.max(1, delivered),
        loadAverage: loadavg()[0]!
      }
    } finally {
      await running.stop()
    }
  }

  /** Bisection between the bounds for the highest rate that passes. */
  private async search (system: System, suggestedMax: number | undefined): Promise<void> {
    const { seconds, steps, min } = this.options
    const max = this.options.max ?? Math.max(min * 2, Math.round(suggestedMax ?? 12_000))
    // Every step starts on an empty table with a fresh system, so one file of unique ids serves them all
    // (wrk may send a little over the rate; beyond the file's end it would re-send ids, deduplicated).
    const lines = Math.min(1_500_000, Math.ceil(max * 1.2 * seconds))
    if (this.sustainedFile === null || this.sustainedFile.lines < lines) {
      this.sustainedFile = { path: join(this.ctx.work, `sustained-${lines}.txt`), lines }
      await generateRequests(this.sustainedFile.path, lines, this.ctx.secret, this.ctx.workload, `s${Date.now().toString(36)}`)
    }
    let lo = min
    let hi = max
    const found: Step[] = []
    let best: Step | null = null
    let rate = min
    for (let i = 0; i < steps; i++) {
      const s = await this.step(system, rate)
      found.push(s)
      process.stderr.write(`${system.name === 'hermes' ? 'sustained' : 'peer-sustained'} step ${i + 1}: ${rate}/s ${s.pass ? 'pass' : `fail (${s.why})`}; 202 ${s.acceptedPerSecond.toFixed(0)}/s, delivered ${s.deliveredPerSecond.toFixed(0)}/s, p99 ${s.wrk.p99} ms, backlog ${s.backlogMid} → ${s.backlogEnd}, load average ${s.loadAverage.toFixed(1)}, ingest ${s.ingestUsPerMessage.toFixed(0)} us/msg, delivery ${s.deliveryUsPerMessage.toFixed(0)} us/msg\n`)
      if (s.pass) { lo = rate; if (best === null || rate > best.rate) best = s } else { hi = rate }
      if (best === null) {
        // Not even the lower bound holds (a loaded machine): halve it until a rate passes.
        rate = Math.floor(rate / 2)
        if (rate < 10) break
      } else {
        rate = Math.round((lo + hi) / 2 / 50) * 50
        if (hi - lo <= 100 || rate <= lo || rate >= hi) break
      }
    }
    this.searches.set(system.name, { steps: found, best })
  }

  /** The peer under durable's closed-loop load, same requests and connections. */
  private async peerClosedLoop (system: System, run: number): Promise<void> {
    await system.reset()
    const running = await system.start()
    try {
      if (this.ctx.warmupSeconds > 0) await runWrk({ port: running.port, requestsFile: this.ctx.warmupFile, duration: this.ctx.warmupSeconds, connections: this.ctx.durableConnections })
      const cpu0 = await readCpu(running.sources)
      const sent0 = await running.sent()
      const wrk = await runWrk({ port: running.port, requestsFile: this.ctx.requestsFile, duration: this.ctx.duration, connections: this.ctx.durableConnections })
      const cpu = cpuDelta(cpu0, await readCpu(running.sources))
      const deliveredPerSecond = ((await running.sent()) - sent0) / this.ctx.duration
      this.closedLoop.push({ run, rate: wrk.accepted / this.ctx.duration, wrk, deliveredPerSecond, cpu })
      process.stderr.write(`peer run ${run}: ${(wrk.accepted / this.ctx.duration).toFixed(0)} 202/s, p99 ${wrk.p99} ms, 202=${wrk.accepted} other=${wrk.other + wrk.refused} errors=${wrk.socketErrors}, delivered ${deliveredPerSecond.toFixed(0)}/s\n`)
    } finally {
      await running.stop()
    }
  }

  summaries (): ScenarioSummary[] {
    const out: ScenarioSummary[] = []
    for (const [name, search] of this.searches) {
      const b = search.best
      const postgres = b === null ? null : Object.entries(b.cpu).filter(([l]) => l.startsWith('postgres ')).reduce((s, [, v]) => s + v, 0)
      out.push({
        scenario: name === 'hermes' ? 'sustained' : 'peer-sustained',
        rps: b?.rate ?? 0,
        rpsMin: b?.rate ?? 0,
        rpsMax: b?.rate ?? 0,
        storedPerSecond: b?.acceptedPerSecond ?? null,
        p50: b?.wrk.p50 ?? null,
        p99: b?.wrk.p99 ?? null,
        p999: b?.wrk.p999 ?? null,
        commitP99: b?.commitP99 ?? null,
        cpuSeconds: b?.serverCpuSeconds ?? null,
        postgresCpuSeconds: postgres,
        note: `highest passing rate of ${search.steps.map((s) => `${s.rate}${s.pass ? '✓' : '✗'}`).join(' ')}` +
          (b === null ? ' (none passed)' : `; delivered ${b.deliveredPerSecond.toFixed(0)}/s; CPU per message: ingest ${b.ingestUsPerMessage.toFixed(0)} us, delivery ${b.deliveryUsPerMessage.toFixed(0)} us`)
      })
    }
    if (this.closedLoop.length > 0) {
      const rates = this.closedLoop.map((r) => r.rate)
      out.push({
        scenario: 'peer',
        rps: median(rates),
        rpsMin: Math.min(...rates),
        rpsMax: Math.max(...rates),
        storedPerSecond: median(rates),
        p50: median(this.closedLoop.map((r) => r.wrk.p50)),
        p99: median(this.closedLoop.map((r) => r.wrk.p99)),
        p999: median(this.closedLoop.map((r) => r.wrk.p999)),
        commitP99: null,
        cpuSeconds: median(this.closedLoop.map((r) => Object.entries(r.cpu).filter(([l]) => l.startsWith('peer ')).reduce((s, [, v]) => s + v, 0))),
        postgresCpuSeconds: median(this.closedLoop.map((r) => Object.entries(r.cpu).filter(([l]) => l.startsWith('postgres ')).reduce((s, [, v]) => s + v, 0))),
        note: `Fastify ${packageVersion('fastify')} + graphile-worker ${packageVersion('graphile-worker')} (two processes), ${this.ctx.durableConnections} connections like durable; 202 after the job's insert commits; worker delivered ${median(this.closedLoop.map((r) => r.deliveredPerSecond)).toFixed(0)}/s`
      })
    }
    return out
  }

  /** Durable against the peer as the median of per-run ratios; sustained against the peer's sustained. */
  targets (durablePerRun: readonly number[]): Target[] {
    const out: Target[] = []
    if (this.closedLoop.length > 0 && durablePerRun.length > 0) {
      const ratios = this.closedLoop.map((r) => (durablePerRun[r.run - 1] ?? Number.NaN) / r.rate).filter((x) => Number.isFinite(x))
      const value = ratios.length === 0 ? null : median(ratios)
      out.push({ name: 'durable / peer (Fastify + graphile-worker)', value, goal: '>= 4', pass: value === null ? null : value >= 4, detail: `median of per-run ratios ${ratios.map((x) => x.toFixed(2)).join(', ')}` })
    }
    const hermes = this.searches.get('hermes')?.best
    const peer = this.searches.get('peer')?.best
    if (this.searches.has('hermes') && this.searches.has('peer')) {
      const value = hermes == null || peer == null ? null : hermes.rate / peer.rate
      out.push({ name: 'sustained / peer sustained', value, goal: '>= 2', pass: value === null ? null : value >= 2, detail: `${hermes?.rate ?? '-'}/s against ${peer?.rate ?? '-'}/s, one search each` })
    }
    if (hermes !== undefined) out.push({ name: 'sustained end-to-end rate', value: hermes?.rate ?? null, goal: '(reported)', pass: null, detail: hermes == null ? 'no rate passed' : `ingest ${hermes.ingestUsPerMessage.toFixed(0)} us/msg, delivery ${hermes.deliveryUsPerMessage.toFixed(0)} us/msg` })
    return out
  }

  data (): Record<string, unknown> {
    return { options: this.options, searches: Object.fromEntries(this.searches), peerClosedLoop: this.closedLoop }
  }

  async close (): Promise<void> {
    if (this.peerDatabase !== null) await this.ctx.client.query(`DROP DATABASE IF EXISTS ${this.peerDatabase.name} WITH (FORCE)`).catch(() => {})
  }
}

function packageVersion (name: string): string {
  try { return (JSON.parse(readFileSync(here(`../../node_modules/${name}/package.json`), 'utf8')) as { version: string }).version } catch { return '?' }
}

/**
 * `npm run bench`: runs Hermes and its reference points side by side in one
 * run, under wrk with pre-signed requests, and prints req/s, latency and
 * ratios (only ratios measured in the same run mean anything on a shared
 * machine). Options: --duration S (default 10), --connections N (100),
 * --workload repeat|cold, --runs N (1), --scenarios a,b,c, --quick.
 * Scenarios: ceiling (uWS answering 202), naive (node:http + pg, one
 * transaction per request), durable, enqueued (full Hermes pipeline).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, chmodSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'node:net'
import pg from 'pg'
import { generateRequests } from './gen-requests.js'
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.js'
import { createLogger } from '../src/log.js'
import { resolveConfig } from '../src/config.js'
import { prepareDatabase } from '../src/store/schema.js'

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url))
const secret = 'bench-secret'
type Scenario = 'ceiling' | 'naive' | 'durable' | 'enqueued'

function option (name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback
}
const quick = process.argv.includes('--quick')
const duration = Number(option('duration', quick ? '3' : '10'))
const connections = Number(option('connections', '100'))
const runs = Number(option('runs', '1'))
const workload = option('workload', 'repeat') as 'repeat' | 'cold'
const scenarios = option('scenarios', 'ceiling,naive,durable,enqueued').split(',') as Scenario[]

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0))
    })
  })
}

function startServer (script: string, args: string[], env: NodeJS.ProcessEnv, ready: (line: Record<string, unknown>) => number | undefined): Promise<{ child: ChildProcess, port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let buffer = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        try {
          const port = ready(JSON.parse(line) as Record<string, unknown>)
          if (port !== undefined) resolve({ child, port })
        } catch {}
      }
    })
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)))
  })
}

async function stopServer (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
}

interface WrkResult { rps: number, p50: number, p99: number, p999: number, accepted: number, refused: number, other: number }

function runWrk (port: number, requestsFile: string): WrkResult {
  const threads = 2
  const out = execFileSync('wrk', [`-t${threads}`, `-c${connections}`, `-d${duration}s`, '--latency', '-s', here('../../bench/wrk/post.lua'), `http://127.0.0.1:${port}/webhooks/sms`], {
    env: { ...process.env, REQUESTS_FILE: requestsFile, WRK_THREADS: String(threads) },
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024
  })
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN)
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: num(/LATENCY p50=([\d.]+)ms/),
    p99: num(/p99=([\d.]+)ms/),
    p999: num(/p999=([\d.]+)ms/),
    accepted: num(/STATUS 202=(\d+)/),
    refused: num(/503=(\d+)/),
    other: num(/other=(\d+)/)
  }
}

async function main (): Promise<void> {
  try { execFileSync('wrk', ['--version'], { stdio: 'ignore' }) } catch (error) {
    if ((error as { status?: number }).status === undefined) throw new Error('wrk is not installed: apt-get install wrk')
  }
  const work = mkdtempSync(join(tmpdir(), 'hermes-bench-'))
  chmodSync(work, 0o777)
  const log = createLogger('warn')
  let databaseUrl = process.env['DATABASE_URL'] ?? ''
  let stopDatabase = async (): Promise<void> => {}
  if (databaseUrl === '') {
    const db = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), port: await freePort(), log })
    databaseUrl = db.url
    stopDatabase = db.stop
  }
  const configObject = {
    host: '127.0.0.1',
    logLevel: 'warn',
    database: { url: databaseUrl },
    channels: { sms: { provider: 'mock', secrets: [secret] } },
    providers: { mock: { kind: 'mock' } }
  }
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  await prepareDatabase(client, resolveConfig(configObject, {}))
  const requestsFile = join(work, 'requests.txt')
  const count = Math.max(50_000, Math.min(400_000, duration * 40_000))
  await generateRequests(requestsFile, count, secret, workload, `b${Date.now().toString(36)}`)

  const results: Array<{ scenario: Scenario, run: number } & WrkResult & { stored: number }> = []
  try {
    for (let run = 1; run <= runs; run++) {
      for (const scenario of scenarios) {
        await client.query('TRUNCATE attachment, message')
        const port = await freePort()
        let server
        if (scenario === 'ceiling') {
          server = await startServer(here('./ceiling-server.js'), [], { PORT: String(port) }, (l) => l['msg'] === 'listening' ? l['port'] as number : undefined)
        } else if (scenario === 'naive') {
          server = await startServer(here('./naive-server.js'), [], { PORT: String(port), DATABASE_URL: databaseUrl, SECRET: secret }, (l) => l['msg'] === 'listening' ? l['port'] as number : undefined)
        } else {
          const file = join(work, `${scenario}.json`)
          writeFileSync(file, JSON.stringify({ ...configObject, port, ack: scenario, logLevel: 'info' }))
          server = await startServer(here('../src/main.js'), ['--config', file], {}, (l) => l['msg'] === 'hermes started' ? l['port'] as number : undefined)
        }
        const result = runWrk(server.port, requestsFile)
        await stopServer(server.child)
        const stored = Number((await client.query('SELECT count(*)::int AS n FROM message')).rows[0].n)
        results.push({ scenario, run, ...result, stored })
        process.stderr.write(`${scenario} run ${run}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99} ms, 202=${result.accepted} 503=${result.refused} other=${result.other}, stored ${stored}\n`)
      }
    }
  } finally {
    await client.end()
    await stopDatabase()
    rmSync(work, { recursive: true, force: true })
  }
  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? NaN }
  const rps = (s: Scenario): number => median(results.filter((r) => r.scenario === s).map((r) => r.rps))
  const table = scenarios.map((s) => {
    const rs = results.filter((r) => r.scenario === s)
    return {
      scenario: s,
      'req/s (median)': Math.round(rps(s)),
      'stored/s': s === 'ceiling' ? '-' : Math.round(median(rs.map((r) => r.stored / duration))),
      'p50 ms': median(rs.map((r) => r.p50)),
      'p99 ms': median(rs.map((r) => r.p99)),
      'p99.9 ms': median(rs.map((r) => r.p999)),
      '503s': rs.reduce((n, r) => n + r.refused, 0),
      'other': rs.reduce((n, r) => n + r.other, 0)
    }
  })
  console.log(`machine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, node ${process.version}; wrk -t2 -c${connections} -d${duration}s, workload ${workload}, ${runs} run(s)`)
  console.table(table)
  const ratios: Record<string, number> = {}
  if (scenarios.includes('durable') && scenarios.includes('naive')) ratios['durable / naive'] = rps('durable') / rps('naive')
  if (scenarios.includes('enqueued') && scenarios.includes('ceiling')) ratios['enqueued / ceiling'] = rps('enqueued') / rps('ceiling')
  if (scenarios.includes('durable') && scenarios.includes('ceiling')) ratios['durable / ceiling'] = rps('durable') / rps('ceiling')
  for (const [k, v] of Object.entries(ratios)) console.log(`${k}: ${v.toFixed(2)}`)
  const dir = here('../../bench/results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, duration, connections, workload, results, ratios }, null, 2))
  console.log(`results: ${file}`)
}

main().catch((error: unknown) => { console.error(error); process.exit(1) })

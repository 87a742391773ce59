/** Runs wrk with the pre-signed request script and parses what it prints. */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const wrkScript = fileURLToPath(new URL('../../../bench/wrk/post.lua', import.meta.url))

export interface WrkResult {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly p999: number
  readonly accepted: number
  readonly refused: number
  readonly retryAfter: number
  readonly other: number
  /** Requests wrk completed, and socket errors (connect, read, write, timeout) that got no answer at all. */
  readonly requests: number
  readonly socketErrors: number
}

/**
 * Closed loop by default: each connection sends again as soon as it is
 * answered. With `rate` (requests per second) the requests go out on a fixed
 * schedule instead (bench/wrk/post.lua), whatever the answers' latency.
 */
export interface WrkTarget {
  /** Where the requests go (default /webhooks/sms), and how they are typed and signed (default Hermes' JSON). */
  readonly path?: string
  readonly contentType?: string
  readonly signatureHeader?: string
}

export async function runWrk (options: { port: number, requestsFile: string, duration: number, connections: number, threads?: number, acceptedDir?: string, rate?: number, target?: WrkTarget }): Promise<WrkResult> {
  const threads = options.threads ?? 2
  const env: NodeJS.ProcessEnv = { ...process.env, REQUESTS_FILE: options.requestsFile, WRK_THREADS: String(threads) }
  const target = options.target ?? {}
  if (target.path !== undefined) env['WEBHOOK_PATH'] = target.path
  if (target.contentType !== undefined) env['CONTENT_TYPE'] = target.contentType
  if (target.signatureHeader !== undefined) env['SIGNATURE_HEADER'] = target.signatureHeader
  if (options.acceptedDir !== undefined) env['ACCEPTED_DIR'] = options.acceptedDir
  if (options.rate !== undefined) env['RATE'] = String(options.rate)
  // No thread sends before every thread has read its requests (see bench/wrk/post.lua).
  const scratch = mkdtempSync(join(tmpdir(), 'hermes-wrk-'))
  env['READY_FILE'] = join(scratch, 'ready')
  const out = await new Promise<string>((resolve, reject) => {
    execFile('wrk', [`-t${threads}`, `-c${Math.max(threads, options.connections)}`, `-d${options.duration}s`, '--timeout', '30s', '-s', wrkScript, `http://127.0.0.1:${options.port}${target.path ?? '/webhooks/sms'}`],
      { env, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => error === null ? resolve(stdout) : reject(new Error(`wrk failed: ${error.message} ${stderr}`)))
  }).finally(() => rmSync(scratch, { recursive: true, force: true }))
  const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? Number.NaN)
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: num(/LATENCY p50=([\d.]+)ms/),
    p99: num(/p99=([\d.]+)ms/),
    p999: num(/p999=([\d.]+)ms/),
    accepted: num(/STATUS 202=(\d+)/),
    refused: num(/503=(\d+)/),
    retryAfter: num(/retry_after=(\d+)/),
    other: num(/other=(\d+)/),
    requests: num(/(\d+) requests in/),
    socketErrors: [...(/Socket errors: (.*)/.exec(out)?.[1] ?? '').matchAll(/\d+/g)].reduce((sum, m) => sum + Number(m[0]), 0)
  }
}

/** wrk on PATH, or installed from Debian's packages when running as root; the reason when neither works. */
export async function ensureWrk (): Promise<void> {
  const has = async (): Promise<boolean> => await new Promise((resolve) => execFile('wrk', ['-v'], (error) => resolve(error === null || (error as { code?: unknown }).code !== 'ENOENT')))
  if (await has()) return
  if (process.getuid?.() === 0) {
    await new Promise<void>((resolve) => execFile('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq wrk'], () => resolve()))
    if (await has()) return
  }
  throw new Error('the bench needs wrk (Debian package "wrk": apt-get install wrk); autocannon is not used because it saturates a core before Hermes does')
}

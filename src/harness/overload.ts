/**
 * A closed-loop overload generator shared by test/overload.test.ts and
 * bench/soak.ts: many concurrent lanes, each posting signed, unique sms
 * webhooks over keep-alive node:http connections as fast as it is answered.
 * A 503 is retried at once, ignoring Retry-After (the worst client), so the
 * offered load stays well above what the pipeline absorbs. It records every
 * answer: ids answered 202, 202 latencies, 503s by code and whether each one
 * was well formed, and the server's RSS once a second.
 */
import { Agent } from 'node:http'
import { postKeepAlive, refusalProblem } from './keep-alive.js'
import { until } from './wait.js'
import { rssBytes } from './rss.js'

/** Ring records and writer-queue rows of overloadConfig. */
export const kOverloadRingMessages = 32
export const kOverloadQueuedRows = 32

/**
 * A Hermes config file's contents for an overload run: the sms channel on the
 * mock provider, and a pipeline that holds about 100 requests (the ring, the
 * writer's queue, and the ranges the feeder hands out before it sees the
 * queue full), so a few hundred closed-loop lanes overload it whatever the
 * machine's speed, and back-pressure runs the whole way to the front end.
 */
export function overloadConfig (databaseUrl: string, secret: string): Record<string, unknown> {
  return {
    database: { url: databaseUrl },
    maxBodyBytes: 4096,
    buffer: { maxMessages: kOverloadRingMessages, maxBytes: 64 * 1024 }, // at least 2 × (maxBodyBytes + 4096)
    writer: { maxQueuedRows: kOverloadQueuedRows },
    channels: { sms: { provider: 'mock', secrets: [secret] } },
    providers: { mock: { kind: 'mock' } }
  }
}

export interface OverloadOptions {
  readonly port: number
  /** The Hermes process, for RSS samples from /proc. */
  readonly pid: number
  readonly secret: string
  /** Concurrent clients, each with at most one request open. */
  readonly lanes: number
  /** Load before the "before" RSS sample (heaps grown, ring and sockets touched). */
  readonly warmupSeconds: number
  /** Load after it, until the "after" sample. */
  readonly seconds: number
  /** A request unanswered this long counts as hung and is abandoned (keep it above Hermes' ack timeout). */
  readonly requestTimeoutMs: number
  /** Distinguishes this run's ids from any other's. */
  readonly idPrefix: string
  /** Checked before each request: false stops the lanes (the server died). */
  readonly alive?: () => boolean
  /** Called once a second after the warm-up, with seconds since the start (bench/soak.ts schedules an outage by it). */
  readonly onTick?: (elapsedSeconds: number) => void
}

export interface OverloadResult {
  readonly seconds: number
  readonly requests: number
  /** Ids answered 202, each once (ids are unique per request). */
  readonly acceptedIds: string[]
  /** 202 answer times in ms, sorted ascending. */
  readonly acceptedMs: Float64Array
  readonly refused: number
  readonly refusedByCode: Record<string, number>
  /** 503s without a Retry-After of whole seconds >= 1, or without a JSON error body; the first few, described. */
  readonly malformedRefusals: number
  readonly malformedExamples: string[]
  /** Answers other than 202 and 503, by status. */
  readonly otherByStatus: Record<string, number>
  /** Connection errors (reset, refused) and requests abandoned after requestTimeoutMs. */
  readonly errors: number
  readonly hung: number
  readonly errorExamples: string[]
  /** VmRSS of the server in bytes at the end of the warm-up and at the end of the load, and every second between. */
  readonly rssBefore: number
  readonly rssAfter: number
  readonly rssSamples: number[]
}

/**
 * Recipients cycle through this many numbers, so the warm-up meets them all and
 * the writer's party/conversation id cache is full before the "before" RSS
 * sample: growth after it is not the cache filling up.
 */
const kRecipients = 1000

/** The q-quantile (0..1) of ascending `sorted`, nearest rank; NaN when empty. */
export function quantile (sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

export async function runOverload (options: OverloadOptions): Promise<OverloadResult> {
  const { port, pid, secret, lanes, requestTimeoutMs, idPrefix } = options
  const agent = new Agent({ keepAlive: true, maxSockets: lanes, maxFreeSockets: lanes })
  const acceptedIds: string[] = []
  const accepted: number[] = []
  const refusedByCode: Record<string, number> = {}
  const otherByStatus: Record<string, number> = {}
  const malformedExamples: string[] = []
  const errorExamples: string[] = []
  const rssSamples: number[] = []
  let requests = 0
  let refused = 0
  let malformed = 0
  let errors = 0
  let hung = 0
  let sequence = 0
  let stopped = false
  let rssBefore = Number.NaN
  const started = performance.now()
  const end = started + (options.warmupSeconds + options.seconds) * 1000

  // RSS once a second; the warm-up's last sample is "before".
  const ticker = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000
    if (elapsed >= options.warmupSeconds) {
      rssSamples.push(rssBytes(pid))
      if (Number.isNaN(rssBefore)) rssBefore = rssSamples.at(-1)!
      options.onTick?.(elapsed)
    }
  }, 1000)

  const lane = async (): Promise<void> => {
    while (!stopped && performance.now() < end) {
      if (options.alive !== undefined && !options.alive()) { stopped = true; break }
      const n = ++sequence
      const id = `${idPrefix}-${n}`
      const body = JSON.stringify({ id, from: '+14155550000', to: `+1650${String(n % kRecipients).padStart(7, '0')}`, body: `overload ${n}` })
      const t0 = performance.now()
      requests++
      try {
        const answer = await postKeepAlive(agent, port, body, secret, requestTimeoutMs)
        if (answer.status === 202) {
          acceptedIds.push(id)
          accepted.push(performance.now() - t0)
        } else if (answer.status === 503) {
          refused++
          const code = answer.code ?? 'unparsed'
          refusedByCode[code] = (refusedByCode[code] ?? 0) + 1
          const problem = refusalProblem(answer)
          if (problem !== null) { malformed++; if (malformedExamples.length < 5) malformedExamples.push(problem) }
        } else {
          otherByStatus[answer.status] = (otherByStatus[answer.status] ?? 0) + 1
          if (errorExamples.length < 5) errorExamples.push(`${answer.status}: ${answer.text.slice(0, 200)}`)
        }
      } catch (error) {
        if ((error as { code?: string }).code === 'HUNG') hung++
        else errors++
        if (errorExamples.length < 5) errorExamples.push(String(error))
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: lanes }, lane))
  } finally {
    clearInterval(ticker)
    agent.destroy()
  }
  // The lanes stop at `end`; the last ones wait for their commit, so "after" is taken once all are answered.
  const rssAfter = rssBytes(pid)
  rssSamples.push(rssAfter)
  return {
    seconds: (performance.now() - started) / 1000,
    requests,
    acceptedIds,
    acceptedMs: Float64Array.from(accepted).sort(),
    refused,
    refusedByCode,
    malformedRefusals: malformed,
    malformedExamples,
    otherByStatus,
    errors,
    hung,
    errorExamples,
    rssBefore: Number.isNaN(rssBefore) ? rssAfter : rssBefore,
    rssAfter,
    rssSamples
  }
}

/** Records in Hermes' ingress ring now, from /metrics: 0 once the pipeline has caught up. */
export async function ringUsedMessages (port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  return Number(/^hermes_ring_used_messages (\d+)$/m.exec(text)?.[1] ?? Number.NaN)
}

/** Polls until the ring is empty; false if it still holds records after `timeoutMs` (a wedged feeder). */
export async function ringDrains (port: number, timeoutMs: number): Promise<boolean> {
  return await until('the ring to drain', timeoutMs, async () => await ringUsedMessages(port) === 0 ? true : undefined).then(() => true, () => false)
}

/** One line of figures, for t.comment and the soak's report. */
export function describeOverload (r: OverloadResult): string {
  const mib = (b: number): string => (b / 2 ** 20).toFixed(0)
  const answered = r.acceptedIds.length + r.refused + Object.values(r.otherByStatus).reduce((a, b) => a + b, 0)
  return [
    `${r.requests} requests in ${r.seconds.toFixed(1)} s (${(r.requests / r.seconds).toFixed(0)} req/s)`,
    `202: ${r.acceptedIds.length} (${(r.acceptedIds.length / r.seconds).toFixed(0)}/s, p50 ${quantile(r.acceptedMs, 0.5).toFixed(0)} ms, p99 ${quantile(r.acceptedMs, 0.99).toFixed(0)} ms, max ${quantile(r.acceptedMs, 1).toFixed(0)} ms)`,
    `503: ${r.refused} (${(100 * r.refused / Math.max(1, answered)).toFixed(1)}% ${JSON.stringify(r.refusedByCode)}, malformed ${r.malformedRefusals})`,
    `other: ${JSON.stringify(r.otherByStatus)}, errors ${r.errors}, hung ${r.hung}`,
    `RSS ${mib(r.rssBefore)} -> ${mib(r.rssAfter)} MiB (min ${mib(Math.min(...r.rssSamples))}, max ${mib(Math.max(...r.rssSamples))})`
  ].join('; ')
}

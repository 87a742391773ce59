/**
 * One keep-alive connection pool per provider, sized to its concurrency cap,
 * and a POST with a hard per-request deadline (connect + send + whole
 * response), not just a socket idle timeout.
 *
 * The pool is undici's, not node:http's Agent: the dispatch thread is the
 * busiest thread of the pipeline, and undici's callback API costs less CPU
 * per request than node:http's.
 */
import { Pool, errors, type Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import { TransportError } from './transport-error.js'

export interface HttpReply {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

// An answer is only read for an id or an error message; a provider that streams more is cut off.
const kMaxReplyBytes = 1024 * 1024
const kUserAgent = 'hermes-dispatch/0.1'

export class HttpTransport {
  private pool: Pool
  /** Pools replaced by resize(), finishing the requests they have. */
  private readonly retiring = new Set<Pool>()
  private readonly origin: string
  private readonly prefix: string // the base URL's path, prepended to every request path
  private closed = false

  constructor (baseUrl: string, concurrency: number, private readonly timeoutMs: number) {
    const base = new URL(baseUrl)
    this.origin = base.origin
    this.prefix = base.pathname.replace(/\/+$/, '')
    this.pool = this.open(concurrency)
  }

  /**
   * The concurrency cap changed (Dispatcher.updateProviderLimits): new
   * requests go to a pool of the new size; the old one finishes what it has
   * in flight, then closes.
   */
  resize (concurrency: number): void {
    if (this.closed) return
    const old = this.pool
    this.pool = this.open(concurrency)
    this.retiring.add(old)
    old.close().catch(() => {}).finally(() => this.retiring.delete(old))
  }

  private open (concurrency: number): Pool {
    // Our own deadline covers the whole exchange; undici's own timers only need to be no shorter.
    const timeoutMs = this.timeoutMs
    return new Pool(this.origin, { connections: concurrency, pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connectTimeout: timeoutMs })
  }

  /**
   * Uses undici's callback-level dispatch() rather than request(): no
   * stream objects per answer, which is where request() spent its time.
   */
  async post (path: string, headers: Record<string, string>, body: string): Promise<HttpReply> {
    if (this.closed) throw new TransportError('network', 'the connection pool is closed')
    return await new Promise<HttpReply>((resolve, reject) => {
      let status: number | undefined
      let replyHeaders: IncomingHttpHeaders = {}
      let chunks: Buffer[] = []
      let size = 0
      let controller: Dispatcher.DispatchController | null = null
      let settled = false
      const fail = (error: TransportError): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        reject(error)
      }
      const timer = setTimeout(() => {
        fail(new TransportError('timeout', `no complete answer within ${this.timeoutMs} ms`, status))
        controller?.abort(new Error('deadline passed'))
      }, this.timeoutMs)
      this.pool.dispatch({
        path: this.prefix + path,
        method: 'POST',
        headers: { 'user-agent': kUserAgent, accept: 'application/json', ...headers },
        body
      }, {
        onRequestStart: (c) => {
          controller = c
          if (settled) c.abort(new Error('deadline passed')) // timed out while waiting for a connection
        },
        onResponseStart: (_c, statusCode, responseHeaders) => {
          if (statusCode < 200) return // 1xx: the real answer follows
          status = statusCode
          replyHeaders = responseHeaders as IncomingHttpHeaders
          chunks = []
          size = 0
        },
        onResponseData: (_c, chunk) => {
          size += chunk.length
          if (size <= kMaxReplyBytes) chunks.push(chunk)
        },
        onResponseEnd: () => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          resolve({ status: status!, headers: replyHeaders, body: Buffer.concat(chunks).toString('utf8') })
        },
        onResponseError: (_c, error) => {
          if (status !== undefined) fail(new TransportError('truncated', `connection closed mid-response (HTTP ${status})`, status))
          else fail(new TransportError('network', describe(error)))
        }
      })
    })
  }

  close (): void {
    this.closed = true
    this.pool.destroy().catch(() => {})
    for (const pool of this.retiring) pool.destroy().catch(() => {})
    this.retiring.clear()
  }
}

/** `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9` as node:http would say it; undici wraps the socket error in `cause`. */
function describe (error: unknown): string {
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause
  const inner = cause instanceof Error ? cause : error as NodeJS.ErrnoException
  if (error instanceof errors.ConnectTimeoutError) return `ETIMEDOUT: ${error.message}`
  if (error instanceof errors.SocketError && inner === error) return `ECONNRESET: ${error.message}`
  return inner.code === undefined ? String(inner.message) : `${inner.code}: ${inner.message}`
}

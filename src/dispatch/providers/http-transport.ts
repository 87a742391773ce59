/**
 * One keep-alive connection pool per provider, sized to its concurrency cap,
 * and a POST with a hard per-request deadline (connect + send + whole
 * response), not just a socket idle timeout.
 */
import http from 'node:http'
import https from 'node:https'

export interface HttpReply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** Why a request produced no complete answer. `status` is set when a status line arrived before the failure. */
export class TransportError extends Error {
  readonly kind: 'timeout' | 'network' | 'truncated'
  readonly status: number | undefined
  constructor (kind: TransportError['kind'], message: string, status?: number) {
    super(message)
    this.name = 'TransportError'
    this.kind = kind
    this.status = status
  }
}

// An answer is only read for an id or an error message; a provider that streams more is cut off.
const kMaxReplyBytes = 1024 * 1024
const kUserAgent = 'hermes-dispatch/0.1'

export class HttpTransport {
  private readonly base: URL
  private readonly host: string // without an IPv6 literal's brackets, as http.request wants it
  private readonly prefix: string // the base URL's path, prepended to every request path
  private readonly agent: http.Agent
  private readonly request: typeof http.request
  private closed = false

  constructor (baseUrl: string, concurrency: number, private readonly timeoutMs: number) {
    this.base = new URL(baseUrl)
    this.host = this.base.hostname.replace(/^\[(.*)\]$/, '$1')
    this.prefix = this.base.pathname.replace(/\/+$/, '')
    const secure = this.base.protocol === 'https:'
    const options = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency, scheduling: 'lifo' as const }
    this.agent = secure ? new https.Agent(options) : new http.Agent(options)
    this.request = secure ? https.request : http.request
  }

  async post (path: string, headers: Record<string, string>, body: string): Promise<HttpReply> {
    if (this.closed) throw new TransportError('network', 'the connection pool is closed')
    const payload = Buffer.from(body, 'utf8')
    return await new Promise<HttpReply>((resolve, reject) => {
      let status: number | undefined
      let settled = false
      const finish = (error: TransportError | null, reply?: HttpReply): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (error === null) resolve(reply!)
        else reject(error)
      }
      const req = this.request({
        protocol: this.base.protocol,
        hostname: this.host,
        port: this.base.port,
        path: this.prefix + path,
        method: 'POST',
        agent: this.agent,
        headers: { 'user-agent': kUserAgent, accept: 'application/json', ...headers, 'content-length': String(payload.length) }
      }, (res) => {
        status = res.statusCode ?? 0
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size <= kMaxReplyBytes) chunks.push(chunk)
        })
        res.on('end', () => finish(null, { status: status!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
        // 'close' without 'end': the connection went away mid-answer.
        res.on('close', () => { if (!res.complete) finish(new TransportError('truncated', `connection closed mid-response (HTTP ${status})`, status)) })
        res.on('error', () => {}) // reported through 'close'
      })
      const timer = setTimeout(() => {
        finish(new TransportError('timeout', `no complete answer within ${this.timeoutMs} ms`, status))
        req.destroy()
      }, this.timeoutMs)
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (status !== undefined) finish(new TransportError('truncated', `connection closed mid-response (HTTP ${status})`, status))
        else finish(new TransportError('network', error.code === undefined ? error.message : `${error.code}: ${error.message}`))
      })
      req.end(payload)
    })
  }

  close (): void {
    this.closed = true
    this.agent.destroy()
  }
}

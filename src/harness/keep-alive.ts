/**
 * A signed sms webhook over a keep-alive node:http agent, for the load tests
 * that hold many connections open (overload, outage-memory, bench/soak.ts).
 * helpers/hermes.ts' send() opens a fresh connection per request instead.
 */
import { type Agent, request } from 'node:http'
import { seedSignature } from './sign.js'

export interface KeepAliveAnswer {
  readonly status: number
  readonly retryAfter: string | undefined
  readonly text: string
  /** error.code of a JSON error body, if there is one. */
  readonly code: string | undefined
}

/**
 * POSTs `body` to /webhooks/sms signed with `secret`. A request with no answer
 * within `timeoutMs` is destroyed and rejects with code 'HUNG'; a socket
 * error rejects with the error, marked with whether the socket was reused.
 */
export async function postKeepAlive (agent: Agent, port: number, body: string, secret: string, timeoutMs: number): Promise<KeepAliveAnswer> {
  return await new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/webhooks/sms',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...seedSignature(secret, body) }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        let code: string | undefined
        try {
          const error = (JSON.parse(text) as { error?: { code?: unknown } }).error
          if (typeof error?.code === 'string') code = error.code
        } catch {}
        const header = res.headers['retry-after']
        resolve({ status: res.statusCode ?? 0, retryAfter: Array.isArray(header) ? header.join(',') : header, text, code })
      })
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'HUNG' })))
    req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })))
    req.end(body)
  })
}

/** Why a 503 breaks the contract (Retry-After in whole seconds >= 1, a JSON error with a code), or null. */
export function refusalProblem (answer: KeepAliveAnswer): string | null {
  if (answer.retryAfter === undefined || !/^\d+$/.test(answer.retryAfter) || Number(answer.retryAfter) < 1) return `Retry-After ${JSON.stringify(answer.retryAfter)}`
  if (answer.code === undefined) return `body without error.code: ${answer.text.slice(0, 200)}`
  return null
}

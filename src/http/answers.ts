import type { HttpResponse } from 'uWebSockets.js'
import type { FieldProblem } from '../errors.js'

const statusLines: Record<number, string> = {
  200: '200 OK',
  202: '202 Accepted',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  431: '431 Request Header Fields Too Large',
  422: '422 Unprocessable Entity',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable'
}

export interface ErrorAnswer {
  readonly status: number
  readonly code: string
  readonly message: string
  readonly fields?: readonly FieldProblem[] | undefined
  readonly retryAfterSeconds?: number | undefined
  /** The methods a 405's route allows (its Allow header, RFC 9110 §15.5.6). */
  readonly allow?: string | undefined
}

/**
 * Writes a complete JSON answer. Corked, so status, headers and body leave in
 * one syscall; safe to call from any callback (uWS requires cork outside the
 * request handler's own tick). A response paused until answered is resumed
 * first. For a HEAD request (`head`) the headers go out and no body.
 */
export function sendJson (res: HttpResponse, status: number, requestId: string, body: string, extraHeaders?: readonly [string, string][], closeConnection = false, head = false): void {
  res.cork(() => {
    if (paused.delete(res)) res.resume()
    res.writeStatus(statusLines[status] ?? String(status))
    res.writeHeader('content-type', 'application/json')
    res.writeHeader('x-request-id', requestId)
    if (extraHeaders !== undefined) for (const [name, value] of extraHeaders) res.writeHeader(name, value)
    if (head) {
      // uWS 20.30 counts only end() as an answer unless an abort handler is attached, and given a
      // length, endWithoutBody leaves the response pending (the connection then dies at the next
      // request): so no Content-Length, which a HEAD answer may omit. Closing needs the argument
      // list, and then says 0.
      res.onAborted(noop)
      if (closeConnection) res.endWithoutBody(0, true)
      else res.endWithoutBody()
    } else {
      res.end(body, closeConnection)
    }
  })
}

const noop = (): void => {}

const paused = new WeakSet<HttpResponse>()

/**
 * Stops reading the response's connection until it is answered. uWS closes a
 * connection when a request arrives while the previous one is unanswered
 * (pipelining), so a request answered later (after its commit) holds back
 * whatever the client sends next, and the next request is read only then.
 */
export function pauseUntilAnswered (res: HttpResponse): void {
  res.pause()
  paused.add(res)
}

export function errorBody (answer: ErrorAnswer, requestId: string): string {
  const error: Record<string, unknown> = { code: answer.code, message: answer.message }
  if (answer.fields !== undefined) error['fields'] = answer.fields
  return JSON.stringify({ error, requestId })
}

export function sendError (res: HttpResponse, requestId: string, answer: ErrorAnswer, closeConnection = false, head = false): void {
  const headers: [string, string][] = []
  if (answer.retryAfterSeconds !== undefined) headers.push(['retry-after', String(answer.retryAfterSeconds)])
  if (answer.allow !== undefined) headers.push(['allow', answer.allow])
  sendJson(res, answer.status, requestId, errorBody(answer, requestId), headers, closeConnection, head)
}

export function acceptedBody (requestId: string, durable: boolean): string {
  return durable
    ? `{"status":"stored","requestId":${JSON.stringify(requestId)}}`
    : `{"status":"enqueued","requestId":${JSON.stringify(requestId)}}`
}

/**
 * How a stored webhook is answered: Hermes' JSON 202, Twilio's empty TwiML
 * document (Twilio logs any other answer as an error), or a plain 200 for
 * SendGrid Inbound Parse and delivery receipts (their senders retry anything else).
 */
export type SuccessKind = 'stored' | 'twiml' | 'ok'

export const kEmptyTwiml = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

export function successStatus (kind: SuccessKind): number {
  return kind === 'stored' ? 202 : 200
}

export function sendSuccess (res: HttpResponse, requestId: string, kind: SuccessKind, durable: boolean): void {
  if (kind === 'stored') {
    sendJson(res, 202, requestId, acceptedBody(requestId, durable))
    return
  }
  if (kind === 'ok') {
    sendJson(res, 200, requestId, durable ? `{"status":"stored","requestId":${JSON.stringify(requestId)}}` : `{"status":"enqueued","requestId":${JSON.stringify(requestId)}}`)
    return
  }
  res.cork(() => {
    if (paused.delete(res)) res.resume() // else the connection's next request is never read
    res.writeStatus('200 OK')
    res.writeHeader('content-type', 'text/xml')
    res.writeHeader('x-request-id', requestId)
    res.end(kEmptyTwiml)
  })
}

import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import { Rejection } from '../errors.js'
import { pauseUntilAnswered, sendError, sendJson, type ErrorAnswer } from './answers.js'
import { framingProblem } from './framing.js'
import { requestIdFrom } from './request-id.js'
import { loadNativeUws } from './uws.js'
import type { HttpMeter } from './http-metrics.js'

/** The signature-relevant headers of a webhook, read before the handler returns (uWS frees the request after). */
export interface WebhookHeaders {
  readonly providerSignature: string
  readonly webhookId: string
  readonly webhookTimestamp: string
  readonly webhookSignature: string
}

export interface WebhookArrival {
  readonly res: HttpResponse
  readonly requestId: string
  readonly channelIndex: number
  readonly headers: WebhookHeaders
  readonly body: Uint8Array
  readonly receivedAtMs: number
  /** Set by the caller: runs if the client disconnects before being answered. */
  onAbort: (() => void) | null
}

export interface HttpServerOptions {
  readonly host: string
  readonly port: number
  readonly maxBodyBytes: number
  readonly channels: readonly string[]
  /**
   * Webhooks are answered after an await (durable mode: after the commit).
   * Each is then handed on at the end of the event-loop turn and its
   * connection read no further until it is answered (see handOn).
   */
  readonly answersLater?: boolean
  /** Why new webhooks are refused right now (draining, database down), or null. */
  readonly refusal: () => ErrorAnswer | null
  readonly ready: () => boolean
  /** A complete webhook body arrived; the callee answers it (now or later). */
  readonly onWebhook: (arrival: WebhookArrival) => void
  readonly meter: HttpMeter
  /** The Prometheus text exposition for GET /metrics. */
  readonly scrape: () => Promise<{ contentType: string, body: string }>
}

export interface HttpServer {
  readonly port: number
  /** Stops accepting connections; requests already in progress are still answered. */
  stopListening (): void
}

/** The front end: routes, the streamed body limit, and nothing slower than a ring write. */
export async function startHttpServer (options: HttpServerOptions): Promise<HttpServer> {
  const uws = loadNativeUws()
  const app: TemplatedApp = uws.App()
  const channelIndex = new Map(options.channels.map((name, index) => [name, index]))

  const { meter } = options
  const refuse = (res: HttpResponse, req: HttpRequest, answer: ErrorAnswer, closeConnection = false): void => {
    meter.answered(null, answer.status, answer.code)
    sendError(res, requestIdFrom(req.getHeader('x-request-id')), answer, closeConnection, req.getMethod() === 'head')
  }
  /**
   * Refuses a request whose body framing is ambiguous (400, then the connection closes); true when
   * it did. The 400 goes out at the end of the event-loop turn, not now: uWS closes a connection on
   * reading a request behind an unanswered one, so a request hidden in this one's body is never
   * read. Answered at once, this request would let uWS read and serve the hidden one.
   */
  const refuseAmbiguous = (res: HttpResponse, req: HttpRequest): boolean => {
    const problem = framingProblem(req)
    if (problem === null) return false
    const requestId = requestIdFrom(req.getHeader('x-request-id'))
    const head = req.getMethod() === 'head'
    let aborted = false
    res.onAborted(() => { aborted = true })
    setImmediate(() => {
      if (aborted) return
      meter.answered(null, Rejection.ambiguousLength.status, Rejection.ambiguousLength.code)
      sendError(res, requestId, { ...Rejection.ambiguousLength, message: problem }, true, head)
    })
    return true
  }
  const notAllowed = (allow: string) => (res: HttpResponse, req: HttpRequest): void => {
    if (refuseAmbiguous(res, req)) return
    refuse(res, req, { ...Rejection.methodNotAllowed, message: `${req.getMethod().toUpperCase()} is not allowed here; use ${allow}`, allow })
  }
  const handOn = arrivalHandOff(options)
  app.post('/webhooks/:channel', (res, req) => { if (!refuseAmbiguous(res, req)) handleWebhook(res, req, options, channelIndex, handOn) })
  app.any('/webhooks/:channel', notAllowed('POST'))
  const health = (res: HttpResponse, req: HttpRequest): void => {
    if (refuseAmbiguous(res, req)) return
    meter.answered(null, 200)
    sendJson(res, 200, requestIdFrom(req.getHeader('x-request-id')), '{"status":"alive"}', undefined, false, req.getMethod() === 'head')
  }
  const readiness = (res: HttpResponse, req: HttpRequest): void => {
    if (refuseAmbiguous(res, req)) return
    if (options.ready()) {
      meter.answered(null, 200)
      sendJson(res, 200, requestIdFrom(req.getHeader('x-request-id')), '{"status":"ready"}', undefined, false, req.getMethod() === 'head')
    } else {
      refuse(res, req, { status: 503, code: 'HERMES_ERR_NOT_READY', message: 'not ready: database, workers or writer down, or draining', retryAfterSeconds: 1 })
    }
  }
  const metrics = (res: HttpResponse, req: HttpRequest): void => {
    if (refuseAmbiguous(res, req)) return
    const requestId = requestIdFrom(req.getHeader('x-request-id'))
    const head = req.getMethod() === 'head'
    let aborted = false
    res.onAborted(() => { aborted = true })
    meter.answered(null, 200)
    options.scrape().then(({ contentType, body }) => {
      if (aborted) return
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', contentType).writeHeader('x-request-id', requestId)
        if (head) res.endWithoutBody() // see sendJson: no Content-Length on HEAD
        else res.end(body)
      })
    }, (error: unknown) => {
      if (!aborted) sendError(res, requestId, { ...Rejection.internal, message: `metrics unavailable: ${error instanceof Error ? error.message : String(error)}` }, false, head)
    })
  }
  // HEAD is GET without the body (RFC 9110 §9.3.2): the same status and headers.
  for (const [path, handler] of [['/healthz', health], ['/readyz', readiness], ['/metrics', metrics]] as const) {
    app.get(path, handler)
    app.head(path, handler)
    app.any(path, notAllowed('GET, HEAD'))
  }
  app.any('/*', (res, req) => {
    if (refuseAmbiguous(res, req)) return
    refuse(res, req, { ...Rejection.notFound, message: `no route for ${req.getMethod().toUpperCase()} ${req.getUrl()}` })
  })

  const socket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(options.host, options.port, (listenSocket) => {
      if (listenSocket === false) reject(new Error(`could not listen on ${options.host}:${options.port} (port in use?)`))
      else resolve(listenSocket)
    })
  })
  let listening = true
  return {
    port: uws.us_socket_local_port(socket as never),
    stopListening: () => {
      if (listening) uws.us_listen_socket_close(socket)
      listening = false
    }
  }
}

/** The most body bytes read and discarded past the limit before a refusal is answered (see handleWebhook). */
export const kDiscardBytes = 16 * 2 ** 20
/** The longest a refused body is read and discarded before the refusal is answered anyway. */
export const kDiscardMs = 5000

/**
 * How a complete webhook reaches options.onWebhook. When answers come later,
 * arrivals wait for the end of the event-loop turn: uWS parses everything one
 * read returned before the turn ends, and when that holds a pipelined request
 * behind an unanswered one it closes the connection (it cannot queue answers),
 * aborting the earlier request. Handed on only if not aborted by then, such a
 * request is never stored, so the client's retry is the first delivery; and
 * a paused connection keeps requests sent later unread until the answer.
 */
function arrivalHandOff (options: HttpServerOptions): (arrival: WebhookArrival) => void {
  if (options.answersLater !== true) return options.onWebhook
  let waiting: WebhookArrival[] = []
  const flush = (): void => {
    const arrivals = waiting
    waiting = []
    for (const arrival of arrivals) if (arrival.onAbort !== kAborted) options.onWebhook(arrival)
  }
  return (arrival) => {
    if (waiting.length === 0) setImmediate(flush)
    waiting.push(arrival)
  }
}

/** Marks an arrival whose client went away before it was handed on. */
const kAborted = (): void => {}

function handleWebhook (res: HttpResponse, req: HttpRequest, options: HttpServerOptions, channelIndex: Map<string, number>, handOn: (arrival: WebhookArrival) => void): void {
  const receivedAtMs = Date.now()
  const requestId = requestIdFrom(req.getHeader('x-request-id'))
  const channel = req.getParameter(0) ?? ''
  const index = channelIndex.get(channel)
  const { meter, maxBodyBytes } = options
  if (index === undefined) {
    meter.answered(null, 404, Rejection.unknownChannel.code)
    sendError(res, requestId, { ...Rejection.unknownChannel, message: `unknown channel "${channel.slice(0, 64)}"; configured: ${[...channelIndex.keys()].join(', ')}` })
    return
  }
  const refusal = options.refusal()
  const declared = req.getHeader('content-length')
  const declaredBytes = declared === '' ? 0 : Number(declared)
  const headers: WebhookHeaders = {
    providerSignature: req.getHeader('x-provider-signature-256'),
    webhookId: req.getHeader('webhook-id'),
    webhookTimestamp: req.getHeader('webhook-timestamp'),
    webhookSignature: req.getHeader('webhook-signature')
  }

  // A refusal decided before the body is read is answered once the body has been read and
  // discarded (at most kDiscardBytes past the limit, for at most kDiscardMs), then the connection
  // closes: closing with the body unread makes the kernel reset the connection, and the client
  // loses the answer with it (it sees EPIPE or ECONNRESET and retries forever).
  let discarding: ErrorAnswer | null = null
  let finished = false
  let timer: NodeJS.Timeout | null = null
  let arrival: WebhookArrival | null = null
  const answer = (refused: ErrorAnswer, closeConnection: boolean): void => {
    finished = true
    if (timer !== null) clearTimeout(timer)
    meter.answered(channel, refused.status, refused.code, receivedAtMs)
    sendError(res, requestId, refused, closeConnection)
  }
  const discard = (refused: ErrorAnswer): void => {
    discarding = refused
    timer = setTimeout(() => { if (!finished) answer(refused, true) }, kDiscardMs)
    timer.unref()
  }
  res.onAborted(() => {
    finished = true
    if (timer !== null) clearTimeout(timer)
    // Not yet handed on (onAbort still null): marked, so handOn skips it.
    if (arrival !== null) {
      if (arrival.onAbort === null) arrival.onAbort = kAborted
      else arrival.onAbort()
    }
  })

  if (declaredBytes > maxBodyBytes + kDiscardBytes) {
    // Too much to read through: refuse at once (a client sending 100-continue never sends it).
    answer(tooLarge(maxBodyBytes), true)
    return
  }
  // Draining: the client should take its next request to another instance, so the connection closes.
  if (refusal !== null && refusal.code === Rejection.draining.code) discard(refusal)
  else if (declaredBytes > maxBodyBytes) discard(tooLarge(maxBodyBytes))

  const chunks: Buffer[] = []
  let received = 0
  res.onData((chunk, isLast) => {
    if (finished) return
    received += chunk.byteLength
    if (discarding === null && received > maxBodyBytes) {
      // A lying or absent Content-Length (chunked): the limit holds while streaming.
      chunks.length = 0
      discard(tooLarge(maxBodyBytes))
    }
    if (discarding !== null) {
      if (isLast || received > maxBodyBytes + kDiscardBytes) answer(discarding, true)
      return
    }
    if (!isLast) {
      chunks.push(Buffer.from(chunk.slice(0))) // uWS reuses the chunk's memory after this callback
      return
    }
    finished = true
    if (refusal !== null) {
      // The database is down: refused only now that the body is read, so the connection stays
      // open and a client retrying through the outage does not reconnect for every request.
      meter.answered(channel, refusal.status, refusal.code, receivedAtMs)
      sendError(res, requestId, refusal)
      return
    }
    const later = options.answersLater === true
    // Answered at once, the usual single-chunk body is written to the ring straight from uWS's
    // memory; handed on later, it has to be copied out of it.
    const last = later ? new Uint8Array(chunk.slice(0)) : new Uint8Array(chunk)
    const body = chunks.length === 0 ? last : Buffer.concat([...chunks, last])
    arrival = { res, requestId, channelIndex: index, headers, body, receivedAtMs, onAbort: null }
    if (later) pauseUntilAnswered(res)
    handOn(arrival)
  })
}

function tooLarge (maxBodyBytes: number): ErrorAnswer {
  return { ...Rejection.bodyTooLarge, message: `request body exceeds the limit of ${maxBodyBytes} bytes` }
}

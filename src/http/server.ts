import { readFileSync } from 'node:fs'
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import { Rejection } from '../errors.js'
import { pauseUntilAnswered, sendError, sendJson, type ErrorAnswer } from './answers.js'
import { framingProblem } from './framing.js'
import { requestIdFrom } from './request-id.js'
import { loadNativeUws } from './uws.js'
import type { HttpMeter } from './http-metrics.js'
import { kKindReceipt, kKindWebhook } from '../ingest/ring-layout.js'
import { encodeNativeMeta, kMaxMetaChars, nativeHeaderNames } from '../native-meta.js'

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
  /** kKindWebhook (channelIndex names a channel) or kKindReceipt (it names a provider). */
  readonly kind: number
  /** The headers a provider-native format verifies (src/native-meta.ts); '' for Hermes' own format. */
  readonly meta: string
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
  /** Per channel (in `channels` order): its own body limit and whether its format is provider-native; absent: maxBodyBytes and Hermes' format. */
  readonly channelRoutes?: readonly ChannelRoute[]
  /** Providers that take delivery receipts on POST /callbacks/:provider (their index is the record's target). */
  readonly callbackProviders?: readonly string[]
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
  /** Serve HTTPS with these PEM files (uWebSockets.js' SSLApp); absent or null: plain HTTP. */
  readonly tls?: { readonly certFile: string, readonly keyFile: string } | null
}

export interface ChannelRoute {
  readonly maxBodyBytes: number
  readonly native: boolean
}

/** Where a POST goes: a channel's webhook or a provider's receipts; `label` is the channel (metrics), null for receipts. */
interface Target {
  readonly kind: number
  readonly index: number
  readonly label: string | null
  readonly maxBodyBytes: number
  readonly native: boolean
}

export interface HttpServer {
  readonly port: number
  /** Stops accepting connections; requests already in progress are still answered. */
  stopListening (): void
  /**
   * Re-reads the TLS files: a new SSL app with the new certificate listens
   * on the same port (SO_REUSEPORT), then the old listener closes; uWS cannot
   * swap the certificate of a running app. Connections already open keep the old certificate until
   * they close. Rejects, keeping the old certificate, when the files do not load.
   */
  reloadTls (tls: { readonly certFile: string, readonly keyFile: string }): Promise<void>
}

/** The front end: routes, the streamed body limit, and nothing slower than a ring write. */
export async function startHttpServer (options: HttpServerOptions): Promise<HttpServer> {
  const uws = loadNativeUws()
  const tls = options.tls ?? null
  // uWS listens with SO_REUSEPORT, so a renewed certificate's app can listen beside the old one
  // before it closes. Linux does not share a port the kernel picked (port 0), so with TLS an
  // ephemeral port is picked first and then listened on by number.
  let port = options.port
  if (tls !== null && port === 0) {
    const probe = await listen(uws.App(), options.host, 0)
    port = uws.us_socket_local_port(probe as never)
    uws.us_listen_socket_close(probe)
  }
  let socket = await listen(routedApp(uws, options, tls), options.host, port)
  port = uws.us_socket_local_port(socket as never)
  let listening = true
  return {
    port,
    stopListening: () => {
      if (listening) uws.us_listen_socket_close(socket)
      listening = false
    },
    reloadTls: async (files) => {
      if (tls === null) throw new Error('TLS is off; turning it on needs a restart')
      const app = routedApp(uws, options, files) // throws when the files do not load
      if (!listening) return
      const next = await listen(app, options.host, port)
      const old = socket
      socket = next
      uws.us_listen_socket_close(old)
    }
  }
}

async function listen (app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(host, port, (listenSocket) => {
      if (listenSocket === false) reject(new Error(`could not listen on ${host}:${port} (port in use?)`))
      else resolve(listenSocket)
    })
  })
}

/** An app (SSL when `tls` is given) with every route. */
function routedApp (uws: ReturnType<typeof loadNativeUws>, options: HttpServerOptions, tls: { readonly certFile: string, readonly keyFile: string } | null): TemplatedApp {
  let app: TemplatedApp
  if (tls === null) app = uws.App()
  else {
    // uWS reads the files itself and throws a bare error when they do not load; say which.
    for (const file of [tls.certFile, tls.keyFile]) readFileSync(file)
    try {
      app = uws.SSLApp({ cert_file_name: tls.certFile, key_file_name: tls.keyFile })
    } catch (error) {
      throw new Error(`TLS certificate ${tls.certFile} or key ${tls.keyFile} does not load: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
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
  const providerIndex = new Map((options.callbackProviders ?? []).map((name, index) => [name, index]))
  app.post('/webhooks/:channel', (res, req) => {
    if (refuseAmbiguous(res, req)) return
    const channel = req.getParameter(0) ?? ''
    const index = channelIndex.get(channel)
    if (index === undefined) {
      refuse(res, req, { ...Rejection.unknownChannel, message: `unknown channel "${channel.slice(0, 64)}"; configured: ${[...channelIndex.keys()].join(', ')}` })
      return
    }
    const route = options.channelRoutes?.[index]
    handleWebhook(res, req, options, { kind: kKindWebhook, index, label: channel, maxBodyBytes: route?.maxBodyBytes ?? options.maxBodyBytes, native: route?.native ?? false }, handOn)
  })
  app.post('/callbacks/:provider', (res, req) => {
    if (refuseAmbiguous(res, req)) return
    const provider = req.getParameter(0) ?? ''
    const index = providerIndex.get(provider)
    if (index === undefined) {
      const known = [...providerIndex.keys()]
      refuse(res, req, { ...Rejection.unknownProvider, message: `unknown provider "${provider.slice(0, 64)}" for delivery receipts; ${known.length === 0 ? 'no provider of kind twilio or sendgrid is configured' : `configured: ${known.join(', ')}`}` })
      return
    }
    handleWebhook(res, req, options, { kind: kKindReceipt, index, label: null, maxBodyBytes: options.maxBodyBytes, native: true }, handOn)
  })
  app.any('/callbacks/:provider', notAllowed('POST'))
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
      refuse(res, req, { ...Rejection.notReady, message: 'not ready: database, workers, writer or dispatch down, or draining', retryAfterSeconds: 1 })
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

  return app
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

function handleWebhook (res: HttpResponse, req: HttpRequest, options: HttpServerOptions, target: Target, handOn: (arrival: WebhookArrival) => void): void {
  const receivedAtMs = Date.now()
  const requestId = requestIdFrom(req.getHeader('x-request-id'))
  const channel = target.label
  const index = target.index
  const { meter } = options
  const refusal = options.refusal()
  const { maxBodyBytes } = target
  const declared = req.getHeader('content-length')
  const declaredBytes = declared === '' ? 0 : Number(declared)
  const headers: WebhookHeaders = {
    providerSignature: req.getHeader('x-provider-signature-256'),
    webhookId: req.getHeader('webhook-id'),
    webhookTimestamp: req.getHeader('webhook-timestamp'),
    webhookSignature: req.getHeader('webhook-signature')
  }
  const meta = target.native ? nativeMetaOf(req) : ''
  if (meta.length > kMaxMetaChars) {
    meter.answered(channel, 400, Rejection.headersTooLarge.code, receivedAtMs)
    sendError(res, requestId, { ...Rejection.headersTooLarge, message: `the request's path, query and signature headers exceed ${kMaxMetaChars} characters` }, true)
    return
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
    arrival = { res, requestId, channelIndex: index, kind: target.kind, meta, headers, body, receivedAtMs, onAbort: null }
    if (later) pauseUntilAnswered(res)
    handOn(arrival)
  })
}

/** What a provider-native format verifies, read before the handler returns (uWS frees the request after). */
function nativeMetaOf (req: HttpRequest): string {
  const h = nativeHeaderNames
  return encodeNativeMeta({
    path: req.getUrl(),
    query: req.getQuery() ?? '',
    host: req.getHeader(h.host),
    contentType: req.getHeader(h.contentType),
    authorization: req.getHeader(h.authorization),
    twilioSignature: req.getHeader(h.twilioSignature),
    emailSignature: req.getHeader(h.emailSignature),
    emailTimestamp: req.getHeader(h.emailTimestamp)
  })
}

function tooLarge (maxBodyBytes: number): ErrorAnswer {
  return { ...Rejection.bodyTooLarge, message: `request body exceeds the limit of ${maxBodyBytes} bytes` }
}

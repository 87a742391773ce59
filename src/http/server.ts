import { readFileSync } from 'node:fs'
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import { Rejection } from '../errors.js'
import { sendError, sendJson, type ErrorAnswer } from './answers.js'
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
  const refuse = (res: HttpResponse, requestId: string, answer: ErrorAnswer): void => {
    meter.answered(null, answer.status, answer.code)
    sendError(res, requestId, answer)
  }
  const providerIndex = new Map((options.callbackProviders ?? []).map((name, index) => [name, index]))
  app.post('/webhooks/:channel', (res, req) => {
    const channel = req.getParameter(0) ?? ''
    const index = channelIndex.get(channel)
    if (index === undefined) {
      refuse(res, requestIdFrom(req.getHeader('x-request-id')), { ...Rejection.unknownChannel, message: `unknown channel "${channel.slice(0, 64)}"; configured: ${[...channelIndex.keys()].join(', ')}` })
      return
    }
    const route = options.channelRoutes?.[index]
    handleWebhook(res, req, options, { kind: kKindWebhook, index, label: channel, maxBodyBytes: route?.maxBodyBytes ?? options.maxBodyBytes, native: route?.native ?? false })
  })
  app.post('/callbacks/:provider', (res, req) => {
    const provider = req.getParameter(0) ?? ''
    const index = providerIndex.get(provider)
    if (index === undefined) {
      const known = [...providerIndex.keys()]
      refuse(res, requestIdFrom(req.getHeader('x-request-id')), { ...Rejection.unknownProvider, message: `unknown provider "${provider.slice(0, 64)}" for delivery receipts; ${known.length === 0 ? 'no provider of kind twilio or sendgrid is configured' : `configured: ${known.join(', ')}`}` })
      return
    }
    handleWebhook(res, req, options, { kind: kKindReceipt, index, label: null, maxBodyBytes: options.maxBodyBytes, native: true })
  })
  app.any('/callbacks/:provider', (res, req) => {
    refuse(res, requestIdFrom(req.getHeader('x-request-id')), { ...Rejection.methodNotAllowed, message: `${req.getMethod().toUpperCase()} is not allowed here; use POST` })
  })
  app.any('/webhooks/:channel', (res, req) => {
    refuse(res, requestIdFrom(req.getHeader('x-request-id')), { ...Rejection.methodNotAllowed, message: `${req.getMethod().toUpperCase()} is not allowed here; use POST` })
  })
  app.get('/healthz', (res, req) => {
    meter.answered(null, 200)
    sendJson(res, 200, requestIdFrom(req.getHeader('x-request-id')), '{"status":"alive"}')
  })
  app.get('/readyz', (res, req) => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'))
    if (options.ready()) {
      meter.answered(null, 200)
      sendJson(res, 200, requestId, '{"status":"ready"}')
    } else {
      refuse(res, requestId, { ...Rejection.notReady, message: 'not ready: database, workers, writer or dispatch down, or draining', retryAfterSeconds: 1 })
    }
  })
  app.get('/metrics', (res, req) => {
    const requestId = requestIdFrom(req.getHeader('x-request-id'))
    let aborted = false
    res.onAborted(() => { aborted = true })
    meter.answered(null, 200)
    options.scrape().then(({ contentType, body }) => {
      if (aborted) return
      res.cork(() => {
        res.writeStatus('200 OK').writeHeader('content-type', contentType).writeHeader('x-request-id', requestId).end(body)
      })
    }, (error: unknown) => {
      if (!aborted) sendError(res, requestId, { ...Rejection.internal, message: `metrics unavailable: ${error instanceof Error ? error.message : String(error)}` })
    })
  })
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    app.any(path, (res, req) => {
      refuse(res, requestIdFrom(req.getHeader('x-request-id')), { ...Rejection.methodNotAllowed, message: `${req.getMethod().toUpperCase()} is not allowed here; use GET` })
    })
  }
  app.any('/*', (res, req) => {
    refuse(res, requestIdFrom(req.getHeader('x-request-id')), { ...Rejection.notFound, message: `no route for ${req.getMethod().toUpperCase()} ${req.getUrl()}` })
  })

  return app
}

function handleWebhook (res: HttpResponse, req: HttpRequest, options: HttpServerOptions, target: Target): void {
  const receivedAtMs = Date.now()
  const requestId = requestIdFrom(req.getHeader('x-request-id'))
  const channel = target.label
  const index = target.index
  const { meter } = options
  const refusal = options.refusal()
  const { maxBodyBytes } = target
  const declared = req.getHeader('content-length')
  const declaredTooLarge = declared !== '' && Number(declared) > maxBodyBytes
  if (refusal !== null && (refusal.code === Rejection.draining.code || declaredTooLarge)) {
    // Draining: close, so the client takes its next request to another instance.
    meter.answered(channel, refusal.status, refusal.code, receivedAtMs)
    sendError(res, requestId, refusal, true)
    return
  }
  if (declaredTooLarge) {
    // Refuse before reading a byte; closing the connection discards the body.
    meter.answered(channel, 413, Rejection.bodyTooLarge.code, receivedAtMs)
    sendError(res, requestId, tooLarge(maxBodyBytes), true)
    return
  }
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

  let finished = false
  let arrival: WebhookArrival | null = null
  res.onAborted(() => {
    finished = true
    arrival?.onAbort?.()
  })
  const chunks: Buffer[] = []
  let received = 0
  res.onData((chunk, isLast) => {
    if (finished) return
    received += chunk.byteLength
    if (received > maxBodyBytes) {
      // A lying or absent content-length: the limit holds while streaming.
      finished = true
      meter.answered(channel, 413, Rejection.bodyTooLarge.code, receivedAtMs)
      sendError(res, requestId, tooLarge(maxBodyBytes), true)
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
    // The usual single-chunk body is written to the ring straight from uWS's memory.
    const body = chunks.length === 0 ? new Uint8Array(chunk) : Buffer.concat([...chunks, Buffer.from(chunk)])
    arrival = { res, requestId, channelIndex: index, kind: target.kind, meta, headers, body, receivedAtMs, onAbort: null }
    options.onWebhook(arrival)
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

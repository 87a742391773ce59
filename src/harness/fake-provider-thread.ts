/**
 * The fake provider's listening side, in a worker thread of its own: it
 * accepts connections, stamps each request as its headers arrive (on a
 * monotonic clock, as milliseconds since the epoch), and hands the request to
 * the test's thread, which decides the reply. The stamp then says when the
 * provider received the request, even while the test's own thread is busy.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { setPriority } from 'node:os'

/** Counters the test's thread reads synchronously: requests being answered, the most at once, connections accepted. */
export const kInFlight = 0
export const kMaxInFlight = 1
export const kConnections = 2

/** This thread's nice value (on Linux it applies to the calling thread only). */
const kProviderNice = -10

/** A request, as the thread hands it over. */
export interface ArrivedRequest { readonly type: 'request', readonly id: number, readonly method: string, readonly url: string, readonly headers: Record<string, string | string[] | undefined>, readonly raw: string, readonly at: number }
/** The answer the test's thread decided, ready to write. */
export interface WireReply { readonly status: number, readonly headers: Record<string, string>, readonly text: string, readonly close?: 'before-response' | 'mid-response' }
export type ToProviderThread =
  | { readonly type: 'listen', readonly port: number }
  | { readonly type: 'stop' }
  | { readonly type: 'reply', readonly id: number, readonly reply: WireReply }
export type FromProviderThread = ArrivedRequest | { readonly type: 'listening', readonly port: number } | { readonly type: 'stopped' } | { readonly type: 'error', readonly message: string }

/**
 * Milliseconds since the epoch, read from the monotonic clock: the clock of every request's `at`. A test that
 * compares its own moments with those stamps reads them from this clock too, not from Date.now(), which the
 * system may step or slew while the test runs.
 */
export const providerClock = (): number => performance.timeOrigin + performance.now()

if (parentPort !== null && workerData?.fakeProvider === true) {
  const port = parentPort
  // Ahead of the machine's other work (where allowed: root), so that a loaded machine delays neither stamps nor answers.
  try { setPriority(kProviderNice) } catch {}
  const counters = new Int32Array(workerData.counters as SharedArrayBuffer)
  const open = new Map<number, ServerResponse>()
  const sockets = new Set<Socket>()
  let nextId = 0
  const post = (message: FromProviderThread): void => port.postMessage(message)

  const server = createServer((req, res) => {
    const at = providerClock()
    const inFlight = Atomics.add(counters, kInFlight, 1) + 1
    for (let most = Atomics.load(counters, kMaxInFlight); inFlight > most; most = Atomics.load(counters, kMaxInFlight)) {
      if (Atomics.compareExchange(counters, kMaxInFlight, most, inFlight) === most) break
    }
    const id = nextId++
    let done = false
    res.on('close', () => {
      if (done) return
      done = true
      open.delete(id)
      Atomics.sub(counters, kInFlight, 1)
    })
    open.set(id, res)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => post({ type: 'request', id, method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: Buffer.concat(chunks).toString('utf8'), at }))
  })
  server.on('connection', (socket: Socket) => {
    Atomics.add(counters, kConnections, 1)
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.keepAliveTimeout = 30_000

  port.on('message', (message: ToProviderThread) => {
    switch (message.type) {
      case 'listen': {
        const failed = (error: Error): void => post({ type: 'error', message: error.message })
        server.once('error', failed)
        server.listen(message.port, '127.0.0.1', () => {
          server.off('error', failed)
          post({ type: 'listening', port: (server.address() as { port: number }).port })
        })
        break
      }
      case 'stop': {
        if (!server.listening) { post({ type: 'stopped' }); break }
        server.close(() => post({ type: 'stopped' }))
        for (const socket of sockets) socket.destroy()
        break
      }
      case 'reply': {
        const res = open.get(message.id)
        if (res !== undefined && !res.destroyed) writeReply(res, message.reply)
        break
      }
    }
  })
}

function writeReply (res: ServerResponse, reply: WireReply): void {
  if (reply.close === 'before-response') { res.socket?.destroy(); return }
  if (reply.close === 'mid-response') {
    const full = reply.text === '' ? '{"sid":"SMcut-short-before-the-end"}' : reply.text
    res.writeHead(reply.status, { ...reply.headers, 'content-length': String(Buffer.byteLength(full)) })
    res.write(full.slice(0, Math.floor(full.length / 2)), () => res.socket?.destroy())
    return
  }
  res.writeHead(reply.status, { ...reply.headers, 'content-length': String(Buffer.byteLength(reply.text)) })
  res.end(reply.text)
}

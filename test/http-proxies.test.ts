// HTTP as proxies and raw clients speak it, over raw sockets (node:net): ambiguous framing is refused,
// HEAD has no body, every 405 says what is allowed, pipelined requests are answered in order or refused
// before anything is stored, and a 413 reaches a client that sends a body far over the limit.
// What uWebSockets.js cannot answer (HTTP/1.0, more than 48 header lines) is pinned here as documented
// in docs/proxies.md, so that the day it can, this test says the document is out of date.
import t from 'tap'
import { connect } from 'node:net'
import { SECRET, smsPayload, startTestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'

const h = await startTestHermes(t)

interface Exchange {
  /** Everything the server sent. */
  readonly received: Buffer
  /** The socket error the client saw (EPIPE, ECONNRESET), if any. */
  readonly error: string | null
  /** The server closed the connection (rather than the client giving up after `idleMs`). */
  readonly closed: boolean
}

/** How long a client that has its `answers` waits for anything more the server might send. */
const kGraceMs = 200

/**
 * Writes each part (the next once the previous is flushed, `gapMs` apart), then reads until the
 * server closes the connection or has sent nothing for `idleMs`, or, with `answers` (and `heads`,
 * as for answers()), for kGraceMs once that many complete answers arrived.
 */
async function exchange (parts: ReadonlyArray<string | Buffer>, options: { idleMs?: number, gapMs?: number, readAfterWrite?: boolean, answers?: number, heads?: readonly boolean[] } = {}): Promise<Exchange> {
  const idleMs = options.idleMs ?? 1500
  return await new Promise((resolve) => {
    const socket = connect(h.hermes.port, '127.0.0.1')
    const chunks: Buffer[] = []
    let error: string | null = null
    let idle: NodeJS.Timeout | null = null
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      if (idle !== null) clearTimeout(idle)
      socket.destroy()
      resolve({ received: Buffer.concat(chunks), error, closed })
    }
    const arm = (): void => {
      if (idle !== null) clearTimeout(idle)
      const all = options.answers !== undefined && completeAnswers(Buffer.concat(chunks), options.heads) >= options.answers
      idle = setTimeout(() => finish(false), all ? kGraceMs : idleMs)
    }
    socket.on('data', (chunk: Buffer) => { chunks.push(chunk); arm() })
    socket.on('error', (e: NodeJS.ErrnoException) => { error ??= e.code ?? e.message })
    socket.on('close', () => finish(true))
    // A client that reads its answer only once its whole request is sent (as most do).
    if (options.readAfterWrite === true) socket.pause()
    const write = (i: number): void => {
      if (i >= parts.length || socket.destroyed) { socket.resume(); arm(); return }
      socket.write(parts[i]!, (error) => {
        if (error !== undefined && error !== null) { socket.resume(); arm(); return }
        setTimeout(() => write(i + 1), options.gapMs ?? 0)
      })
    }
    socket.on('connect', () => write(0))
  })
}

interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** Splits a byte stream into HTTP/1.1 answers (Content-Length framing; HEAD answers have no body). */
function answers (received: Buffer, heads: readonly boolean[] = []): Answer[] {
  const out: Answer[] = []
  let at = 0
  while (at < received.length) {
    const end = received.indexOf('\r\n\r\n', at)
    if (end < 0) break
    const [statusLine, ...lines] = received.subarray(at, end).toString('latin1').split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const length = heads[out.length] === true ? 0 : Number(headers['content-length'] ?? 0)
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8') })
    at = end + 4 + length
  }
  return out
}

/** How many complete answers (head and Content-Length body) the bytes hold. */
function completeAnswers (received: Buffer, heads: readonly boolean[] = []): number {
  let at = 0
  let n = 0
  for (;;) {
    const end = received.indexOf('\r\n\r\n', at)
    if (end < 0) return n
    const length = heads[n] === true ? 0 : Number(/\r\ncontent-length:\s*(\d+)/i.exec(received.subarray(at, end).toString('latin1'))?.[1] ?? 0)
    if (end + 4 + length > received.length) return n
    at = end + 4 + length
    n++
  }
}

function signedPost (payload: Record<string, unknown>, extraHeaders = ''): string {
  const body = JSON.stringify(payload)
  const signature = seedSignature(SECRET, body)['x-provider-signature-256']!
  return `POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nContent-Type: application/json\r\nX-Provider-Signature-256: ${signature}\r\n${extraHeaders}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

async function storedIds (ids: readonly unknown[]): Promise<string[]> {
  const r = await h.db.query<{ external_id: string }>('SELECT external_id FROM message WHERE external_id = ANY($1) ORDER BY external_id', [ids])
  return r.rows.map((row) => row.external_id)
}

t.test('two differing Content-Length headers: 400, the connection closed, and no smuggled webhook is stored', async (t) => {
  const outer = smsPayload()
  const smuggled = smsPayload()
  const outerBody = JSON.stringify(outer)
  const inner = signedPost(smuggled)
  const signature = seedSignature(SECRET, outerBody)['x-provider-signature-256']!
  // A proxy framing by the last Content-Length forwards this as one request; uWS frames by the first.
  const request = `POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nX-Provider-Signature-256: ${signature}\r\n` +
    `Content-Length: ${Buffer.byteLength(outerBody)}\r\nContent-Length: ${Buffer.byteLength(outerBody) + Buffer.byteLength(inner)}\r\n\r\n${outerBody}${inner}`
  const result = await exchange([request])
  // uWS closes the connection on reading the hidden request behind the unanswered first one,
  // before the 400 can go out; either way nothing after the first request is read.
  t.ok([0, 400].includes(answers(result.received)[0]?.status ?? 0) && answers(result.received).length <= 1, 'no answer, or one 400')
  t.ok(result.closed, 'the server closed the connection')
  await new Promise((resolve) => setTimeout(resolve, 300)) // what would have been stored has had time to commit
  t.same(await storedIds([outer['id'], smuggled['id']]), [], 'neither webhook is stored')

  const alone = await exchange([`POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`])
  const got = answers(alone.received)
  t.same(got.map((a) => a.status), [400], 'without a request behind it: one answer, a 400')
  t.equal(JSON.parse(got[0]?.body ?? '{}').error?.code, 'HERMES_ERR_AMBIGUOUS_LENGTH', 'naming the problem')
  t.ok(alone.closed, 'and the connection closed')

  const list = await exchange([`GET /healthz HTTP/1.1\r\nHost: hermes\r\nContent-Length: 0, 7\r\n\r\n`])
  t.ok(list.closed && answers(list.received).every((a) => a.status === 400), 'a list of values is never served (uWS closes the connection itself)')
  const empty = await exchange([`GET /healthz HTTP/1.1\r\nHost: hermes\r\nContent-Length:\r\nContent-Length: 3\r\n\r\nabc`], { answers: 1 })
  t.same(answers(empty.received).map((a) => a.status), [400], 'an empty Content-Length beside another (CVE-2023-40225 in HAProxy) is refused')
  const both = await exchange([`POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`])
  t.ok(both.closed && answers(both.received).length === 0, 'Transfer-Encoding with Content-Length is never served (uWS closes the connection itself)')
  const same = await exchange([`GET /healthz HTTP/1.1\r\nHost: hermes\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n`], { answers: 1 })
  t.same(answers(same.received).map((a) => a.status), [200], 'repeating the same value is one value')
})

t.test('HEAD /healthz and /readyz answer like GET without a body, and the connection stays in step', async (t) => {
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    const result = await exchange([`HEAD ${path} HTTP/1.1\r\nHost: hermes\r\n\r\nGET ${path} HTTP/1.1\r\nHost: hermes\r\n\r\n`], { answers: 2, heads: [true, false] })
    const [head, get] = answers(result.received, [true, false])
    t.equal(head?.status, 200, `HEAD ${path} is 200`)
    t.equal(get?.status, 200, `the GET after it is read as the next answer (no body after the HEAD's headers): ${path}`)
    t.equal(head?.headers['content-type'], get?.headers['content-type'], `HEAD ${path} has GET's content-type`)
    t.notOk(head?.headers['content-length'] === '0' && (get?.body.length ?? 0) > 0, `HEAD ${path} does not claim an empty body`)
  }
  for (const [path, status] of [['/webhooks/sms', 405], ['/nowhere', 404]] as const) {
    const result = await exchange([`HEAD ${path} HTTP/1.1\r\nHost: hermes\r\n\r\nGET /healthz HTTP/1.1\r\nHost: hermes\r\n\r\n`], { answers: 2, heads: [true, false] })
    const got = answers(result.received, [true, false])
    t.same(got.map((a) => a.status), [status, 200], `HEAD ${path}: ${status} without a body, then the next answer`)
  }
})

t.test('every 405 carries Allow', async (t) => {
  const cases = [['GET', '/webhooks/sms', 'POST'], ['PUT', '/webhooks/sms', 'POST'], ['POST', '/healthz', 'GET, HEAD'], ['DELETE', '/readyz', 'GET, HEAD'], ['POST', '/metrics', 'GET, HEAD']]
  for (const [method, path, allow] of cases) {
    const got = answers((await exchange([`${method} ${path} HTTP/1.1\r\nHost: hermes\r\nContent-Length: 0\r\n\r\n`], { answers: 1 })).received)
    t.equal(got[0]?.status, 405, `${method} ${path} is 405`)
    t.equal(got[0]?.headers['allow'], allow, `${method} ${path}: Allow: ${allow}`)
  }
})

t.test('pipelined requests after a POST are answered in order, or refused before anything is stored', async (t) => {
  for (const gapMs of [-1, 0, 5]) {
    const posts = [smsPayload(), smsPayload()]
    const requests = [...posts.map((p) => signedPost(p)), 'GET /healthz HTTP/1.1\r\nHost: hermes\r\n\r\n']
    const result = await exchange(gapMs < 0 ? [requests.join('')] : requests, { gapMs: Math.max(0, gapMs), answers: requests.length })
    const got = answers(result.received)
    const how = gapMs < 0 ? 'in one write' : `written ${gapMs} ms apart`
    await new Promise((resolve) => setTimeout(resolve, 300))
    const stored = await storedIds(posts.map((p) => p['id']))
    // The contract: a prefix of the requests is answered, in order; once the server refuses the
    // rest by closing the connection, none of them is stored.
    const answered = got.length
    t.same(got.map((x) => x.status), [202, 202, 200].slice(0, answered), `${how}: answers in request order`)
    t.same(stored, posts.slice(0, Math.min(answered, 2)).map((p) => p['id'] as string).sort(), `${how}: exactly the answered webhooks are stored`)
    if (answered < requests.length) t.ok(result.closed, `${how}: the rest refused by closing the connection`)
    t.comment(`${how}: ${answered} of ${requests.length} answered`)
  }
})

const kBig = 2_600_000

function chunked (body: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let i = 0; i < body.length; i += 16_384) {
    const piece = body.subarray(i, i + 16_384)
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}

t.test('a 2.6 MB body to a 64 KiB channel gets its 413, with Content-Length or chunked', async (t) => {
  const big = Buffer.alloc(kBig, 'a')
  // Streamed in 64 KiB writes, each after the last is accepted, and read only once all is sent:
  // a client like curl that gives up on a failed write (EPIPE, ECONNRESET) never sees an answer.
  const cases: Array<[string, Buffer]> = [
    ['Content-Length', Buffer.concat([Buffer.from(`POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nContent-Length: ${kBig}\r\n\r\n`), big])],
    ['chunked', Buffer.concat([Buffer.from('POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nTransfer-Encoding: chunked\r\n\r\n'), chunked(big)])]
  ]
  for (const [how, request] of cases) {
    const pieces = Array.from({ length: Math.ceil(request.length / 65_536) }, (_, i) => request.subarray(i * 65_536, (i + 1) * 65_536))
    const result = await exchange(pieces, { readAfterWrite: true })
    const got = answers(result.received)
    t.equal(got[0]?.status, 413, `${how}: the client reads the 413`)
    t.equal(JSON.parse(got[0]?.body ?? '{}').error?.code, 'HERMES_ERR_BODY_TOO_LARGE', `${how}: with its JSON code`)
    t.equal(result.error, null, `${how}: no EPIPE or reset on the client's side`)
    t.ok(result.closed, `${how}: then the server closes the connection`)
  }
})

t.test('a client that stalls inside a body too large is answered 413 within the discard time', async (t) => {
  const started = Date.now()
  const result = await exchange([`POST /webhooks/sms HTTP/1.1\r\nHost: hermes\r\nContent-Length: ${kBig}\r\n\r\n`, Buffer.alloc(100_000, 'a')], { idleMs: 9000 })
  t.equal(answers(result.received)[0]?.status, 413, `answered 413 after ${Date.now() - started} ms`)
  t.ok(result.closed, 'and closed')
})

t.test('what uWebSockets.js cannot answer, as docs/proxies.md says', async (t) => {
  const v10 = await exchange(['GET /healthz HTTP/1.0\r\nHost: hermes\r\n\r\n'], { idleMs: 1000 })
  t.equal(v10.received.length, 0, 'HTTP/1.0 is not answered: a proxy must speak HTTP/1.1 to Hermes (proxy_http_version 1.1)')
  const lines = (n: number): string => Array.from({ length: n - 1 }, (_, i) => `X-Header-${i}: v\r\n`).join('')
  const at48 = await exchange([`GET /healthz HTTP/1.1\r\nHost: hermes\r\n${lines(48)}\r\n`], { answers: 1 })
  t.same(answers(at48.received).map((a) => a.status), [200], '48 header lines (Host included) are answered')
  const at49 = await exchange([`GET /healthz HTTP/1.1\r\nHost: hermes\r\n${lines(49)}\r\n`], { idleMs: 1000 })
  t.equal(at49.received.length, 0, '49 header lines are not: the documented limit is 48')
})

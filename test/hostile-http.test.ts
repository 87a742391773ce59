// Hostile HTTP: trickled requests are cut off, idle connections and invalid-signature floods do not starve good traffic.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { smsPayload, startTestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'

const h = await startTestHermes(t)

/** Opens a raw connection, writes `head`, then one byte of `trickle` every 500 ms; resolves with when the server closed it. */
async function trickle (head: string, drip: string): Promise<{ closedAfterMs: number, received: string }> {
  return await new Promise((resolve) => {
    const started = Date.now()
    const socket = connect(h.hermes.port, '127.0.0.1')
    let received = ''
    socket.on('data', (d) => { received += d.toString() })
    socket.on('error', () => {})
    socket.write(head)
    const timer = setInterval(() => { if (!socket.destroyed) socket.write(drip) }, 500)
    const giveUp = setTimeout(() => socket.destroy(), 30_000)
    socket.on('close', () => { clearInterval(timer); clearTimeout(giveUp); resolve({ closedAfterMs: Date.now() - started, received }) })
  })
}

// The server cuts trickled requests off only after its idle timeout (uWS: 10 s), so the two trickles start
// now and run beside the other tests; the last test waits for them.
const trickled = Promise.all([
  trickle('POST /webhooks/sms HTTP/1.1\r\nHost: x\r\n', 'X'),
  trickle('POST /webhooks/sms HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{', 'a')
])

t.test('hundreds of idle connections do not stop good webhooks', async (t) => {
  const idle: Socket[] = await Promise.all(Array.from({ length: 300 }, async () => await new Promise<Socket>((resolve) => {
    const s = connect(h.hermes.port, '127.0.0.1', () => resolve(s))
    s.on('error', () => {})
  })))
  t.teardown(() => { for (const s of idle) s.destroy() })
  const started = Date.now()
  const answers = await Promise.all(Array.from({ length: 50 }, async () => await h.postSigned('sms', smsPayload())))
  t.same(answers.map((a) => a.status), Array(50).fill(202))
  t.ok(Date.now() - started < 10_000, `50 webhooks answered in ${Date.now() - started} ms beside 300 idle connections`)
})

t.test('a flood of bad signatures does not disturb valid traffic', async (t) => {
  const valid = Array.from({ length: 100 }, () => smsPayload())
  const answers = await Promise.all([
    ...valid.map(async (p) => await h.postSigned('sms', p)),
    ...Array.from({ length: 500 }, async () => {
      const body = JSON.stringify(smsPayload())
      return await h.post('sms', body, seedSignature('forged-secret', body))
    })
  ])
  t.same(answers.slice(0, 100).map((a) => a.status), Array(100).fill(202), 'every valid webhook is accepted')
  t.ok(answers.slice(100).every((a) => a.status === 401 && a.json.error.code === 'HERMES_ERR_SIGNATURE_INVALID'), 'every forged one is refused')
  const stored = await h.db.query('SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1)', [valid.map((p) => p['id'])])
  t.equal(stored.rows[0]!['n'], 100)
})

t.test('slowloris: trickled headers and a trickled body are cut off by the server', async (t) => {
  const [headers, body] = await trickled
  t.ok(headers.closedAfterMs < 20_000, `trickled headers closed after ${headers.closedAfterMs} ms`)
  t.ok(body.closedAfterMs < 20_000, `trickled body closed after ${body.closedAfterMs} ms`)
  t.equal(body.received, '', 'an unfinished request is never answered as accepted')
})

/**
 * A fast loopback Twilio for the benches: uWebSockets.js in its own
 * process, reading each request's body and answering 201 with a fresh sid,
 * nothing else. The test suite's fake provider parses and records every
 * request so tests can assert on them; that costs it ~50 us of CPU per
 * request on the machine under test, so measuring a dispatcher against it
 * measures the fake. Real providers run elsewhere.
 *
 * Prints {"msg":"listening","port":N}. `GET /count` answers how many
 * messages it has accepted. Stops on SIGTERM.
 */
import { loadNativeUws } from '../src/http/uws.js'

const uws = loadNativeUws()
const app = uws.App()
let accepted = 0
app.post('/2010-04-01/Accounts/:sid/Messages.json', (res) => {
  res.onAborted(() => {})
  res.onData((_chunk, isLast) => {
    if (!isLast) return
    const sid = `SM${(++accepted).toString(16).padStart(32, '0')}`
    res.cork(() => res.writeStatus('201 Created').writeHeader('content-type', 'application/json').end(`{"sid":"${sid}","status":"queued"}`))
  })
})
app.get('/count', (res) => {
  res.cork(() => res.writeHeader('content-type', 'application/json').end(JSON.stringify({ accepted })))
})
app.listen('127.0.0.1', Number(process.env['PORT'] ?? 0), (socket) => {
  if (socket === false) process.exit(1)
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: uws.us_socket_local_port(socket as never) })}\n`)
})
process.on('SIGTERM', () => process.exit(0))

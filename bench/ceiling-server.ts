/** The HTTP ceiling: uWebSockets.js reading the body and answering 202, doing nothing else. Env: PORT. */
import { loadNativeUws } from '../src/http/uws.js'

const uws = loadNativeUws()
const app = uws.App()
app.post('/*', (res) => {
  res.onAborted(() => {})
  res.onData((_chunk, isLast) => {
    if (isLast) res.cork(() => res.writeStatus('202 Accepted').writeHeader('content-type', 'application/json').end('{"status":"accepted"}'))
  })
})
app.listen('127.0.0.1', Number(process.env['PORT'] ?? 0), (socket) => {
  if (socket === false) process.exit(1)
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: uws.us_socket_local_port(socket as never) })}\n`)
})
process.on('SIGTERM', () => process.exit(0))

/**
 * The loopback fake provider of the test suite (Twilio, SendGrid and http
 * APIs), run as its own process for the bench so its CPU is accounted
 * apart from Hermes'. Prints {"msg":"listening","port":N}; stops on SIGTERM.
 */
import { startFakeProvider } from '../test/helpers/fake-provider.js'

const cleanup: Array<() => unknown> = []
const fake = await startFakeProvider({ teardown: (fn) => { cleanup.push(fn) } }, { record: false })
process.stdout.write(`${JSON.stringify({ msg: 'listening', port: fake.port })}\n`)
process.on('SIGTERM', () => {
  void Promise.all(cleanup.map(async (fn) => await fn())).then(() => process.exit(0))
})

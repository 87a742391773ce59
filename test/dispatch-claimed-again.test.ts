// A retry due at once can be claimed again by the claim session before the write session's answer (that its outcome
// was stored) reaches the dispatcher. That new claim is new work: the message must be sent, not left claimed by
// nobody until the lease runs out. A loopback proxy holds back the write session's replies to make that order certain.
import t from 'tap'
import { createServer, connect, type Socket } from 'node:net'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { Dispatcher } from '../src/dispatch/dispatcher.js'
import { createLogger } from '../src/log.js'

const kWriteReplyDelayMs = 300

/** Forwards to PostgreSQL, delaying every reply to the session whose startup names `application`. */
async function delayingProxy (upstream: URL, application: string, delayMs: number): Promise<{ url: string, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const server = connect(Number(upstream.port), upstream.hostname)
    sockets.add(client).add(server)
    let delayed: boolean | null = null // decided by the client's first packet (the startup message)
    client.on('data', (chunk) => {
      delayed ??= chunk.includes(application)
      server.write(chunk)
    })
    server.on('data', (chunk) => {
      if (delayed === true) setTimeout(() => { if (!client.destroyed) client.write(chunk) }, delayMs)
      else client.write(chunk)
    })
    const end = (): void => { client.destroy(); server.destroy(); sockets.delete(client); sockets.delete(server) }
    client.on('close', end).on('error', end)
    server.on('close', () => setTimeout(end, delayMs)).on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = new URL(upstream.href)
  url.hostname = '127.0.0.1'
  url.port = String((server.address() as { port: number }).port)
  return {
    url: url.href,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const provider = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: provider.url, accountSid: 'AC1', authToken: 'tok', concurrency: 1, timeoutMs: 1000,
      // A retry is due the moment its outcome is stored.
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 5, baseDelayMs: 0, maxDelayMs: 0 }
    }
  }
})
const proxy = await delayingProxy(new URL(fx.db.url), 'hermes-dispatch-write', kWriteReplyDelayMs)
t.teardown(proxy.close)

t.test('a message claimed again before its stored outcome is reported is sent, not held until its lease ends', async (t) => {
  provider.script({ status: 500, body: { message: 'down for a moment' } })
  const [id] = await fx.insert('sms', 1)
  const dispatcher = new Dispatcher({
    databaseUrl: proxy.url,
    providers: Object.values(fx.config.providers),
    channels: Object.values(fx.config.channels),
    log: createLogger(process.env['DISPATCH_LOG'] ?? 'silent'),
    pollMs: 50, // claims (undelayed) run several times while the write's reply is held back
    leaseMs: 60_000
  })
  t.teardown(() => dispatcher.stop())
  await dispatcher.start()
  const rows = await fx.waitForStatus([id!], 'sent', 10_000)
  t.equal(rows.get(id!)?.attempts, 2, 'one failed attempt and one that went out')
  t.equal(provider.requestsTo(provider.requests[0]!.to!).length, 2, 'the provider got the message twice: the 500 and the send')
  await dispatcher.stop()
})

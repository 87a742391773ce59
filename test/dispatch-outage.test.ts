// Outages lose nothing: a provider that is down is retried until it is back, a stopped dispatcher gives its claims back for the next one, a crashed one's claims come due when their lease ends, and outcomes survive a database outage.
import t from 'tap'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import type { DispatchData, FromDispatch, ToDispatch } from '../src/messages.js'
import { dispatchFixture, startFakeProvider, type DispatchFixture } from '../src/harness/fake-provider.js'

const fake = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' } },
  providers: {
    twilio: {
      kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 20, timeoutMs: 2000,
      rateLimit: { perSecond: 1000, burst: 100 }, retry: { maxAttempts: 100, baseDelayMs: 20, maxDelayMs: 200 }
    }
  }
}, { ownServer: true })

/** The dispatch thread, as the lead will run it from hermes.ts. */
async function startThread (t: { teardown (fn: () => unknown): void }, overrides: Partial<DispatchData> = {}): Promise<{ worker: Worker; send: (m: ToDispatch) => void; stop: () => Promise<void> }> {
  const data: DispatchData = {
    databaseUrl: fx.db.url,
    providers: Object.values(fx.config.providers),
    channels: Object.values(fx.config.channels),
    logLevel: process.env['DISPATCH_LOG'] ?? 'silent',
    pollMs: 100,
    ...overrides
  }
  const worker = new Worker(new URL('../workers/dispatch.js', import.meta.url), { workerData: data })
  const first = await once(worker, 'message') as [FromDispatch]
  if (first[0].type !== 'ready') throw new Error(`dispatch thread did not start: ${JSON.stringify(first[0])}`)
  let exited = false
  worker.once('exit', () => { exited = true })
  const stop = async (): Promise<void> => {
    if (exited) return
    const stopped = new Promise<void>((resolve) => worker.on('message', (m: FromDispatch) => { if (m.type === 'stopped') resolve() }))
    worker.postMessage({ type: 'stop' } satisfies ToDispatch)
    await stopped
    await once(worker, 'exit')
  }
  t.teardown(async () => { if (!exited) await worker.terminate() })
  return { worker, send: (m) => worker.postMessage(m), stop }
}

async function until (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function statuses (f: DispatchFixture, ids: readonly string[]): Promise<string[]> {
  return [...(await f.rows(ids)).values()].map((r) => r.status)
}

t.test('a provider that refuses connections is retried until it is back', async (t) => {
  const dispatcher = await fx.startDispatcher({ pollMs: 100 })
  await fake.stop()
  const ids = await fx.insert('sms', 20, { to: (i) => `+1310555${String(i).padStart(4, '0')}` })
  dispatcher.wake()
  await until('every message to have failed once', async () => [...(await fx.rows(ids)).values()].every((r) => r.attempts >= 1))
  const row = (await fx.rows(ids)).get(ids[0]!)!
  t.ok(row.status === 'pending' || row.status === 'sending', `still to be retried, not failed (${row.status})`)
  t.match(row.lastError, /ECONNREFUSED/)
  await fake.start()
  await fx.waitForStatus(ids, 'sent')
  const delivered = new Set(fake.requests.map((r) => r.to))
  t.equal(delivered.size, 20, 'all 20 reached the provider once it was back')
  await dispatcher.stop()
})

t.test('across a dispatcher restart (the thread): a stopped dispatcher gives its claims back and the next one delivers each message once', async (t) => {
  await fake.stop()
  const first = await startThread(t)
  const ids = await fx.insert('sms', 10, { to: (i) => `+1415555${String(i).padStart(4, '0')}` })
  first.send({ type: 'wake' })
  await until('every message to have been tried', async () => [...(await fx.rows(ids)).values()].every((r) => r.attempts >= 1))
  await first.stop()
  const afterStop = [...(await fx.rows(ids)).values()]
  t.ok(afterStop.every((r) => r.status === 'pending' && r.claimedUntil === null), 'no message left claimed by the stopped dispatcher')

  await fake.start()
  const before = fake.requests.length
  const second = await startThread(t)
  second.send({ type: 'wake' })
  await fx.waitForStatus(ids, 'sent')
  const sends = fake.requests.slice(before)
  t.equal(sends.length, 10, 'each message sent once by the new dispatcher')
  t.equal(new Set(sends.map((r) => r.to)).size, 10)
  await second.stop()
})

t.test('a crashed dispatcher: its claims come due when their lease ends, and another one delivers them', async (t) => {
  const recipients = Array.from({ length: 5 }, (_, i) => `+1505555${String(i).padStart(4, '0')}`)
  for (const to of recipients) fake.scriptFor(to, { delayMs: 5000 }) // the first try of each hangs
  const crashing = await startThread(t, { leaseMs: 1500, providers: [{ ...fx.config.providers['twilio']!, timeoutMs: 400 }] })
  const ids = await fx.insert('sms', 5, { to: (i) => recipients[i]! })
  crashing.send({ type: 'wake' })
  await until('all five sends to be in flight', () => fake.inFlight === 5)
  await crashing.worker.terminate() // no stop(): the claims stay behind, as after a crash
  const held = [...(await fx.rows(ids)).values()]
  t.ok(held.every((r) => r.status === 'sending' && r.claimedUntil !== null), 'the crashed dispatcher\'s claims are still there')
  const leaseEnds = Math.min(...held.map((r) => r.claimedUntil!.getTime()))

  const before = fake.requests.length
  const rescuer = await startThread(t, { leaseMs: 1500 })
  rescuer.send({ type: 'wake' })
  await fx.waitForStatus(ids, 'sent', 15_000)
  const retries = fake.requests.slice(before)
  t.equal(retries.length, 5, 'each sent once more')
  t.ok(retries.every((r) => r.at >= leaseEnds), 'none before the crashed claim\'s lease ended')
  await rescuer.stop()
})

t.test('outcomes survive a database outage: sends that finish while it is down are stored when it is back, not sent again', { skip: !fx.db.embedded && 'needs an embedded PostgreSQL it can stop' }, async (t) => {
  const dispatcher = await fx.startDispatcher({ pollMs: 100 })
  const recipients = Array.from({ length: 10 }, (_, i) => `+1617555${String(i).padStart(4, '0')}`)
  for (const to of recipients) fake.scriptFor(to, { delayMs: 1500 })
  const ids = await fx.insert('sms', 10, { to: (i) => recipients[i]! })
  const before = fake.requests.length
  dispatcher.wake()
  await until('all ten sends to be in flight', () => fake.inFlight === 10)
  await fx.db.stop()
  await until('the provider to have answered all ten', () => fake.inFlight === 0)
  await fx.db.start()
  await fx.waitForStatus(ids, 'sent', 20_000)
  t.equal(fake.requests.length - before, 10, 'no message sent twice')
  t.same(await statuses(fx, ids), Array(10).fill('sent'))
  await dispatcher.stop()
})

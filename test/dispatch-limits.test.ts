// A provider's limits change while Hermes runs, without a restart: through the Dispatcher, the dispatch thread's
// 'limits' message and Hermes.updateProviderLimits. A raised cap is used at once, a lowered one lets the sends in
// flight finish and holds from then on, bad limits are refused with a stable code and change nothing. The rules
// themselves (spent tokens stay spent, draining over a lowered cap) are pinned on a fake clock in test/lane-core.test.ts.
import t from 'tap'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import type { DispatchData, FromDispatch } from '../src/messages.js'
import { dispatchFixture, startFakeProvider } from '../src/harness/fake-provider.js'
import { startTestHermes, threadExecArgv } from './helpers/hermes.js'
import { until } from '../src/harness/wait.js'

const fast = { perSecond: 1000, burst: 100 }
const fake = await startFakeProvider(t)
const fx = await dispatchFixture(t, {
  channels: { sms: { provider: 'twilio' } },
  providers: {
    twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 1, timeoutMs: 30_000, rateLimit: fast }
  }
})

t.test('a raised cap is used at once; a lowered one lets the sends in flight finish and holds from then on', async (t) => {
  fake.respond(() => ({ hold: true }))
  const ids = await fx.insert('sms', 8)
  const dispatcher = await fx.startDispatcher({ pollMs: 100 })
  dispatcher.wake()
  await until('one send held at the provider', 10_000, async () => fake.inFlight === 1 ? true : undefined)

  dispatcher.updateProviderLimits('twilio', { rateLimit: fast, concurrency: 3 })
  t.same(dispatcher.providerLimits('twilio'), { rateLimit: fast, concurrency: 3 }, 'the new limits are in force')
  await until('three sends held at the provider', 10_000, async () => fake.inFlight === 3 ? true : undefined)
  t.pass('the raised cap was used without a restart')

  dispatcher.updateProviderLimits('twilio', { rateLimit: fast, concurrency: 1 })
  t.equal(fake.inFlight, 3, 'the sends in flight over the lowered cap are not cut off')
  let most = 0
  // Counted once a fourth request has reached the provider: by then the three held ones are done.
  const peek = setInterval(() => { if (fake.requests.length > 3) most = Math.max(most, dispatcher.snapshot()['twilio']!.sending) }, 2)
  t.teardown(() => clearInterval(peek))
  fake.respond(null)
  fake.releaseHeld()
  await fx.waitForStatus(ids, 'sent', 20_000)
  clearInterval(peek)
  t.ok(most <= 1, `after the three finished, never more than one in flight (saw ${most})`)
  t.ok(fake.requests.length === 8 && most >= 1, 'and the lowered cap was used')
  t.equal(fake.maxInFlight, 3, 'never more than the raised cap at the provider')
  t.equal(fake.requests.length, 8, 'each message sent once')
})

t.test('bad limits, or a provider not configured, are refused with a stable code and change nothing', async (t) => {
  const dispatcher = await fx.startDispatcher()
  const before = dispatcher.providerLimits('twilio')
  t.throws(() => dispatcher.updateProviderLimits('fax', { rateLimit: fast, concurrency: 1 }), { code: 'HERMES_ERR_UNKNOWN_PROVIDER', message: 'no provider named "fax" is configured' })
  t.throws(() => dispatcher.updateProviderLimits('twilio', { rateLimit: { perSecond: 0, burst: 5 }, concurrency: 1 }), { code: 'HERMES_ERR_PROVIDER_LIMITS', message: 'provider "twilio": rateLimit.perSecond must be a positive number' })
  t.throws(() => dispatcher.updateProviderLimits('twilio', { rateLimit: { perSecond: 5, burst: 0.5 }, concurrency: 1 }), { code: 'HERMES_ERR_PROVIDER_LIMITS', message: 'provider "twilio": rateLimit.burst must be a number >= 1' })
  t.throws(() => dispatcher.updateProviderLimits('twilio', { rateLimit: fast, concurrency: 1.5 }), { code: 'HERMES_ERR_PROVIDER_LIMITS', message: 'provider "twilio": concurrency must be a positive integer' })
  t.same(dispatcher.providerLimits('twilio'), before, 'the limits are as they were')
})

t.test('the dispatch thread answers a limits message: applied, or refused with its code', async (t) => {
  const data: DispatchData = { databaseUrl: fx.db.url, providers: Object.values(fx.config.providers), channels: Object.values(fx.config.channels), logLevel: 'silent' }
  const worker = new Worker(new URL('../workers/dispatch.js', import.meta.url), { workerData: data, execArgv: [...threadExecArgv] })
  t.teardown(() => worker.terminate())
  const next = async (): Promise<FromDispatch> => (await once(worker, 'message') as [FromDispatch])[0]
  t.match(await next(), { type: 'ready' })
  worker.postMessage({ type: 'limits', provider: 'twilio', limits: { rateLimit: { perSecond: 5, burst: 5 }, concurrency: 2 } })
  t.same(await next(), { type: 'limits', provider: 'twilio', ok: true })
  worker.postMessage({ type: 'limits', provider: 'twilio', limits: { rateLimit: { perSecond: 5, burst: 5 }, concurrency: 0 } })
  t.match(await next(), { type: 'limits', provider: 'twilio', ok: false, code: 'HERMES_ERR_PROVIDER_LIMITS', message: /concurrency must be a positive integer/ })
  worker.postMessage({ type: 'stop' })
  t.match(await next(), { type: 'stopped' })
})

t.test('Hermes.updateProviderLimits reaches the running dispatch thread', async (t) => {
  const h = await startTestHermes(t)
  await h.hermes.updateProviderLimits('mock', { rateLimit: { perSecond: 50, burst: 10 }, concurrency: 2 })
  await t.rejects(h.hermes.updateProviderLimits('mock', { rateLimit: { perSecond: -1, burst: 10 }, concurrency: 2 }), { code: 'HERMES_ERR_PROVIDER_LIMITS' })
  await t.rejects(h.hermes.updateProviderLimits('nope', { rateLimit: { perSecond: 1, burst: 1 }, concurrency: 1 }), { code: 'HERMES_ERR_UNKNOWN_PROVIDER' })
})

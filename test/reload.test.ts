// SIGHUP reload: a rotated secret takes effect within a second with no request refused that the
// old or the new set accepts; a change that needs a restart, or a broken file, is refused with a log
// line naming it and the running configuration stays.
import t from 'tap'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { resolveConfig, type HermesConfig } from '../src/config.js'
import { ReloadRefusedError } from '../src/errors.js'
import { createLogger } from '../src/log.js'
import { metric, send, smsPayload, startTestHermes, testConfig, type TestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'
import { spawnHermes, writeConfigFile } from './helpers/process.js'
import { testDatabase } from '../src/harness/database.js'
import { startFakeProvider } from '../src/harness/fake-provider.js'
import { until } from '../src/harness/wait.js'

const channels = (secrets: string[]): Record<string, unknown> => ({ channels: { sms: { provider: 'mock', secrets } }, providers: { mock: { kind: 'mock' } } })

async function post (base: string, secret: string): Promise<number> {
  const body = JSON.stringify(smsPayload())
  return (await send('POST', `${base}/webhooks/sms`, body, seedSignature(secret, body))).status
}

/** A log whose lines a test can read. */
function capturedLog (): { log: ReturnType<typeof createLogger>, lines: () => Array<Record<string, unknown>> } {
  const text: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { text.push(chunk.toString()); done() } })
  return { log: createLogger('info', sink), lines: () => text.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }
}

/** One database for the tests below but the last (each Hermes is stopped before the next starts). */
const db = await testDatabase(t)

t.test('a rotated secret works within a second of the reload, and no request either set accepts is refused', async (t) => {
  const h = await startTestHermes(t, channels(['old-secret']), db)
  const config = (secrets: string[]): HermesConfig => testConfig(db.url, channels(secrets))

  // Senders that hammer the old secret through both reloads' first half, and the new one after.
  const refusedOld: number[] = []
  const refusedNew: number[] = []
  let phase: 'old' | 'overlap' | 'new' = 'old'
  let running = true
  let oldInFlight = 0
  const postOld = async (): Promise<number> => {
    oldInFlight++
    try { return await post(h.base, 'old-secret') } finally { oldInFlight-- }
  }
  const senders = Array.from({ length: 4 }, async () => {
    while (running) {
      const at = phase
      const oldStatus = at === 'new' ? null : await postOld()
      if (oldStatus !== null && oldStatus !== 202) refusedOld.push(oldStatus)
      if (at !== 'old') {
        const newStatus = await post(h.base, 'new-secret')
        if (newStatus !== 202) refusedNew.push(newStatus)
      }
    }
  })
  t.teardown(async () => { running = false; await Promise.all(senders) })
  await new Promise((resolve) => setTimeout(resolve, 300))

  const started = Date.now()
  t.same(await h.hermes.reload(() => config(['new-secret', 'old-secret'])), ['channels.sms.secrets'], 'the reload names what it changed')
  phase = 'overlap' // the new secret is in force from here on: every request signed with it must be accepted
  t.equal(await post(h.base, 'new-secret'), 202, 'the new secret is accepted at once')
  t.ok(Date.now() - started < 1000, `within a second (${Date.now() - started} ms)`)
  await new Promise((resolve) => setTimeout(resolve, 300))

  // No request with the old secret may still be on its way when the reload that removes it runs:
  // one answered after it is refused, rightly, though it was sent while the secret was in both sets.
  phase = 'new'
  await until('the requests signed with the old secret to be answered', 5000, async () => oldInFlight === 0 ? true : undefined)
  await h.hermes.reload(() => config(['new-secret']))
  t.equal(await post(h.base, 'old-secret'), 401, 'the secret rotated out is refused once the reload returns')
  await new Promise((resolve) => setTimeout(resolve, 300))
  running = false
  await Promise.all(senders)
  t.same(refusedOld, [], 'the old secret was never refused while it was in both sets')
  t.same(refusedNew, [], 'the new secret was never refused once it was added')
  t.equal(await metric(h.base, 'hermes_config_reloads_total{result="applied"}'), 2)
})

/** One Hermes with a readable log for the two tests of refused reloads (a refused reload changes nothing). */
let kept: Promise<{ h: TestHermes, lines: () => Array<Record<string, unknown>> }> | null = null
async function keptHermes (): Promise<{ h: TestHermes, lines: () => Array<Record<string, unknown>> }> {
  kept ??= (async () => {
    const { log, lines } = capturedLog()
    return { h: await startTestHermes(t, channels(['kept-secret']), db, { log }), lines }
  })()
  return await kept
}

t.test('a change that needs a restart is refused with a log line naming it, and the running configuration stays', async (t) => {
  const { h, lines } = await keptHermes()
  const seen = lines().length
  const refusedBefore = await metric(h.base, 'hermes_config_reloads_total{result="refused"}')
  const running = h.hermes.config()
  const next = testConfig(db.url, { ...channels(['other-secret']), ack: 'enqueued', workers: 3, port: 1 })
  const refused = await h.hermes.reload(() => next).catch((error: unknown) => error)
  t.type(refused, ReloadRefusedError)
  const line = lines().slice(seen).find((l) => l['code'] === 'HERMES_ERR_RELOAD')
  t.ok(line, 'an error line with code HERMES_ERR_RELOAD')
  for (const field of ['port', 'ack', 'workers']) t.match(String(line?.['msg']), field, `it names ${field}`)
  t.equal(h.hermes.config(), running, 'the running configuration stays')
  t.equal(await post(h.base, 'kept-secret'), 202, 'its secret still works')
  t.equal(await post(h.base, 'other-secret'), 401, 'and the refused file\'s secret does not: nothing of it was applied')
  t.equal(await metric(h.base, 'hermes_config_reloads_total{result="refused"}'), refusedBefore + 1)
})

t.test('a broken configuration file is refused and the running configuration stays', async (t) => {
  const { h, lines } = await keptHermes()
  const seen = lines().length
  const broken = await h.hermes.reload(() => resolveConfig({ ...channels([]), port: 0 }, {})).catch((error: unknown) => error)
  t.type(broken, ReloadRefusedError)
  t.match(String(lines().slice(seen).find((l) => l['code'] === 'HERMES_ERR_RELOAD')?.['msg']), 'channels.sms.secrets must be a non-empty array', 'the log line says what is wrong')
  const other = await h.hermes.reload(() => { throw new TypeError('unexpected') }).catch((error: unknown) => error)
  t.type(other, ReloadRefusedError, 'any failure to read the file refuses the reload')
  t.equal(await post(h.base, 'kept-secret'), 202)
})

t.test('SIGHUP re-reads the file of a running process; a file that is not JSON changes nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-reload-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = writeConfigFile(dir, { database: { url: db.url }, ...channels(['file-secret-1']) })
  const run = spawnHermes(t, ['--config', file])
  const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
  const base = `http://127.0.0.1:${started['port'] as number}`
  t.equal(await post(base, 'file-secret-2'), 401)

  writeConfigFile(dir, { database: { url: db.url }, ...channels(['file-secret-2']) })
  run.child.kill('SIGHUP')
  await run.waitForLog((e) => e['msg'] === 'configuration reloaded', 10_000)
  t.equal(await post(base, 'file-secret-2'), 202, 'the new secret works after SIGHUP')
  t.equal(await post(base, 'file-secret-1'), 401, 'the old one does not')

  writeFileSync(file, '{ "channels": ')
  run.child.kill('SIGHUP')
  const refused = await run.waitForLog((e) => e['code'] === 'HERMES_ERR_RELOAD', 10_000)
  t.match(String(refused['msg']), 'not valid JSON')
  t.equal(await post(base, 'file-secret-2'), 202, 'the process is alive and its configuration stayed')
})

t.test('a reload applies a provider\'s new rate limit, concurrency and credentials to the sends that follow', async (t) => {
  const fake = await startFakeProvider(t)
  const db = await testDatabase(t)
  const provider = (perSecond: number, authToken: string, concurrency: number): Record<string, unknown> => ({
    channels: { sms: { provider: 'twilio', secrets: ['s'] } },
    providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken, rateLimit: { perSecond, burst: 1 }, concurrency } }
  })
  const h = await startTestHermes(t, provider(0.2, 'old-token', 1), db)
  const payloads = Array.from({ length: 6 }, () => smsPayload())
  for (const payload of payloads) {
    const body = JSON.stringify(payload)
    t.equal((await send('POST', `${h.base}/webhooks/sms`, body, seedSignature('s', body))).status, 202)
  }
  // At 0.2/s with a burst of 1 one message goes out now and the next in 5 s.
  await until('the first send', 10_000, async () => fake.requests.length >= 1 ? true : undefined)
  fake.respond(() => ({ delayMs: 300 })) // slow answers: only a higher concurrency overlaps them
  t.same(await h.hermes.reload(() => testConfig(db.url, provider(1000, 'new-token', 4))), ['providers.twilio.authToken', 'providers.twilio.rateLimit.perSecond', 'providers.twilio.concurrency'])
  const reloadedAt = Date.now()
  await until('every message to be sent', 4000, async () => fake.requests.length >= payloads.length ? true : undefined)
  t.ok(Date.now() - reloadedAt < 4000, 'the rest went out at the new rate, not one per 5 s')
  t.ok(fake.maxInFlight >= 2, `and several at once under the new concurrency (at most ${fake.maxInFlight})`)
  const auth = (token: string): string => `Basic ${Buffer.from(`AC1:${token}`).toString('base64')}`
  t.equal(fake.requests[0]!.headers.authorization, auth('old-token'), 'the send before the reload used the old token')
  t.ok(fake.requests.slice(1).every((r) => r.headers.authorization === auth('new-token')), 'every send after it uses the new one')
})

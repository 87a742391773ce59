// A lost stage thread is visible: when the writer or the dispatch thread dies, /readyz answers 503
// at once, new webhooks get 503 with Retry-After, what can still be answered is answered, and the
// process exits non-zero so that its supervisor restarts it.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL, fileURLToPath } from 'node:url'
import { send, smsPayload, startTestHermes, type TestHermes } from './helpers/hermes.js'
import { spawnHermes, writeConfigFile } from './helpers/process.js'
import { seedSignature } from '../src/harness/sign.js'
import { testDatabase } from '../src/harness/database.js'
import { until } from '../src/harness/wait.js'

// Each subtest has its own Hermes (or processes) and database, so they run side by side.
t.jobs = 3

const SECRET = 'thread-death-secret'
const channels = { channels: { sms: { provider: 'mock', secrets: [SECRET] } }, providers: { mock: { kind: 'mock' } } }

async function postSigned (base: string): Promise<Awaited<ReturnType<typeof send>>> {
  const body = JSON.stringify(smsPayload())
  return await send('POST', `${base}/webhooks/sms`, body, seedSignature(SECRET, body))
}

async function expectRefusing (t: Test, h: TestHermes | { base: string }): Promise<void> {
  const ready = await send('GET', `${h.base}/readyz`)
  t.equal(ready.status, 503, '/readyz answers 503')
  const refused = await postSigned(h.base)
  t.equal(refused.status, 503, 'a new webhook gets 503')
  t.equal(refused.json?.error?.code, 'HERMES_ERR_THREAD_LOST')
  t.ok(Number(refused.headers['retry-after']) > 0, 'with Retry-After')
  t.equal((await send('GET', `${h.base}/healthz`)).status, 200, '/healthz still answers: the process is alive until it exits')
}

for (const thread of ['writer', 'dispatch'] as const) {
  t.test(`the ${thread} thread dies: readiness and new webhooks fail at once, and Hermes asks to be restarted`, async (t) => {
    const lost: string[] = []
    const h = await startTestHermes(t, channels, undefined, { onThreadLost: (which) => lost.push(which) })
    t.equal((await postSigned(h.base)).status, 202)
    t.equal((await send('GET', `${h.base}/readyz`)).status, 200)
    // Requests in flight when the thread dies are answered: 202 if committed, else 503.
    const inFlight = Array.from({ length: 20 }, async () => await postSigned(h.base))
    await h.hermes.stageThreads[thread].terminate()
    await until(`the loss of the ${thread} thread to be reported`, 5000, async () => lost.length > 0 ? true : undefined)
    t.same(lost, [thread], 'onThreadLost names the thread')
    await expectRefusing(t, h)
    const answers = await Promise.all(inFlight)
    t.ok(answers.every((a) => a.status === 202 || a.status === 503), `every request in flight was answered (${answers.map((a) => a.status).join(' ')})`)
    const stored = Number((await h.db.query('select count(*)::int as n from message')).rows[0].n)
    t.ok(stored >= answers.filter((a) => a.status === 202).length + 1, 'every 202 is stored')
  })
}

t.test('a process whose stage thread dies exits non-zero', async (t) => {
  const db = await testDatabase(t)
  const dir = mkdtempSync(join(tmpdir(), 'hermes-thread-death-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const preload = pathToFileURL(fileURLToPath(new URL('./fixtures/kill-stage-thread.js', import.meta.url))).href
  const file = writeConfigFile(dir, { database: { url: db.url }, ...channels })
  // One process per thread, side by side on the same database.
  await Promise.all(['writer', 'dispatch'].map(async (thread) => {
    const run = spawnHermes(t, ['--config', file], { NODE_OPTIONS: `--import ${preload}`, HERMES_TEST_KILL_THREAD: thread })
    const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
    const base = `http://127.0.0.1:${started['port'] as number}`
    t.equal((await postSigned(base)).status, 202, `the process that will lose its ${thread} thread stores a webhook`)
    run.child.kill('SIGUSR2')
    const { code } = await run.exited
    t.equal(code, 1, `the process exits 1 after losing its ${thread} thread`)
    const stdout = run.child.stdout!
    if (!stdout.readableEnded) await new Promise((resolve) => stdout.once('end', resolve))
    await new Promise((resolve) => setImmediate(resolve))
    const line = run.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e['code'] === 'HERMES_ERR_THREAD_LOST')
    t.equal(line?.['thread'], thread, `the log names the ${thread} thread`)
  }))
})

// SIGKILL under load, several times: every webhook answered 202 (durable) is in the database exactly
// once, and after restarts every one of them is delivered; duplicates only from sends in flight at a kill.
import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { startLoad } from './helpers/load.js'
import { testDatabase } from '../src/harness/database.js'
import { spawnHermes, writeConfigFile, type RunningHermes } from './helpers/process.js'
import { startFakeProvider } from '../src/harness/fake-provider.js'

const kConcurrency = 8 // the provider's in-flight cap: the most sends a kill can interrupt
const kKills = 3

const db = await testDatabase(t)
const fake = await startFakeProvider(t)
// timeoutMs is generous on purpose: a send that timed out after reaching the fake is retried, a
// duplicate the crash did not cause; only sends cut off by a kill may be counted here.
const file = writeConfigFile(t.testdir(), {
  database: { url: db.url },
  dispatch: { leaseMs: 1000, pollMs: 100 },
  channels: { sms: { provider: 'twilio', secrets: [SECRET] } },
  providers: { twilio: { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: kConcurrency, timeoutMs: 2000, rateLimit: { perSecond: 100000, burst: 1000 }, retry: { maxAttempts: 20, baseDelayMs: 20, maxDelayMs: 200 } } }
})

async function start (): Promise<{ run: RunningHermes, port: number }> {
  const run = spawnHermes(t, ['--config', file])
  const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
  return { run, port: started['port'] as number }
}

let sequence = 0
const acknowledged: string[] = []

/** Posts unique webhooks from 32 concurrent clients, SIGKILLs the process after `killAfter` answers; returns the ids answered 202. */
async function loadUntilKilled (port: number, run: RunningHermes, killAfter: number): Promise<string[]> {
  const load = startLoad({
    url: `http://127.0.0.1:${port}/webhooks/sms`,
    lanes: 32,
    next: () => {
      const n = ++sequence
      const id = `crash-${n}`
      return { id, body: JSON.stringify({ id, from: '+14155550000', to: `+1650${String(n).padStart(7, '0')}`, body: `crash test ${n}` }) }
    },
    onAnswer: (answered) => { if (answered === killAfter) { run.child.kill('SIGKILL'); load.stop() } }
  })
  const result = await load.finished
  await run.exited
  return result.acknowledged
}

t.test(`${kKills} SIGKILLs under load lose no acknowledged webhook`, async (t) => {
  for (let kill = 1; kill <= kKills; kill++) {
    const { run, port } = await start()
    const killAfter = 100 + Math.floor(Math.random() * 300)
    const ok = await loadUntilKilled(port, run, killAfter)
    acknowledged.push(...ok)
    const stored = await db.query('SELECT external_id, count(*)::int AS n FROM message WHERE external_id = ANY($1) GROUP BY external_id', [ok])
    t.equal(stored.rowCount, ok.length, `kill ${kill} after ${killAfter} answers: all ${ok.length} ids answered 202 are stored`)
    t.ok(stored.rows.every((r) => r['n'] === 1), 'each exactly once')
  }
})

t.test('after a restart every acknowledged message is delivered; duplicates are bounded by the in-flight cap', async (t) => {
  const { run } = await start()
  const deadline = Date.now() + 60_000
  let unsent = -1
  while (Date.now() < deadline) {
    const r = await db.query("SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1) AND dispatch_status <> 'sent'", [acknowledged])
    unsent = r.rows[0]!['n'] as number
    if (unsent === 0) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(unsent, 0, `all ${acknowledged.length} acknowledged messages were delivered`)
  const perRecipient = new Map<string, number>()
  for (const request of fake.requests) perRecipient.set(request.to!, (perRecipient.get(request.to!) ?? 0) + 1)
  const duplicates = [...perRecipient.values()].reduce((n, c) => n + c - 1, 0)
  t.ok(duplicates <= kConcurrency * kKills, `${duplicates} duplicate sends (at most ${kConcurrency} in flight × ${kKills} kills)`)
  t.comment(`acknowledged ${acknowledged.length}, provider requests ${fake.requests.length}, duplicates ${duplicates}`)
  run.child.kill('SIGTERM')
  t.equal((await run.exited).code, 0)
})

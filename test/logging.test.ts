// Logs: one JSON object per line, a start and a stop summary, and never a secret or a webhook body.
import t from 'tap'
import { send } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'
import { testDatabase } from '../src/harness/database.js'
import { spawnHermes, writeConfigFile } from './helpers/process.js'
import { hermesThreadLabel } from '../bench/cpu-split.js'

t.test('logs are JSON lines without secrets or bodies, at debug level too', async (t) => {
  const db = await testDatabase(t)
  const secret = 'super-secret-value-42'
  const file = writeConfigFile(t.testdir(), {
    workers: 1,
    ack: 'enqueued',
    logLevel: 'debug',
    database: { url: db.url },
    channels: { sms: { provider: 'relay', secrets: [secret] } },
    providers: { relay: { kind: 'http', baseUrl: 'http://127.0.0.1:9', apiKey: 'api-key-secret-99', retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, timeoutMs: 200 } }
  })
  const run = spawnHermes(t, ['--config', file])
  const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
  const port = started['port'] as number
  const good = JSON.stringify({ id: 'log-1', from: '+14155550001', to: '+14155550002', body: 'BODY-MARKER-good' })
  t.equal((await send('POST', `http://127.0.0.1:${port}/webhooks/sms`, good, seedSignature(secret, good))).status, 202)
  const bad = JSON.stringify({ id: 'log-2', from: 'nope', to: '+14155550002', body: 'BODY-MARKER-bad' })
  t.equal((await send('POST', `http://127.0.0.1:${port}/webhooks/sms`, bad, seedSignature(secret, bad))).status, 202, 'enqueued mode answers first')
  await run.waitForLog((e) => e['msg'] === 'webhook rejected after enqueue')
  await run.waitForLog((e) => typeof e['msg'] === 'string' && (e['msg'] as string).startsWith('dispatch: message failed'))
  run.child.kill('SIGTERM')
  t.equal((await run.exited).code, 0)

  t.ok(run.lines.length > 5, `${run.lines.length} lines`)
  for (const line of run.lines) {
    let entry: Record<string, unknown> | undefined
    try { entry = JSON.parse(line) as Record<string, unknown> } catch { t.fail(`not JSON: ${line}`) }
    if (entry !== undefined) t.ok(typeof entry['level'] === 'string' && typeof entry['time'] === 'string' && typeof entry['msg'] === 'string', 'level, time, msg')
  }
  const all = run.lines.join('\n')
  t.notMatch(all, secret, 'no channel secret')
  t.notMatch(all, 'api-key-secret-99', 'no provider key')
  t.notMatch(all, 'BODY-MARKER', 'no webhook body')
  // Thread ids tell the threads apart in /proc (all are named "node"); the bench's CPU split reads them from this line.
  const threads = started['threads'] as { writer: number, dispatch: number, workers: number[] }
  const ids = [threads.writer, threads.dispatch, ...threads.workers]
  t.ok(ids.length === 3 && ids.every((id) => Number.isInteger(id) && id > 0) && new Set(ids).size === 3, `the start line names each thread's id: ${JSON.stringify(threads)}`)
  const label = hermesThreadLabel(started)
  t.same([0, threads.writer, threads.dispatch, threads.workers[0]!].map(label), ['main', 'writer', 'dispatch', 'worker-0'], 'and the bench names them from it')
  t.match(started['config'], { channels: { sms: { secrets: ['[redacted]'] } }, providers: { relay: { apiKey: '[redacted]' } } }, 'the start line carries the config, redacted')
  const rejected = run.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e['msg'] === 'webhook rejected after enqueue')!
  t.equal(rejected['code'], 'HERMES_ERR_INVALID_FIELDS', 'error lines carry the code')
  t.ok(run.lines.some((l) => l.includes('"hermes stopped"')), 'a stop summary')
})

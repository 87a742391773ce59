// SIGTERM drains: everything accepted is committed and answered, then the process exits 0 and stops what it started.
import t from 'tap'
import { mkdtempSync, chmodSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { send, smsPayload, SECRET } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'
import { freePort, testDatabase } from '../src/harness/database.js'
import { spawnHermes, writeConfigFile } from './helpers/process.js'

function writeConfig (dir: string, extra: Record<string, unknown>): string {
  return writeConfigFile(dir, { channels: { sms: { provider: 'mock', secrets: [SECRET] } }, providers: { mock: { kind: 'mock' } }, ...extra })
}

async function postSigned (port: number, payload: Record<string, unknown>): Promise<number> {
  const body = JSON.stringify(payload)
  try {
    return (await send('POST', `http://127.0.0.1:${port}/webhooks/sms`, body, seedSignature(SECRET, body))).status
  } catch {
    return 0 // connection refused once the listener closed
  }
}

t.test('SIGTERM during load: every 202 is stored, nothing accepted is left unanswered, exit code 0', async (t) => {
  const db = await testDatabase(t)
  const config = writeConfig(t.testdir(), { database: { url: db.url } })
  const run = spawnHermes(t, ['--config', config])
  const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
  const port = started['port'] as number
  const payloads = Array.from({ length: 300 }, () => smsPayload())
  let answered = 0
  const answers = payloads.map(async (p) => { const s = await postSigned(port, p); answered++; return s })
  while (answered < 30) await new Promise((resolve) => setTimeout(resolve, 5))
  run.child.kill('SIGTERM')
  const statuses = await Promise.all(answers)
  const { code } = await run.exited
  t.equal(code, 0, 'exits 0')
  t.ok(statuses.every((s) => s === 202 || s === 503 || s === 0), 'answers are 202, 503 (draining) or a refused connection')
  const accepted = payloads.filter((_, i) => statuses[i] === 202).map((p) => p['id'])
  t.ok(accepted.length >= 30, `${accepted.length} accepted before/while draining`)
  const stored = await db.query('SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1)', [accepted])
  t.equal(stored.rows[0]!['n'], accepted.length, 'every 202 is in the database')
  t.ok(run.lines.some((l) => l.includes('"hermes stopped"')), 'logs that it stopped')
})

t.test('with no database URL Hermes runs on its embedded PostgreSQL and stops it on exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-embedded-'))
  chmodSync(dir, 0o777)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pgPort = await freePort()
  const config = writeConfig(dir, { database: { embeddedDir: join(dir, 'pg'), embeddedPort: pgPort } })
  const run = spawnHermes(t, ['--config', config], { DATABASE_URL: '' })
  const started = await run.waitForLog((e) => e['msg'] === 'hermes started', 120_000)
  t.match(started['database'], /^embedded/)
  const port = started['port'] as number
  t.equal((await send('GET', `http://127.0.0.1:${port}/readyz`)).status, 200)
  t.equal(await postSigned(port, smsPayload()), 202)
  run.child.kill('SIGTERM')
  t.equal((await run.exited).code, 0)
  const refused = await new Promise<boolean>((resolve) => {
    const socket = connect(pgPort, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(true))
  })
  t.ok(refused, 'the embedded PostgreSQL is stopped')
})

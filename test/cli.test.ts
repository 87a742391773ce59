// The command line: --help for hermes, its redispatch command and the bench; options before or after
// the command; `hermes --config f.json redispatch` runs redispatch (never the server), and its
// failures are reported as redispatch failures, not as a failed start.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { mainScript, writeConfigFile } from './helpers/process.js'
import pg from 'pg'
import { freePort, testDatabase } from '../src/harness/database.js'
import { testConfig } from './helpers/hermes.js'
import { prepareDatabase } from '../src/store/schema.js'

const benchScript = fileURLToPath(new URL('../bench/run.js', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'hermes-cli-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const channels = { channels: { sms: { provider: 'mock', secrets: ['cli-secret'] } }, providers: { mock: { kind: 'mock' } } }

// DATABASE_URL would override each config file's database.
function run (script: string, args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: '' } })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

t.test('--help describes each command and exits 0', async (t) => {
  const main = run(mainScript, ['--help'])
  t.equal(main.status, 0)
  t.match(main.stdout, /Usage: hermes/)
  t.match(main.stdout, /redispatch/)
  const redispatch = run(mainScript, ['redispatch', '--help'])
  t.equal(redispatch.status, 0)
  t.match(redispatch.stdout, /--status failed/)
  t.match(redispatch.stdout, /--provider NAME/)
  const bench = run(benchScript, ['--help'])
  t.equal(bench.status, 0)
  t.match(bench.stdout, /Usage: npm run bench/)
  t.match(bench.stdout, /--scenarios/)
})

t.test('an unknown option or command is a usage error (exit 2), not a start', async (t) => {
  for (const args of [['--port', '1'], ['serve', 'extra'], ['replay'], ['--status', 'failed']]) {
    const result = run(mainScript, args)
    t.equal(result.status, 2, args.join(' '))
    t.match(result.stderr, /Usage: hermes/)
    t.notMatch(result.stdout, /hermes started/)
  }
  const bench = run(benchScript, ['--no-such-option'])
  t.equal(bench.status, 2, 'the bench refuses an unknown option too')
})

t.test('hermes --config f.json redispatch runs redispatch, not the server', async (t) => {
  const db = await testDatabase(t)
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  try { await prepareDatabase(client, testConfig(db.url, channels)) } finally { await client.end() }
  const file = writeConfigFile(dir, { database: { url: db.url }, ...channels })
  const result = run(mainScript, ['--config', file, 'redispatch', '--status', 'failed'])
  t.equal(result.status, 0, result.stderr)
  t.match(result.stdout, /messages re-queued for dispatch/)
  t.notMatch(result.stdout, /hermes started/)
})

t.test('a failed redispatch is reported as a redispatch failure', async (t) => {
  const db = await testDatabase(t)
  const good = writeConfigFile(dir, { database: { url: db.url }, ...channels })
  const badStatus = run(mainScript, ['redispatch', '--config', good, '--status', 'sent'])
  t.equal(badStatus.status, 2, 'a bad --status is a usage error')
  t.match(badStatus.stderr, /^hermes redispatch: .*--status must be "failed"/)
  t.notMatch(badStatus.stderr, /failed to start/)

  const unreachable = writeConfigFile(dir, { database: { url: `postgres://postgres@127.0.0.1:${await freePort()}/none` }, ...channels })
  const noDatabase = run(mainScript, ['--config', unreachable, 'redispatch'])
  t.equal(noDatabase.status, 1)
  t.match(noDatabase.stderr, /^hermes redispatch: /)
  t.notMatch(noDatabase.stderr, /failed to start/)
})

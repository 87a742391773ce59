/**
 * `npm run soak [-- options]`: the overload of test/overload.test.ts, longer,
 * with its figures printed: durable Hermes (its own process) with a small
 * pipeline, a few hundred closed-loop lanes that retry 503s at once, RSS
 * once a second, and at the end every id answered 202 looked up in the
 * database. With --outage S the embedded PostgreSQL is also stopped for S
 * seconds a third of the way in, and started again.
 *
 * Options: --seconds S (default 30), --warmup S (5), --lanes N (300),
 * --outage S (0: none; needs the embedded PostgreSQL, not DATABASE_URL).
 * Exits 1 if a 202 was lost, a 503 broke the contract, a request hung,
 * the ring did not drain after the load, or Hermes died.
 */
import { mkdtempSync, chmodSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { startServer, stopServer, type Server } from './processes.js'
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/store/embedded-postgres.js'
import { createLogger } from '../src/log.js'
import { freePort } from '../src/harness/free-port.js'
import { describeOverload, overloadConfig, ringDrains, ringUsedMessages, runOverload, type OverloadResult } from '../src/harness/overload.js'

const secret = 'soak-secret'
const usage = `Usage: npm run soak -- [--seconds S] [--warmup S] [--lanes N] [--outage S]

Holds durable Hermes under overload and checks every 202 is stored (bench/README.md, "Soak").

Options:
  --seconds S   length of the measured load (30)
  --warmup S    load before it, not measured (5)
  --lanes N     closed-loop clients that retry 503s at once (300)
  --outage S    stop the embedded PostgreSQL for S seconds a third of the way in (0: none)
  -h, --help    this help
`
const numberOption = { type: 'string' } as const
let values: Record<string, string | boolean | undefined>
try {
  values = parseArgs({ options: { seconds: numberOption, warmup: numberOption, lanes: numberOption, outage: numberOption, help: { type: 'boolean', short: 'h' } }, strict: true }).values
} catch (error) {
  process.stderr.write(`soak: ${error instanceof Error ? error.message : String(error)}\n\n${usage}`)
  process.exit(2)
}
if (values['help'] === true) {
  process.stdout.write(usage)
  process.exit(0)
}
function option (name: string, fallback: number): number {
  const given = values[name]
  const value = Number(typeof given === 'string' ? given : fallback)
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number >= 0`)
  return value
}
const seconds = option('seconds', 30)
const warmup = option('warmup', 5)
const lanes = option('lanes', 300)
const outage = option('outage', 0)

async function main (): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'hermes-soak-'))
  chmodSync(work, 0o777) // as root, PostgreSQL runs as `postgres`, which must reach its data directory
  const cleanup: Array<() => Promise<void>> = []
  try {
    let databaseUrl = process.env['DATABASE_URL'] ?? ''
    let embedded: EmbeddedDatabase | null = null
    const pgPort = await freePort()
    const startDatabase = async (): Promise<EmbeddedDatabase> => (embedded = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), port: pgPort, log: createLogger('warn') }))
    if (databaseUrl === '') {
      databaseUrl = (await startDatabase()).url
      cleanup.push(async () => { await embedded?.stop() })
    } else if (outage > 0) {
      throw new Error('--outage needs the embedded PostgreSQL: unset DATABASE_URL')
    }
    const file = join(work, 'hermes.json')
    writeFileSync(file, JSON.stringify({ host: '127.0.0.1', port: 0, logLevel: 'info', ...overloadConfig(databaseUrl, secret) }))
    const hermes: Server = await startServer(fileURLToPath(new URL('../src/main.js', import.meta.url)), ['--config', file], {}, (l) => l['msg'] === 'hermes started' ? l['port'] as number : undefined)
    cleanup.push(async () => await stopServer(hermes))

    // The outage, if any: stopped a third of the way into the measured load, started again S seconds later.
    let outageWork: Promise<void> = Promise.resolve()
    let outageState = 'before' as 'before' | 'down' | 'up'
    const onTick = (elapsed: number): void => {
      if (outage === 0) return
      if (outageState === 'before' && elapsed >= warmup + seconds / 3) {
        outageState = 'down'
        process.stderr.write(`${elapsed.toFixed(0)} s: stopping PostgreSQL for ${outage} s\n`)
        outageWork = outageWork.then(async () => { const db = embedded; embedded = null; await db?.stop() })
      } else if (outageState === 'down' && elapsed >= warmup + seconds / 3 + outage) {
        outageState = 'up'
        process.stderr.write(`${elapsed.toFixed(0)} s: starting PostgreSQL again\n`)
        outageWork = outageWork.then(async () => { await startDatabase() })
      }
    }
    process.stderr.write(`soak: ${lanes} lanes, ${warmup} s warm-up + ${seconds} s${outage > 0 ? `, PostgreSQL down for ${outage} s` : ''}\n`)
    const result: OverloadResult = await runOverload({
      port: hermes.port,
      pid: hermes.child.pid!,
      secret,
      lanes,
      warmupSeconds: warmup,
      seconds,
      requestTimeoutMs: 15_000, // above Hermes' 10 s ack timeout: only a real hang trips it
      idPrefix: `soak-${Date.now().toString(36)}`,
      alive: () => hermes.child.exitCode === null && hermes.child.signalCode === null,
      onTick
    })
    await outageWork
    if (outageState === 'down') await startDatabase()
    const alive = hermes.child.exitCode === null && hermes.child.signalCode === null
    // Once the load stops the pipeline must catch up; records left in the ring mean it wedged.
    const drained = alive && await ringDrains(hermes.port, 30_000)

    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    let stored = 0
    try {
      stored = (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM message WHERE external_id = ANY($1)', [result.acceptedIds])).rows[0]!.n
    } finally {
      await client.end()
    }
    const lost = result.acceptedIds.length - stored
    console.log(`machine: ${cpus()[0]?.model ?? '?'} × ${cpus().length}, node ${process.version}`)
    console.log(describeOverload(result))
    console.log(`RSS every second after the warm-up (MiB): ${result.rssSamples.map((b) => (b / 2 ** 20).toFixed(0)).join(' ')}`)
    console.log(`202s stored: ${stored} of ${result.acceptedIds.length} (lost ${lost}); Hermes ${alive ? 'alive' : `DIED (${hermes.child.exitCode ?? hermes.child.signalCode})`}; ring ${drained ? 'drained after the load' : `NOT DRAINED (${alive ? await ringUsedMessages(hermes.port) : '?'} records left)`}`)
    return lost === 0 && alive && drained && result.malformedRefusals === 0 && result.hung === 0 ? 0 : 1
  } finally {
    for (const fn of cleanup.reverse()) await fn().catch((error: unknown) => { console.error(error) })
    rmSync(work, { recursive: true, force: true })
  }
}

main().then((code) => process.exit(code), (error: unknown) => { console.error(error); process.exit(1) })

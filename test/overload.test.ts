// Overload: offered load well above capacity gets 503s with Retry-After, RSS stays flat,
// the p99 of accepted requests stays bounded, every 202 is stored once, and the process does not crash.
import t from 'tap'
import { send, SECRET } from './helpers/hermes.js'
import { testDatabase } from '../src/harness/database.js'
import { spawnHermes, writeConfigFile } from './helpers/process.js'
import { describeOverload, kOverloadRingMessages, overloadConfig, quantile, ringDrains, ringUsedMessages, runOverload } from '../src/harness/overload.js'
import { seedSignature } from '../src/harness/sign.js'
import { until } from '../src/harness/wait.js'

const kLanes = 300
const kWarmupSeconds = 5
const kSeconds = 6
// A 202 waits only for what is ahead of it in the pipeline (about 100 requests: ring, writer queue,
// the batch being committed), two or three commit cycles. With other suites and benches loading the
// same 2 cores (load average 7-15) p99 measured 1.1-4.1 s. 6 s stays well below the 10 s ack timeout,
// toward which 202s waiting behind an unbounded backlog would pile up.
const kP99BoundMs = 6000
// After the warm-up memory is bounded by the ring, the writer queue and the open requests. In 10 s
// RSS moved -7..+16 MiB here; outside tap (bench/soak.ts, 90 s) V8 grows its heaps +40 MiB in the
// first 10 s and levels off ~110 MiB above the warm-up. 6-24k requests follow the warm-up, so a
// leak of 10 KB or so per request exceeds the bound.
const kRssGrowthBytes = 64 * 2 ** 20
const kMinRefusedShare = 0.1

const db = await testDatabase(t)
const file = writeConfigFile(t.testdir(), overloadConfig(db.url, SECRET))
const run = spawnHermes(t, ['--config', file])
const port = (await run.waitForLog((e) => e['msg'] === 'hermes started'))['port'] as number
const alive = (): boolean => run.child.exitCode === null && run.child.signalCode === null

t.test(`${kLanes} lanes for ${kSeconds} s against a ${kOverloadRingMessages}-message ring: 503s with Retry-After, flat RSS, bounded p99, nothing lost`, async (t) => {
  const r = await runOverload({
    port,
    pid: run.child.pid!,
    secret: SECRET,
    lanes: kLanes,
    warmupSeconds: kWarmupSeconds,
    seconds: kSeconds,
    requestTimeoutMs: 15_000,
    idPrefix: `overload-${process.pid}`,
    alive
  })
  t.comment(describeOverload(r))

  t.ok(alive(), `the process is alive after the load${alive() ? '' : `: ${run.stderr()}`}`)
  t.equal((await send('GET', `http://127.0.0.1:${port}/healthz`)).status, 200, '/healthz answers 200')
  t.equal(r.errors + r.hung, 0, `no connection errors and no hung requests${r.errorExamples.length > 0 ? `: ${r.errorExamples.join('; ')}` : ''}`)
  t.same(r.otherByStatus, {}, `only 202 and 503 answers${r.errorExamples.length > 0 ? `: ${r.errorExamples.join('; ')}` : ''}`)

  const share = r.refused / Math.max(1, r.requests)
  t.ok(share >= kMinRefusedShare, `a meaningful share of 503s: ${(100 * share).toFixed(1)}% (at least ${100 * kMinRefusedShare}%)`)
  t.ok((r.refusedByCode['HERMES_ERR_BUFFER_FULL'] ?? 0) > 0, 'the 503s are the full ring\'s')
  t.equal(r.malformedRefusals, 0, `every 503 has Retry-After in whole seconds >= 1 and a JSON error${r.malformedExamples.length > 0 ? `: ${r.malformedExamples.join('; ')}` : ''}`)

  t.ok(r.acceptedIds.length > 0, `some were accepted (${r.acceptedIds.length})`)
  const stored = await db.query('SELECT external_id, count(*)::int AS n FROM message WHERE external_id = ANY($1) GROUP BY external_id', [r.acceptedIds])
  t.equal(stored.rowCount, r.acceptedIds.length, `every one of the ${r.acceptedIds.length} ids answered 202 is stored`)
  t.ok(stored.rows.every((row) => row['n'] === 1), 'each exactly once')

  const p99 = quantile(r.acceptedMs, 0.99)
  t.ok(p99 <= kP99BoundMs, `p99 of 202 answers ${p99.toFixed(0)} ms <= ${kP99BoundMs} ms`)
  const growth = r.rssAfter - r.rssBefore
  t.ok(growth < kRssGrowthBytes, `RSS grew ${(growth / 2 ** 20).toFixed(1)} MiB (${(r.rssBefore / 2 ** 20).toFixed(0)} -> ${(r.rssAfter / 2 ** 20).toFixed(0)} MiB) < ${kRssGrowthBytes / 2 ** 20} MiB`)

  // Once the flood stops the ring drains, Hermes is ready again and takes the next webhook at once.
  const drained = await ringDrains(port, 20_000)
  t.ok(drained, `the ring drains once the load stops${drained ? '' : ` (still ${await ringUsedMessages(port)} records in it: the feeder stopped handing them to the workers)`}`)
  await until('/readyz to answer 200 after the load', 20_000, async () => (await send('GET', `http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined)
  const body = JSON.stringify({ id: `after-overload-${process.pid}`, from: '+14155550000', to: '+16500000000', body: 'after' })
  t.equal((await send('POST', `http://127.0.0.1:${port}/webhooks/sms`, body, seedSignature(SECRET, body))).status, 202, 'a webhook after the load is accepted')

  run.child.kill('SIGTERM')
  t.same(await run.exited, { code: 0, signal: null }, 'and it still shuts down cleanly')
})

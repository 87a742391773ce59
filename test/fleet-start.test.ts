// Three instances started at the same moment on an empty database all start (schema setup is serialised), see each other, and each answers /readyz by itself.
import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { testDatabase } from '../src/harness/database.js'
import { writeConfigFile } from './helpers/process.js'
import { startFleet, waitForInstances } from './helpers/fleet.js'

const db = await testDatabase(t)
const file = writeConfigFile(t.testdir(), {
  database: { url: db.url },
  fleet: { heartbeatMs: 250, deadAfterMs: 1000 },
  channels: { sms: { provider: 'mock', secrets: [SECRET] } },
  providers: { mock: { kind: 'mock', rateLimit: { perSecond: 30, burst: 30 }, concurrency: 6 } }
})

t.test('three instances starting together on an empty database', async (t) => {
  const members = await startFleet(t, file, 3)
  t.equal(members.length, 3, 'all three started')
  await waitForInstances(members, 3)
  const tables = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name IN ('message', 'fleet_instance')")
  t.equal(tables.rows[0]!.n, 2, 'the schema is there once')
  const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fleet_instance')
  t.equal(rows.rows[0]!.n, 3, 'one heartbeat row per instance')
  // A newcomer's share grows two heartbeats after the others' shrink: wait for the split to settle.
  let shares: number[] = []
  const deadline = Date.now() + 10_000
  do {
    shares = await Promise.all(members.map(async (m) => await m.metric('hermes_fleet_share_per_second{provider="mock"}')))
    if (shares.every((s) => Math.abs(s - 10) < 0.01)) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  } while (Date.now() < deadline)
  t.strictSame(shares, [10, 10, 10], `the rate is split evenly: ${shares.join(' + ')} = 30`)

  // /readyz is each instance's own: stopping one changes nothing for the others.
  members[0]!.run.child.kill('SIGTERM')
  await members[0]!.run.exited
  const readies = await Promise.all(members.slice(1).map(async (m) => (await fetch(`${m.base}/readyz`)).status))
  t.strictSame(readies, [200, 200], 'the others stay ready')
  await waitForInstances(members.slice(1), 2)
  const left = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM fleet_instance')
  t.equal(left.rows[0]!.n, 2, 'a stopped instance removes its row')
})

// A database owner's defaults do not change what Hermes' sessions do: with serializable isolation,
// a 1 s statement_timeout, a 1 s lock_timeout and JIT on as the database's defaults, every Hermes
// session runs with its own settings, and Hermes starts, stores and dispatches.
import t from 'tap'
import pg from 'pg'
import { openSession, sessionProfiles } from '../src/store/session.js'
import { testDatabase } from '../src/harness/database.js'
import { smsPayload, startTestHermes, untilSent } from './helpers/hermes.js'

const db = await testDatabase(t)
const name = new URL(db.url).pathname.slice(1)
for (const setting of ["default_transaction_isolation = 'serializable'", "statement_timeout = '1s'", "lock_timeout = '1s'", 'jit = on']) {
  await db.query(`ALTER DATABASE ${name} SET ${setting}`)
}

t.test('every session profile overrides the owner\'s defaults', async (t) => {
  const plain = new pg.Client({ connectionString: db.url })
  await plain.connect()
  t.equal((await plain.query('SHOW default_transaction_isolation')).rows[0].default_transaction_isolation, 'serializable', 'the defaults are in force for a plain client')
  await plain.end()
  for (const [key, profile] of Object.entries(sessionProfiles)) {
    const c = await openSession(db.url, profile)
    const show = async (setting: string): Promise<string> => Object.values((await c.query(`SHOW ${setting}`)).rows[0] as Record<string, string>)[0]!
    t.equal(await show('jit'), 'off', `${key}: jit`)
    t.equal(await show('transaction_isolation'), 'read committed', `${key}: isolation`)
    const ms = async (setting: string): Promise<number> => Number((await c.query('SELECT setting FROM pg_settings WHERE name = $1', [setting])).rows[0].setting)
    t.equal(await ms('statement_timeout'), profile.statementTimeoutMs, `${key}: statement_timeout`)
    t.equal(await ms('lock_timeout'), profile.lockTimeoutMs, `${key}: lock_timeout`)
    t.equal(await ms('idle_in_transaction_session_timeout'), profile.idleInTransactionTimeoutMs, `${key}: idle_in_transaction_session_timeout`)
    t.equal(await show('application_name'), profile.applicationName, `${key}: application_name`)
    await c.end()
  }
})

t.test('Hermes starts while another instance holds the schema lock longer than the owner\'s statement_timeout, then stores and dispatches', async (t) => {
  // Another instance setting up the schema: it holds the lock Hermes' setup waits for, for 2.5 s.
  const other = new pg.Client({ connectionString: db.url, options: '-c statement_timeout=0' })
  await other.connect()
  await other.query('BEGIN')
  await other.query('SELECT pg_advisory_xact_lock($1)', [0x4865726d])
  const released = new Promise<void>((resolve) => setTimeout(() => { void other.query('COMMIT').then(() => other.end()).then(resolve) }, 2500))
  const h = await startTestHermes(t, {}, db)
  await released
  const payloads = Array.from({ length: 30 }, () => smsPayload())
  const answers = await Promise.all(payloads.map(async (p) => (await h.postSigned('sms', p)).status))
  t.same(answers, payloads.map(() => 202))
  await untilSent(async (sql) => await db.query(sql), payloads.length)
})

// What Hermes checks of its database server at start: a supported version.
import t from 'tap'
import type pg from 'pg'
import { checkServerVersion } from '../src/store/server-check.js'
import { openSession, sessionProfiles } from '../src/store/session.js'
import { testDatabase } from '../src/harness/database.js'

/** A client whose server says it is `version` (no PostgreSQL older than 14 ships as an npm package to start). */
function serverOf (num: string, version: string): pg.Client {
  return { query: async () => ({ rows: [{ num, version }] }) } as unknown as pg.Client
}

t.test('PostgreSQL 13 is refused with the version found and the minimum', async (t) => {
  await t.rejects(checkServerVersion(serverOf('130014', '13.14 (Debian 13.14-1)')), {
    code: 'HERMES_ERR_DATABASE_VERSION',
    message: 'PostgreSQL 13.14 (Debian 13.14-1) found; Hermes needs PostgreSQL 14 or newer (supported: 14–18)'
  })
})

t.test('PostgreSQL 14.0 is accepted', async (t) => {
  t.equal(await checkServerVersion(serverOf('140000', '14.0')), 140000)
})

t.test('the server this test runs on is accepted', async (t) => {
  const db = await testDatabase(t)
  const client = await openSession(db.url, sessionProfiles.setup)
  t.teardown(() => client.end())
  t.ok(await checkServerVersion(client) >= 140000)
})

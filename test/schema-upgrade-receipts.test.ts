// A database created by the version before delivery receipts is upgraded in place at start: its
// messages keep working and take receipts.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { send, startTestHermes } from './helpers/hermes.js'
import { testDatabase } from '../src/harness/database.js'
import { formBody, twilioHeaders } from './helpers/twilio.js'

t.test('an older database gains the new columns and tables, and its sent messages take receipts', async (t) => {
  const db = await testDatabase(t)
  await db.query(await readFile(new URL('../../test/fixtures/schema-before-receipts.sql', import.meta.url), 'utf8'))
  await db.query(`
    INSERT INTO provider (name, kind) VALUES ('twilio', 'twilio');
    INSERT INTO channel (name, type, provider_id) SELECT 'sms', 'sms', id FROM provider WHERE name = 'twilio';
    INSERT INTO party (phone) VALUES ('+14155552671'), ('+12125551234');
    INSERT INTO conversation (party_a_id, party_b_id) SELECT min(id), max(id) FROM party;
    INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, received_at, dispatch_status, provider_message_id, dispatched_at)
    SELECT c.id, 'old-1', v.id, (SELECT id FROM party WHERE phone = '+14155552671'), (SELECT id FROM party WHERE phone = '+12125551234'), 'from before', now(), 'sent', 'SMold0001', now()
    FROM channel c, conversation v`)
  const h = await startTestHermes(t, {
    publicUrl: 'https://hermes.example.com',
    channels: { sms: { provider: 'twilio', secrets: ['s'] } },
    providers: { twilio: { kind: 'twilio', baseUrl: 'http://127.0.0.1:9', accountSid: 'AC1', authToken: 'tok' } }
  }, db)
  const columns = (await db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'message' AND column_name IN ('subject', 'delivery_status', 'delivery_updated_at') ORDER BY 1")).rows.map((r) => r.column_name)
  t.same(columns, ['delivery_status', 'delivery_updated_at', 'subject'])
  t.same((await db.query("SELECT body, delivery_status, subject FROM message WHERE external_id = 'old-1'")).rows, [{ body: 'from before', delivery_status: null, subject: null }], 'the old row reads as before')
  const fillfactor = async (): Promise<unknown> => (await db.query("SELECT reloptions FROM pg_class WHERE oid = 'message'::regclass")).rows[0].reloptions
  t.same(await fillfactor(), ['fillfactor=50'], 'message leaves room on its pages for receipts to update rows in place')
  const params = { MessageSid: 'SMold0001', MessageStatus: 'delivered' }
  const answer = await send('POST', `${h.base}/callbacks/twilio`, formBody(params), twilioHeaders('tok', 'https://hermes.example.com/callbacks/twilio', params))
  t.equal(answer.status, 200)
  t.equal((await db.query("SELECT delivery_status FROM message WHERE external_id = 'old-1'")).rows[0].delivery_status, 'delivered')
  await h.hermes.stop()

  // An up-to-date database: a second start runs none of schema.sql's statements, so a long read
  // holding message (as a running fleet's transactions do) cannot hold it up. ALTER TABLE would wait for it.
  const config = { channels: { sms: { provider: 'twilio', secrets: ['s'] } }, providers: { twilio: { kind: 'twilio', baseUrl: 'http://127.0.0.1:9', accountSid: 'AC1', authToken: 'tok' } } }
  const reader = new pg.Client({ connectionString: db.url })
  await reader.connect()
  t.teardown(() => reader.end())
  await reader.query('BEGIN; SELECT count(*) FROM message')
  const started = startTestHermes(t, config, db)
  const late = new Promise<'late'>((resolve) => { const timer = setTimeout(resolve, 10_000, 'late'); void started.finally(() => clearTimeout(timer)) })
  t.not(await Promise.race([started, late]), 'late', 'Hermes starts while another session reads message: it took no table lock')
  await reader.query('COMMIT')
  await (await started).hermes.stop()

  // A database whose schema.sql is older (another fingerprint) is upgraded again, idempotently.
  await db.query("UPDATE hermes_schema SET fingerprint = 'older'")
  await db.query('ALTER TABLE message SET (fillfactor = 80)')
  const again = await startTestHermes(t, config, db)
  t.ok(again.hermes.port > 0, 'applying the schema again is idempotent')
  t.same(await fillfactor(), ['fillfactor=80'], 'a fillfactor the operator chose is kept')
  t.not((await db.query('SELECT fingerprint FROM hermes_schema')).rows[0].fingerprint, 'older', 'the new fingerprint is recorded')
})

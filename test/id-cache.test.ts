// The writer's id cache: cached rows carry their ids into COPY, unknown ones are left to SQL.
import t from 'tap'
import { IdCache } from '../src/store/id-cache.js'
import { encodeStagingRow } from '../src/process/copy-encoder.js'

function row (from: string, to: string, body = 'hi\tthere'): string {
  return encodeStagingRow({ channel: 'sms', external_id: `${from}-${to}`, address_kind: 'phone', from_address: from, to_address: to, body, sent_at: null, received_at: '2026-11-29T10:00:00.000Z', attachments: '{}' })
}

t.test('unknown parties are sent as NULL ids, known ones with their ids, in either direction', async (t) => {
  const cache = new IdCache()
  const rows = Buffer.from(row('+111', '+222') + row('+222', '+111') + row('+111', '+333'))
  const first = cache.annotate(rows)
  t.equal(first.uncached, 3)
  t.match(first.rows.toString(), /^\\N\t\\N\t\\N\t\\N\tsms\t/)
  cache.learn([{ from_address: '+111', to_address: '+222', from_id: '1', to_id: '2', conversation_id: '10' }])
  const second = cache.annotate(rows).rows.toString().split('\n')
  t.equal(second[0], `1\t2\t10\t\\N\t${row('+111', '+222').trimEnd()}`)
  t.equal(second[1], `2\t1\t10\t\\N\t${row('+222', '+111').trimEnd()}`, 'B→A finds the same conversation')
  t.equal(second[2], `1\t\\N\t\\N\t\\N\t${row('+111', '+333').trimEnd()}`, 'a known party with a new partner keeps its id')
  t.equal(cache.hits, 2)
  t.equal(cache.misses, 4)
})

t.test('the cache is bounded: past maxEntries it starts over', async (t) => {
  const cache = new IdCache(4)
  cache.learn([{ from_address: 'a', to_address: 'b', from_id: '1', to_id: '2', conversation_id: '3' }])
  cache.learn([{ from_address: 'c', to_address: 'd', from_id: '4', to_id: '5', conversation_id: '6' }])
  t.ok(cache.size.parties <= 4)
  cache.learn([{ from_address: 'e', to_address: 'f', from_id: '7', to_id: '8', conversation_id: '9' }])
  t.ok(cache.size.parties <= 4, `parties ${cache.size.parties}`)
})

t.test('it counts the rows that need the full insert: those given a lease and those with files', async (t) => {
  const cache = new IdCache()
  const withFiles = encodeStagingRow({ channel: 'email', external_id: 'e1', address_kind: 'email', from_address: 'a@example.com', to_address: 'b@example.com', body: '', sent_at: null, received_at: '2026-11-29T10:00:00.000Z', attachments: '{}', subject: 'hello', files: '[{"filename":"a.txt"}]' })
  const withSubject = encodeStagingRow({ channel: 'email', external_id: 'e2', address_kind: 'email', from_address: 'a@example.com', to_address: 'b@example.com', body: '', sent_at: null, received_at: '2026-11-29T10:00:00.000Z', attachments: '{}', subject: 'no files' })
  const plain = cache.annotate(Buffer.from(row('+111', '+222') + withSubject))
  t.same([plain.claimed, plain.withFiles], [0, 0], 'an SMS and an email without files')
  const mixed = cache.annotate(Buffer.from(row('+111', '+222') + withFiles + withSubject), (channel) => channel === 'sms' ? 60_000 : undefined)
  t.same([mixed.claimed, mixed.withFiles], [1, 1], 'the SMS pre-claimed, one email with files')
})

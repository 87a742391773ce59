// The writer's staging table keeps its file between transactions (each one DELETEs its rows) and
// cuts it back once about kStagingBytesPerTruncate were staged since the last cut, so the file
// stays bounded however much passes through it (src/store/merge-sql.ts).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { startTestHermes, smsPayload } from './helpers/hermes.js'
import { kStagingBytesPerTruncate } from '../src/store/merge-sql.js'

const h = await startTestHermes(t)

/** The writer's staging table, file and TOAST together (another session's temp table: its size is still readable). */
async function stagingBytes (): Promise<number> {
  const r = await h.db.query("SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint AS bytes FROM pg_class WHERE relname = 'hermes_staging' AND relpersistence = 't'")
  return Number(r.rows[0]!['bytes'])
}

t.test('the staging table stays bounded while many times its bound passes through it', async (t) => {
  const bodyChars = 30_000 // incompressible, so it is stored (TOASTed) at full size
  const rounds = 16
  const perRound = 10 // ~300 kB per round: the whole run is ~4.8x the bound
  const ids: string[] = []
  let largest = 0
  for (let round = 0; round < rounds; round++) {
    const payloads = Array.from({ length: perRound }, () => smsPayload({ body: randomBytes(bodyChars * 3 / 4).toString('base64') }))
    const answers = await Promise.all(payloads.map(async (p) => await h.postSigned('sms', p)))
    t.same(answers.map((a) => a.status), Array(perRound).fill(202), `round ${round}: every webhook answered 202`)
    ids.push(...payloads.map((p) => p['id'] as string))
    largest = Math.max(largest, await stagingBytes())
  }
  const stored = await h.db.query('SELECT count(*)::int AS n, min(length(body))::int AS shortest FROM message WHERE external_id = ANY($1)', [ids])
  t.same(stored.rows[0], { n: rounds * perRound, shortest: bodyChars }, 'each message stored once, whole')
  const staged = rounds * perRound * bodyChars
  t.ok(staged > 4 * kStagingBytesPerTruncate, `${staged} bytes went through the staging table`)
  // The bound, plus one batch (~a round) staged on top of it before the next cut, plus page slack.
  t.ok(largest <= kStagingBytesPerTruncate + 2 * perRound * bodyChars, `its size peaked at ${largest} bytes (bound ${kStagingBytesPerTruncate} plus about two rounds)`)
  t.comment(`staging table at most ${largest} bytes while ${staged} passed through`)
})

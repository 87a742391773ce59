// GET /metrics: after a known load, the counters scraped equal what happened, from every thread.
import t from 'tap'
import { send, smsPayload, startTestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'

function parse (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return samples
}

async function scrape (base: string): Promise<Map<string, number>> {
  const answer = await send('GET', `${base}/metrics`)
  return parse(answer.text)
}

const h = await startTestHermes(t)

t.test('counters equal the load: accepted, rejected by reason, duplicates, stored, dispatched', async (t) => {
  const valid = Array.from({ length: 10 }, () => smsPayload())
  for (const p of valid) t.equal((await h.postSigned('sms', p)).status, 202)
  for (const p of valid.slice(0, 5)) t.equal((await h.postSigned('sms', p)).status, 202, 'duplicate')
  for (let i = 0; i < 3; i++) t.equal((await h.post('sms', smsPayload())).status, 401)
  for (let i = 0; i < 2; i++) t.equal((await h.post('sms', '{"id":', seedSignature('test-secret', '{"id":'))).status, 400)
  for (let i = 0; i < 4; i++) t.equal((await h.postSigned('sms', smsPayload({ from: 'not-a-number' }))).status, 422)
  t.equal((await h.postSigned('fax', smsPayload())).status, 404)

  const m = await scrape(h.base)
  t.equal(m.get('hermes_http_requests_total{channel="sms",status="202"}'), 15)
  t.equal(m.get('hermes_http_requests_total{channel="sms",status="401"}'), 3)
  t.equal(m.get('hermes_http_requests_total{channel="sms",status="400"}'), 2)
  t.equal(m.get('hermes_http_requests_total{channel="sms",status="422"}'), 4)
  t.equal(m.get('hermes_http_requests_total{channel="none",status="404"}'), 1)
  t.equal(m.get('hermes_ingest_accepted_total{channel="sms"}'), 15)
  t.equal(m.get('hermes_ingest_rejected_total{code="HERMES_ERR_SIGNATURE_MISSING"}'), 3)
  t.equal(m.get('hermes_ingest_rejected_total{code="HERMES_ERR_MALFORMED_JSON"}'), 2)
  t.equal(m.get('hermes_ingest_rejected_total{code="HERMES_ERR_INVALID_FIELDS"}'), 4)
  t.equal(m.get('hermes_ingest_rejected_total{code="HERMES_ERR_UNKNOWN_CHANNEL"}'), 1)
  t.equal(m.get('hermes_messages_stored_total{channel="sms"}'), 10)
  t.equal(m.get('hermes_attachments_stored_total'), 0)
  t.equal(m.get('hermes_messages_duplicate_total'), 5)
  t.equal(m.get('hermes_worker_records_total{outcome="accepted"}'), 15, 'counted in the worker threads')
  t.equal(m.get('hermes_worker_records_total{outcome="rejected"}'), 9)
  t.equal(m.get('hermes_commit_latency_seconds_count'), 15, 'one receipt→commit observation per durable 202')
  t.equal(m.get('hermes_writer_batch_rows_sum'), 15, 'every committed row is in a batch')
  t.equal(m.get('hermes_http_request_body_bytes_count'), 24, 'every body that reached the ring')
  t.equal(m.get('hermes_writer_id_cache_total{result="hit"}')! + m.get('hermes_writer_id_cache_total{result="miss"}')!, 15)
  t.equal(m.get('hermes_ring_used_messages'), 0)
  t.equal(m.get('hermes_database_up'), 1)

  const deadline = Date.now() + 10_000
  let sent = 0
  while (Date.now() < deadline && sent < 10) {
    sent = (await scrape(h.base)).get('hermes_dispatch_sends_total{provider="mock",outcome="sent"}') ?? 0
    if (sent < 10) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(sent, 10, 'the dispatch thread counts its sends')
  const after = await scrape(h.base)
  t.equal(after.get('hermes_dispatch_end_to_end_seconds_count'), 10)
  t.ok(after.has('hermes_dispatch_in_flight{provider="mock"}'))
  // the backlog gauge is refreshed from the database every 2 s
  const backlogDeadline = Date.now() + 10_000
  let backlog = -1
  while (Date.now() < backlogDeadline) {
    backlog = (await scrape(h.base)).get('hermes_dispatch_backlog{provider="mock"}') ?? -1
    if (backlog === 0) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(backlog, 0, 'nothing left to send')
  t.equal((await scrape(h.base)).get('hermes_dispatch_dead_letters{provider="mock"}'), 0)
})

t.test('every thread reports its event-loop utilisation, and process defaults are there', async (t) => {
  const m = await scrape(h.base)
  for (const thread of ['main', 'writer', 'dispatch', 'worker-0', 'worker-1']) {
    t.ok(m.has(`hermes_event_loop_utilization{thread="${thread}"}`), thread)
  }
  // Workers report time spent on tasks (an idle Piscina worker blocks in Atomics.wait, so its own ELU means nothing).
  const busy = (m.get('hermes_worker_busy_seconds_total{thread="worker-0"}') ?? 0) + (m.get('hermes_worker_busy_seconds_total{thread="worker-1"}') ?? 0)
  t.ok(busy > 0, `the workers count their busy time (${busy.toFixed(4)} s so far)`)
  t.ok(m.has('process_resident_memory_bytes'), 'prom-client defaults keep their standard names, so stock dashboards work')
  t.ok(m.has('nodejs_heap_size_used_bytes'))
  t.notOk([...m.keys()].some((k) => k.startsWith('hermes_process_') || k.startsWith('hermes_nodejs_')), 'and are not renamed under hermes_')
})

t.test('a scrape during load answers without waiting on the pipeline', async (t) => {
  const load = Promise.all(Array.from({ length: 200 }, async () => await h.postSigned('sms', smsPayload())))
  const started = Date.now()
  const answer = await send('GET', `${h.base}/metrics`)
  const elapsed = Date.now() - started
  t.equal(answer.status, 200)
  t.match(answer.headers['content-type'], /text\/plain/)
  // Measured on purpose, with a wide margin: a scrape queued behind the pipeline would wait for the 200 commits.
  t.ok(elapsed < 5000, `answered in ${elapsed} ms`)
  await load
})

t.test('labels never carry message ids or addresses', async (t) => {
  const text = (await send('GET', `${h.base}/metrics`)).text
  t.notMatch(text, /\+1415/)
  t.notMatch(text, /t-\d+-\d+/)
})

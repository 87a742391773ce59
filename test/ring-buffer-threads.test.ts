import { Worker } from 'node:worker_threads'
import t from 'tap'
import { IngressRing } from '../src/ingest/ring-buffer.js'
import { checksum, recordFor, type RangeReply } from './fixtures/ring-consumer.js'

const fixture = new URL('./fixtures/ring-consumer.js', import.meta.url)

interface Range {
  readonly offset: number
  readonly end: number
  readonly ids: number[]
  readonly checksum: number
  done: boolean
}

t.test('consumer threads read disjoint ranges while the producer writes and releases over many wraps', async (t) => {
  const capacityBytes = 4096
  const ring = IngressRing.create(capacityBytes, 48)
  const consumers = 3
  const total = 30_000
  const workers: Worker[] = []
  t.teardown(async () => { await Promise.all(workers.map(async (w) => await w.terminate())) })
  for (let i = 0; i < consumers; i++) workers.push(new Worker(fixture, { workerData: { ring: ring.buffer } }))

  const seen = new Uint8Array(total)
  const ranges: Range[] = [] // dispatched, in write order; released from the front once done
  const problems: string[] = []
  let nextId = 0
  let undispatched: number[] = [] // ids written but not yet handed out
  let undispatchedSum = 0x811c9dc5
  let dispatchOffset = ring.writeOffset
  let nextWorker = 0
  let released = 0
  let inFlight = 0
  let maxInFlight = 0
  let wraps = 0
  let refusals = 0
  let lastWriteOffset = -1

  const finished = new Promise<void>((resolve, reject) => {
    const fail = (message: string): void => { problems.push(message); reject(new Error(message)) }

    const pump = (): void => {
      // Write as much as fits.
      while (nextId < total) {
        const input = recordFor(nextId)
        const before = ring.writeOffset
        const offset = ring.tryWrite(input)
        if (offset < 0) { refusals++; break }
        if (offset !== before) wraps++ // skipped the tail: wrote a wrap marker
        if (offset < lastWriteOffset && offset === before) wraps++ // previous record exactly filled the tail
        lastWriteOffset = offset
        if (ring.usedBytes > capacityBytes) return fail(`usedBytes ${ring.usedBytes} exceeds capacity`)
        undispatched.push(nextId)
        undispatchedSum = checksum(input, undispatchedSum)
        nextId++
        // Hand out a range now and then, so ranges have varied lengths (1..7).
        if (undispatched.length >= 1 + (nextId % 7)) dispatch()
      }
      if (undispatched.length > 0) dispatch()
    }

    const dispatch = (): void => {
      const count = undispatched.length
      const offset = dispatchOffset
      const end = ring.skip(offset, count)
      ranges.push({ offset, end, ids: undispatched, checksum: undispatchedSum, done: false })
      undispatched = []
      undispatchedSum = 0x811c9dc5
      dispatchOffset = end
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      workers[nextWorker]!.postMessage({ offset, count })
      nextWorker = (nextWorker + 1) % consumers
    }

    const onReply = (reply: RangeReply): void => {
      inFlight--
      const range = ranges.find((r) => r.offset === reply.offset && !r.done)
      if (range === undefined) return fail(`reply for an unknown range at ${reply.offset}`)
      if (reply.count !== range.ids.length) return fail(`range at ${reply.offset}: count ${reply.count} != ${range.ids.length}`)
      if (reply.mismatches.length > 0) return fail(`records with wrong content: ${reply.mismatches.join(', ')}`)
      if (reply.ids.join() !== range.ids.join()) return fail(`range at ${reply.offset}: read ids ${reply.ids.join()} but wrote ${range.ids.join()}`)
      if (reply.checksum !== range.checksum) return fail(`range at ${reply.offset}: checksum mismatch`)
      if (reply.end !== range.end || reply.lastNext !== range.end) return fail(`range at ${reply.offset}: end ${reply.end}/${reply.lastNext} != ${range.end}`)
      for (const id of reply.ids) seen[id]!++
      range.done = true
      // Release in write order, up to the oldest range still being read.
      let records = 0
      let end = -1
      while (ranges.length > 0 && ranges[0]!.done) {
        const first = ranges.shift()!
        records += first.ids.length
        end = first.end
      }
      if (records > 0) {
        ring.release(end, records)
        released += records
        if (ring.releaseOffset !== end) return fail(`releaseOffset ${ring.releaseOffset} != ${end}`)
        if (ring.usedRecords !== nextId - released) return fail(`usedRecords ${ring.usedRecords} != ${nextId - released}`)
        if (ring.usedRecords === 0 && ring.usedBytes !== 0) return fail(`empty ring reports ${ring.usedBytes} used bytes`)
      }
      if (released === total) { resolve(); return }
      pump()
    }

    for (const worker of workers) {
      worker.on('message', onReply)
      worker.on('error', reject)
      worker.on('exit', (code) => { if (released < total) reject(new Error(`consumer exited early with code ${code}`)) })
    }
    pump()
  })

  await finished
  t.same(problems, [], 'no consumer reported a problem')
  t.equal(released, total, 'every record was released')
  let once = 0
  for (const count of seen) if (count === 1) once++
  t.equal(once, total, 'every record was seen exactly once')
  t.equal(ring.usedRecords, 0, 'ring is empty at the end')
  t.equal(ring.usedBytes, 0, 'no bytes in use at the end')
  t.equal(ring.written, total, 'written gauge counts every record')
  t.ok(wraps >= 50, `the ring wrapped many times (${wraps})`)
  t.ok(refusals > 0, `the producer filled the ring and waited for releases (${refusals} refusals)`)
  t.ok(maxInFlight >= consumers, `several ranges were in flight at once (max ${maxInFlight})`)
})

// The token bucket lets at most burst + perSecond·t sends through in any t seconds, and a 429 pause really pauses it.
// Its start window keeps that bound at the provider too: arrivals jittered by up to the guard never put more than
// burst + perSecond into one second, while the sustained rate stays perSecond.
import t from 'tap'
import { TokenBucket } from '../src/dispatch/token-bucket.js'
import { StartWindow, kGuardMs } from '../src/dispatch/start-window.js'
import { busiestWindow } from '../src/harness/fake-provider.js'

function fakeClock (): { now: () => number; advance: (ms: number) => void } {
  let time = 1000
  return { now: () => time, advance: (ms) => { time += ms } }
}

t.test('a full bucket gives its burst at once, then one token per 1/perSecond', async (t) => {
  const clock = fakeClock()
  const bucket = new TokenBucket(20, 5, clock.now)
  for (let i = 0; i < 5; i++) t.equal(bucket.take(), 0, `burst token ${i + 1}`)
  t.equal(bucket.take(), 50, 'the sixth waits one interval (50 ms at 20/s)')
  clock.advance(49)
  t.equal(bucket.take(), 1, 'not a millisecond early')
  clock.advance(1)
  t.equal(bucket.take(), 0)
  t.equal(bucket.take(), 50)
})

t.test('never more than burst + rate·t in any window, taking as fast as allowed', async (t) => {
  const clock = fakeClock()
  const bucket = new TokenBucket(20, 5, clock.now)
  const sends: number[] = []
  // Drive it like the lane does: take until told to wait, then advance by exactly the wait.
  while (sends.length < 200) {
    const wait = bucket.take()
    if (wait === 0) sends.push(clock.now())
    else clock.advance(wait)
  }
  let worst = 0
  for (let i = 0; i < sends.length; i++) {
    let j = i
    while (j < sends.length && sends[j]! - sends[i]! <= 1000) j++
    worst = Math.max(worst, j - i)
  }
  t.equal(worst, 25, 'the busiest 1-second window holds burst + perSecond = 25')
  t.equal(sends.at(-1)! - sends[0]!, 9750, '195 tokens after the burst take 9.75 s at 20/s')
})

t.test('an idle bucket refills only up to its burst', async (t) => {
  const clock = fakeClock()
  const bucket = new TokenBucket(10, 3, clock.now)
  clock.advance(60_000)
  let taken = 0
  while (bucket.take() === 0) taken++
  t.equal(taken, 3)
})

t.test('fractional rates and bursts work', async (t) => {
  const clock = fakeClock()
  const bucket = new TokenBucket(0.5, 1, clock.now)
  t.equal(bucket.take(), 0)
  t.equal(bucket.take(), 2000, 'one token every 2 s')
  clock.advance(2000)
  t.equal(bucket.take(), 0)
})

t.test('pause() holds every token for its duration and restarts empty', async (t) => {
  const clock = fakeClock()
  const bucket = new TokenBucket(100, 50, clock.now)
  bucket.pause(1000)
  t.equal(bucket.take(), 1000)
  t.equal(bucket.pausedFor(), 1000)
  clock.advance(999)
  t.equal(bucket.take(), 1)
  clock.advance(1)
  t.equal(bucket.take(), 10, 'after the pause the bucket is empty: the next token comes at the plain rate, not a burst')
  clock.advance(10)
  t.equal(bucket.take(), 0)
  bucket.pause(500)
  bucket.pause(100)
  t.equal(bucket.pausedFor(), 500, 'a shorter pause does not cut a longer one short')
})

t.test('capacityWithin() is what can be taken in the horizon', async (t) => {
  const clock = fakeClock()
  const bucket = new TokenBucket(20, 5, clock.now)
  t.equal(bucket.capacityWithin(1000), 25)
  bucket.pause(600)
  t.equal(bucket.capacityWithin(1000), 8, 'only the 400 ms after the pause count')
  t.equal(bucket.capacityWithin(500), 0)
})

t.test('bad options are refused with exact messages', async (t) => {
  t.throws(() => new TokenBucket(0, 5), new RangeError('perSecond must be a positive number'))
  t.throws(() => new TokenBucket(Number.NaN, 5), new RangeError('perSecond must be a positive number'))
  t.throws(() => new TokenBucket(10, 0.5), new RangeError('burst must be a number >= 1'))
})

/** Starts `count` sends as fast as the lane would: take until told to wait, then advance by exactly the wait. */
function drive (perSecond: number, burst: number, count: number): number[] {
  const clock = fakeClock()
  const bucket = new TokenBucket(perSecond, burst, clock.now)
  const starts: number[] = []
  while (starts.length < count) {
    const wait = bucket.take()
    if (wait > 0) clock.advance(wait)
    else starts.push(clock.now())
  }
  return starts
}

/**
 * The jitter that broke the limit at the provider: the sends of the first 100 ms go out on new
 * connections and arrive `lateMs` after they start; later ones reuse warm connections.
 */
function arrivals (starts: readonly number[], lateMs: number): number[] {
  return starts.map((at) => at - starts[0]! < 100 ? at + lateMs : at)
}

t.test('a late first burst (cold connections) stays within burst + perSecond at the provider', async (t) => {
  // What a bucket without the start window would do: the burst at once, then one send every 50 ms.
  const bucketAlone = Array.from({ length: 200 }, (_, i) => i < 5 ? 0 : (i - 4) * 50)
  const busiestAlone = busiestWindow(arrivals(bucketAlone, 60))
  t.ok(busiestAlone > 25, `the bucket alone lets ${busiestAlone} arrive in one second (the failure this guards against)`)
  for (const lateMs of [1, 10, 60, kGuardMs - 1]) {
    const busiest = busiestWindow(arrivals(drive(20, 5, 200), lateMs))
    t.ok(busiest <= 25, `burst ${lateMs} ms late: busiest second holds ${busiest} (at most 25)`)
  }
})

t.test('random jitter below the guard never breaks the limit', async (t) => {
  let seed = 7
  const random = (): number => { seed = (seed * 48271) % 2147483647; return seed / 2147483647 }
  for (const [perSecond, burst] of [[20, 5], [100, 100], [50, 1]] as const) {
    const starts = drive(perSecond, burst, 2000)
    const guard = StartWindow.for(perSecond, burst, () => 0)!.spanMs - 1000
    for (let trial = 0; trial < 20; trial++) {
      const arrived = starts.map((at) => at + random() * guard * 0.99)
      const busiest = busiestWindow(arrived)
      if (busiest > burst + perSecond) t.fail(`${perSecond}/s burst ${burst}: ${busiest} in one second`)
    }
    t.pass(`${perSecond}/s burst ${burst}: 20 jittered runs within ${burst + perSecond} per second (guard ${guard.toFixed(0)} ms)`)
  }
})

t.test('the start window leaves the sustained rate unchanged', async (t) => {
  for (const [perSecond, burst] of [[20, 5], [100, 1], [1000, 10]] as const) {
    const n = 20 * perSecond
    const starts = drive(perSecond, burst, n)
    const span = starts.at(-1)! - starts[0]!
    const plain = (n - burst) * 1000 / perSecond // the bucket's own schedule: the burst at once, then one per interval
    t.ok(Math.abs(span - plain) <= 1, `${perSecond}/s burst ${burst}: ${n} sends take ${span.toFixed(0)} ms (${plain.toFixed(0)} ms by the rate alone)`)
  }
})

t.test('start-window bounds too large to track are left to the bucket', async (t) => {
  t.equal(StartWindow.for(1_000_000, 10_000, () => 0), null)
  const window = StartWindow.for(20, 5, () => 0)!
  t.equal(window.limit, 25)
  t.equal(window.spanMs, 1000 + kGuardMs)
  t.equal(StartWindow.for(20, 1, () => 0)!.spanMs, 1050, 'the guard shrinks so it never binds at the sustained rate')
})

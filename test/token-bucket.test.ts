// The token bucket lets at most burst + perSecond·t sends through in any t seconds, and a 429 pause really pauses it.
import t from 'tap'
import { TokenBucket } from '../src/dispatch/token-bucket.js'

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

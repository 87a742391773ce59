// The start window keeps a provider's limit at the provider: with arrival jitter up to its guard, no
// 1-second window of arrivals holds more than burst + perSecond, while the sustained rate stays perSecond.
import t from 'tap'
import { TokenBucket } from '../src/dispatch/token-bucket.js'
import { StartWindow, kGuardMs } from '../src/dispatch/start-window.js'
import { busiestWindow } from './helpers/fake-provider.js'

function fakeClock (): { now: () => number; advance: (ms: number) => void } {
  let time = 1000
  return { now: () => time, advance: (ms) => { time += ms } }
}

/** Starts `count` sends as fast as the lane would (bucket, then window); returns their start times. */
function drive (perSecond: number, burst: number, count: number, useWindow: boolean): number[] {
  const clock = fakeClock()
  const bucket = new TokenBucket(perSecond, burst, clock.now)
  const window = useWindow ? StartWindow.for(perSecond, burst, clock.now) : null
  const starts: number[] = []
  while (starts.length < count) {
    const windowWait = window?.waitMs() ?? 0
    const wait = windowWait > 0 ? windowWait : bucket.take()
    if (wait > 0) { clock.advance(wait); continue }
    window?.record()
    starts.push(clock.now())
  }
  return starts
}

/**
 * The jitter that broke the limit: the sends of the first 100 ms go out on new connections and
 * arrive `lateMs` after they start; later ones reuse warm connections and arrive at once.
 */
function arrivals (starts: readonly number[], lateMs: number): number[] {
  return starts.map((at) => at - starts[0]! < 100 ? at + lateMs : at)
}

t.test('a late first burst (cold connections) stays within burst + perSecond at the provider', async (t) => {
  const bucketOnly = busiestWindow(arrivals(drive(20, 5, 200, false), 60))
  t.ok(bucketOnly > 25, `the bucket alone lets ${bucketOnly} arrive in one second (the failure this guards against)`)
  for (const lateMs of [1, 10, 60, kGuardMs - 1]) {
    const busiest = busiestWindow(arrivals(drive(20, 5, 200, true), lateMs))
    t.ok(busiest <= 25, `burst ${lateMs} ms late: busiest second holds ${busiest} (at most 25)`)
  }
})

t.test('random jitter below the guard never breaks the limit', async (t) => {
  let seed = 7
  const random = (): number => { seed = (seed * 48271) % 2147483647; return seed / 2147483647 }
  for (const [perSecond, burst] of [[20, 5], [100, 100], [50, 1]] as const) {
    const starts = drive(perSecond, burst, 2000, true)
    const guard = StartWindow.for(perSecond, burst)!.spanMs - 1000
    for (let trial = 0; trial < 20; trial++) {
      const arrived = starts.map((at) => at + random() * guard * 0.99)
      const busiest = busiestWindow(arrived)
      if (busiest > burst + perSecond) t.fail(`${perSecond}/s burst ${burst}: ${busiest} in one second`)
    }
    t.pass(`${perSecond}/s burst ${burst}: 20 jittered runs within ${burst + perSecond} per second (guard ${guard.toFixed(0)} ms)`)
  }
})

t.test('the sustained rate is unchanged', async (t) => {
  for (const [perSecond, burst] of [[20, 5], [100, 1], [1000, 10]] as const) {
    const n = 20 * perSecond
    const withWindow = drive(perSecond, burst, n, true)
    const without = drive(perSecond, burst, n, false)
    const spanWith = withWindow.at(-1)! - withWindow[0]!
    const spanWithout = without.at(-1)! - without[0]!
    t.ok(spanWith - spanWithout <= kGuardMs, `${perSecond}/s burst ${burst}: ${n} sends take ${spanWith.toFixed(0)} ms with the window, ${spanWithout.toFixed(0)} ms without`)
  }
})

t.test('bounds too large to track are left to the bucket', async (t) => {
  t.equal(StartWindow.for(1_000_000, 10_000), null)
  const window = StartWindow.for(20, 5)!
  t.equal(window.limit, 25)
  t.equal(window.spanMs, 1000 + kGuardMs)
  t.equal(StartWindow.for(20, 1)!.spanMs, 1050, 'the guard shrinks so it never binds at the sustained rate')
})

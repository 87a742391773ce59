// A provider's limits split between live instances never add up to more than the limits, and busy instances get nearly all of them.
import t from 'tap'
import { kIdleWeight, lesserShare, shareOf, type Limits, type LiveInstance } from '../src/fleet/shares.js'

const limits: Limits = { perSecond: 50, burst: 20, concurrency: 8 }
const sum = (shares: Limits[]): Limits => shares.reduce((a, b) => ({ perSecond: a.perSecond + b.perSecond, burst: a.burst + b.burst, concurrency: a.concurrency + b.concurrency }), { perSecond: 0, burst: 0, concurrency: 0 })
const all = (l: Limits, live: LiveInstance[]): Limits[] => live.map((i) => shareOf(l, live, i.id))

t.test('one instance alone gets the whole limits', async (t) => {
  t.strictSame(shareOf(limits, [{ id: 'a', busy: false }], 'a'), limits)
  t.strictSame(shareOf(limits, [{ id: 'a', busy: true }], 'a'), limits)
})

t.test('instances that are all busy (or all idle) split evenly, whole slots going to the first ids', async (t) => {
  for (const busy of [true, false]) {
    const live = ['c', 'a', 'b'].map((id) => ({ id, busy }))
    const shares = all(limits, live)
    for (const s of shares) t.equal(s.perSecond, 50 / 3)
    for (const s of shares) t.equal(s.burst, 20 / 3)
    t.strictSame(shares.map((s) => s.concurrency), [2, 3, 3], 'c gets 2, a and b 3 (8 = 3 + 3 + 2)')
  }
})

t.test('an idle instance keeps a floor and the busy ones take the rest', async (t) => {
  const live = [{ id: 'a', busy: true }, { id: 'b', busy: false }]
  const [a, b] = all(limits, live) as [Limits, Limits]
  t.ok(a.perSecond >= 0.9 * 50, `the busy instance gets ${a.perSecond}/s (at least 90% of 50)`)
  t.equal(b.perSecond, 50 * kIdleWeight / (1 + kIdleWeight))
  t.equal(b.burst, 1, 'one token of burst, enough to start sending')
  t.equal(b.concurrency, 1, 'and one slot')
  t.equal(a.burst, 19)
  t.equal(a.concurrency, 7)
})

t.test('the shares never add up to more than the limits', async (t) => {
  let cases = 0
  for (const l of [limits, { perSecond: 1, burst: 3, concurrency: 3 }, { perSecond: 1000, burst: 1000, concurrency: 32 }, { perSecond: 7, burst: 5, concurrency: 2 }, { perSecond: 10, burst: 1, concurrency: 4 }, { perSecond: 10, burst: 2.5, concurrency: 6 }]) {
    for (let n = 1; n <= 5; n++) {
      for (let mask = 0; mask < 1 << n; mask++) {
        const live = Array.from({ length: n }, (_, i) => ({ id: `i${i}`, busy: (mask & (1 << i)) !== 0 }))
        const total = sum(all(l, live))
        cases++
        if (total.perSecond > l.perSecond + 1e-9) t.fail(`perSecond ${total.perSecond} > ${l.perSecond} for ${JSON.stringify(live)}`)
        if (total.burst > l.burst + 1e-9) t.fail(`burst ${total.burst} > ${l.burst} for ${JSON.stringify(live)}`)
        if (total.concurrency > l.concurrency) t.fail(`concurrency ${total.concurrency} > ${l.concurrency} for ${JSON.stringify(live)}`)
        const busyGet = all(l, live).filter((_, i) => live[i]!.busy || mask === 0).reduce((s, x) => s + x.perSecond, 0)
        if (busyGet < 0.9 * l.perSecond - 1e-9 && n <= 3) t.fail(`busy instances get only ${busyGet} of ${l.perSecond} for ${JSON.stringify(live)}`)
      }
    }
  }
  t.pass(`${cases} fleets checked`)
})

t.test('a burst below the number of instances: only that many take part, the busy ones first, so the fleet never exceeds it', async (t) => {
  const l = { perSecond: 30, burst: 2, concurrency: 6 }
  const live = [{ id: 'a', busy: false }, { id: 'b', busy: true }, { id: 'c', busy: false }, { id: 'd', busy: true }]
  const shares = all(l, live)
  t.strictSame(shares.map((s) => s.burst), [0, 1, 0, 1], 'b and d (busy) hold one token each; a and c none')
  t.strictSame(shares.map((s) => s.perSecond), [0, 15, 0, 15], 'the busy two split the rate')
  t.strictSame(shares.map((s) => s.concurrency), [0, 3, 0, 3], 'and the slots')
  const idle = all(l, live.map((i) => ({ ...i, busy: false })))
  t.strictSame(idle.map((s) => s.burst), [1, 1, 0, 0], 'nobody busy: the first ids')
  t.strictSame(all({ perSecond: 10, burst: 1, concurrency: 4 }, live).map((s) => s.concurrency), [0, 4, 0, 0], 'a burst of 1: one instance sends, with every slot')
})

t.test('an instance not among the live ones gets nothing', async (t) => {
  t.strictSame(shareOf(limits, [{ id: 'a', busy: true }], 'z'), { perSecond: 0, burst: 0, concurrency: 0 })
})

t.test('the lesser of two shares is taken field by field', async (t) => {
  t.strictSame(lesserShare({ perSecond: 10, burst: 1, concurrency: 5 }, { perSecond: 5, burst: 4, concurrency: 9 }), { perSecond: 5, burst: 1, concurrency: 5 })
})

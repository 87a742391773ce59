// The dispatch gauges count the backlog in PostgreSQL, a read that grows with the backlog; a slow
// count holds the next one back so that the gauges never take more than a twentieth of a session.
import t from 'tap'
import { nextGaugeReadAt } from '../src/dispatch/dispatch-gauges.js'

t.test('a fast count leaves the pace to the interval; a slow one spaces the next out', async (t) => {
  t.equal(nextGaugeReadAt(1000, 1005), 1100, 'a 5 ms count may run again 95 ms later: the 2 s interval decides')
  t.equal(nextGaugeReadAt(1000, 1500), 11_000, 'a 500 ms count waits 9.5 s')
  const busy = (took: number): number => took / (nextGaugeReadAt(0, took) - 0)
  for (const took of [1, 100, 5000]) t.ok(busy(took) <= 0.05 + 1e-9, `a ${took} ms count: the session busy at most 5% of the time`)
})

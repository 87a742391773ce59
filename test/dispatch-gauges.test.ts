// The dispatch gauges count the backlog in PostgreSQL, a read that grows with the backlog; a slow
// count holds the next one back so that the gauges never take more than a twentieth of a session.
import t from 'tap'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { nextGaugeReadAt } from '../src/dispatch/dispatch-gauges.js'
import { testDatabase } from '../src/harness/database.js'
import { threadExecArgv } from './helpers/hermes.js'

t.test('a fast count leaves the pace to the interval; a slow one spaces the next out', async (t) => {
  t.equal(nextGaugeReadAt(1000, 1005), 1100, 'a 5 ms count may run again 95 ms later: the 2 s interval decides')
  t.equal(nextGaugeReadAt(1000, 1500), 11_000, 'a 500 ms count waits 9.5 s')
  const busy = (took: number): number => took / (nextGaugeReadAt(0, took) - 0)
  for (const took of [1, 100, 5000]) t.ok(busy(took) <= 0.05 + 1e-9, `a ${took} ms count: the session busy at most 5% of the time`)
})

t.test('a stop while the gauges connect for their first read closes that session: the thread can end', async (t) => {
  const db = await testDatabase(t)
  const href = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href)
  // A thread that starts the gauges and stops them at once, before their first connect returns: once
  // the stop has closed everything, nothing keeps the thread alive and it ends by itself.
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads')
    Promise.all([import(${href('../src/dispatch/dispatch-gauges.js')}), import(${href('../src/metrics/shared-metrics.js')}), import(${href('../src/metrics/definitions.js')}), import(${href('../src/log.js')})])
      .then(([gauges, shared, definitions, log]) => {
        const metrics = new shared.SharedMetrics(definitions.metricsLayout({ channels: ['sms'], providers: ['mock'], workers: 1 }))
        const stop = gauges.reportDispatchGauges(metrics, workerData.url, [{ name: 'mock', sending: 0 }], log.createLogger('silent'))
        stop()
      })`, { eval: true, workerData: { url: db.url }, execArgv: [...threadExecArgv] })
  const timer = setTimeout(() => { void worker.terminate() }, 15_000)
  const [code] = await once(worker, 'exit') as [number]
  clearTimeout(timer)
  t.equal(code, 0, 'the thread ended by itself (terminated after 15 s otherwise: exit code 1)')
})

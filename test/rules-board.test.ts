// Reloads are atomic for the workers: each range of ring records is verified with the channel rules
// of the generation it was handed out under, and a generation's rules stay readable while a range of
// it may still be in flight.
import t from 'tap'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { RulesBoard } from '../src/process/rules-board.js'
import type { ProcessRules } from '../src/process/types.js'

const rules = (secret: string): ProcessRules => ({ channels: [{ name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets: [secret, `${secret}-2`] }], providers: [], publicUrl: null })

t.test('each generation reads back exactly the rules published as it', async (t) => {
  const board = RulesBoard.create(rules('gen-0'))
  t.same(board.read(0), rules('gen-0'))
  board.publish(1, rules('gen-1'))
  t.same(board.read(1), rules('gen-1'), 'the new generation')
  t.same(board.read(0), rules('gen-0'), 'the previous one is still there for ranges handed out under it')
  board.publish(2, rules('gen-2'))
  const reader = RulesBoard.attach(board.buffer) // a thread that has not cached generation 0
  t.throws(() => reader.read(0), /generation 0 are not on the board/, 'two reloads later its slot holds the newer generation, and a reader says so rather than mixing')
  t.same(board.read(2), rules('gen-2'))
})

t.test('another thread reads the generation its task names', async (t) => {
  const board = RulesBoard.create(rules('gen-0'))
  board.publish(1, rules('gen-1'))
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    import(workerData.module).then(({ RulesBoard }) => {
      const board = RulesBoard.attach(workerData.buffer)
      parentPort.on('message', (generation) => parentPort.postMessage(board.read(generation).channels[0].secrets))
    })`, { eval: true, workerData: { buffer: board.buffer, module: new URL('../src/process/rules-board.js', import.meta.url).href } })
  t.teardown(() => worker.terminate())
  worker.postMessage(0)
  t.same((await once(worker, 'message'))[0], ['gen-0', 'gen-0-2'])
  worker.postMessage(1)
  t.same((await once(worker, 'message'))[0], ['gen-1', 'gen-1-2'])
})

t.test('rules too large for their slot are refused, not truncated', async (t) => {
  const board = RulesBoard.create(rules('small'), 256)
  t.throws(() => board.publish(1, rules('x'.repeat(1000))), /more than the 256 bytes reserved/)
  t.same(board.read(0), rules('small'))
})

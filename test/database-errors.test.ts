// isTransientDatabaseError tells a failure worth retrying (the server is unreachable, restarting, out of resources)
// from one that fails the same way every time (PostgreSQL refused the rows, or a bug of ours).
import t from 'tap'
import { isRefusedByDatabase, isTransientDatabaseError } from '../src/database-errors.js'

const withCode = (code: string): Error => Object.assign(new Error(`SQLSTATE ${code}`), { code })

t.test('connection and resource failures are transient', async (t) => {
  for (const error of [withCode('ECONNREFUSED'), withCode('ECONNRESET'), new Error('Connection terminated unexpectedly'), withCode('08006'), withCode('53300'), withCode('57P01'), withCode('58030'), withCode('40001'), withCode('40P01')]) {
    t.ok(isTransientDatabaseError(error), (error as Error).message)
  }
})

t.test('what PostgreSQL refuses is not: data and constraint errors', async (t) => {
  for (const code of ['23505', '23502', '22P02', '42601']) t.notOk(isTransientDatabaseError(withCode(code)), code)
})

t.test('programming errors are not transient: a TypeError or RangeError fails the same way on every retry', async (t) => {
  t.notOk(isTransientDatabaseError(new TypeError("Cannot read properties of undefined (reading 'rows')")))
  t.notOk(isTransientDatabaseError(new RangeError('Invalid array length')))
  t.notOk(isTransientDatabaseError(Object.assign(new TypeError('with a socket-like code'), { code: 'ECONNRESET' })), 'whatever code it carries')
})

t.test('the writer rejects rows only when PostgreSQL refused them: a driver TypeError from a lost socket keeps them', async (t) => {
  const pgError = (code: string): Error => Object.assign(new Error(`sqlstate ${code}`), { code })
  t.equal(isRefusedByDatabase(pgError('23505')), true, 'a unique violation')
  t.equal(isRefusedByDatabase(pgError('22P02')), true, 'invalid text representation')
  t.equal(isRefusedByDatabase(pgError('57P01')), false, 'admin shutdown: retried')
  t.equal(isRefusedByDatabase(new TypeError("Cannot read properties of null (reading 'write')")), false, 'a TypeError inside the driver: retried')
  t.equal(isRefusedByDatabase(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), false, 'a socket error: retried')
})

// Retry timing: exponential backoff with full jitter, capped; Retry-After as seconds or an HTTP date.
import t from 'tap'
import { backoffDelay, kMaxRetryAfterMs, parseRetryAfter } from '../src/dispatch/backoff.js'

const policy = { baseDelayMs: 100, maxDelayMs: 1000 }

t.test('the ceiling doubles per attempt up to maxDelayMs', async (t) => {
  const almostOne = (): number => 0.999999
  t.equal(backoffDelay(1, policy, almostOne), 99)
  t.equal(backoffDelay(2, policy, almostOne), 199)
  t.equal(backoffDelay(3, policy, almostOne), 399)
  t.equal(backoffDelay(4, policy, almostOne), 799)
  t.equal(backoffDelay(5, policy, almostOne), 999, 'capped')
  t.equal(backoffDelay(2000, policy, almostOne), 999, 'no overflow at absurd attempt counts')
})

t.test('full jitter: anywhere from 0 to the ceiling', async (t) => {
  t.equal(backoffDelay(3, policy, () => 0), 0)
  t.equal(backoffDelay(3, policy, () => 0.5), 200)
  const seen = Array.from({ length: 2000 }, () => backoffDelay(4, policy))
  t.ok(seen.every((d) => d >= 0 && d < 800), 'within [0, 800)')
  t.ok(Math.min(...seen) < 100 && Math.max(...seen) > 700, 'spread over the range')
})

t.test('attempt must be a positive integer', async (t) => {
  t.throws(() => backoffDelay(0, policy), new RangeError('attempt must be a positive integer'))
  t.throws(() => backoffDelay(1.5, policy), new RangeError('attempt must be a positive integer'))
})

t.test('Retry-After in seconds', async (t) => {
  t.equal(parseRetryAfter('1'), 1000)
  t.equal(parseRetryAfter(' 120 '), 120_000)
  t.equal(parseRetryAfter('0'), 0)
  t.equal(parseRetryAfter(['3', '9']), 3000, 'the first of repeated headers')
  t.equal(parseRetryAfter('99999999'), kMaxRetryAfterMs, 'capped at a day')
})

t.test('Retry-After as an HTTP date', async (t) => {
  const now = Date.parse('2026-11-29T10:00:00Z')
  t.equal(parseRetryAfter('Sun, 29 Nov 2026 10:00:30 GMT', now), 30_000, 'IMF-fixdate')
  t.equal(parseRetryAfter('Sunday, 29-Nov-26 10:00:05 GMT', now), 5000, 'obsolete RFC 850 form')
  t.equal(parseRetryAfter('Sun Nov 29 10:00:02 2026', now), 2000, 'asctime form')
  t.equal(parseRetryAfter('Sun, 29 Nov 2026 09:00:00 GMT', now), 0, 'a date in the past means now')
})

t.test('an absent or unreadable Retry-After is undefined', async (t) => {
  t.equal(parseRetryAfter(undefined), undefined)
  t.equal(parseRetryAfter(''), undefined)
  t.equal(parseRetryAfter('-5'), undefined)
  t.equal(parseRetryAfter('1.5'), undefined)
  t.equal(parseRetryAfter('soon'), undefined)
  t.equal(parseRetryAfter('Foo, bar'), undefined)
})

import { createHash, timingSafeEqual } from 'node:crypto'

const digestCache = new WeakMap<readonly string[], readonly Buffer[]>()

function digest (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/**
 * Whether `Authorization: Basic …` names one of the accepted "user:password"
 * entries. Both sides are hashed first, so every comparison is of equal
 * length and constant time, and no entry's length shows in the timing.
 */
export function basicAuthValid (accepted: readonly string[], authorization: string): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(authorization)
  if (m === null) return false
  const given = digest(Buffer.from(m[1]!, 'base64').toString('utf8'))
  let digests = digestCache.get(accepted)
  if (digests === undefined) {
    digests = accepted.map(digest)
    digestCache.set(accepted, digests)
  }
  let valid = false
  for (const expected of digests) if (timingSafeEqual(given, expected)) valid = true
  return valid
}

import type { HttpRequest } from 'uWebSockets.js'

const kDigits = /^\d+$/

/**
 * Why the request's body framing is ambiguous, or null. uWebSockets.js frames
 * a body by the first Content-Length header it finds; a proxy in front may
 * frame it by the last, or by a list "5, 10", so a second request could hide
 * in the first one's body (request smuggling). RFC 9112 §6.3: differing
 * Content-Length values are an unrecoverable error; the connection must
 * close. (Transfer-Encoding with Content-Length uWS refuses itself.)
 */
export function framingProblem (req: HttpRequest): string | null {
  let length: string | null = null
  let problem: string | null = null
  req.forEach((name, value) => {
    if (problem !== null || name !== 'content-length') return
    // A list of equal values ("5, 5") is one value (RFC 9110 §8.6); anything else is refused.
    for (const part of value.split(',')) {
      const v = part.trim()
      if (!kDigits.test(v)) problem = `Content-Length ${JSON.stringify(value.slice(0, 40))} is not a number`
      else if (length !== null && v !== length) problem = 'the request has differing Content-Length values'
      else length = v
      if (problem !== null) return
    }
  })
  return problem
}

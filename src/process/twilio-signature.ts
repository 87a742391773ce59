/**
 * X-Twilio-Signature: base64 HMAC-SHA1(auth token, URL + each parameter
 * name immediately followed by its value, names in UTF-16 code unit order;
 * a repeated name contributes each distinct value, sorted). The URL is the
 * one Twilio called; like the official `validateRequest`, it is tried with
 * and without the scheme's default port.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { FormParams } from './form.js'

/** HMAC-SHA1 is 20 bytes: 28 base64 characters ending in one '='. */
const kSignatureShape = /^[A-Za-z0-9+/]{27}=$/

export function isTwilioSignatureShape (header: string): boolean {
  return kSignatureShape.test(header)
}

/**
 * The params ordered by name, stably (a repeated name keeps its values in order). A form's few
 * dozen fields are insertion-sorted, cheaper than Array.prototype.sort calling back into a
 * comparator; a larger form (its quadratic worst case would stall a worker) goes to the latter.
 */
function sortedByName (params: FormParams): Array<readonly [string, string]> {
  const sorted = params.slice()
  if (sorted.length > kInsertionSortMax) return sorted.sort(byName)
  for (let i = 1; i < sorted.length; i++) {
    const pair = sorted[i]!
    const name = pair[0]
    let j = i - 1
    while (j >= 0 && sorted[j]![0] > name) { sorted[j + 1] = sorted[j]!; j-- }
    sorted[j + 1] = pair
  }
  return sorted
}

const kInsertionSortMax = 64

function byName (a: readonly [string, string], b: readonly [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

/** The signed string after the URL: params grouped by name, sorted as JavaScript sorts strings (by UTF-16 code unit). */
export function twilioParamString (params: FormParams): string {
  const sorted = sortedByName(params)
  let out = ''
  for (let i = 0; i < sorted.length;) {
    const name = sorted[i]![0]
    let next = i + 1
    while (next < sorted.length && sorted[next]![0] === name) next++
    if (next === i + 1) {
      out += name + sorted[i]![1]
    } else {
      // A repeated name contributes each distinct value once, the values sorted.
      const distinct = [...new Set(sorted.slice(i, next).map((pair) => pair[1]))].sort()
      for (const value of distinct) out += name + value
    }
    i = next
  }
  return out
}

export function twilioSignature (token: string, url: string, paramString: string): string {
  return createHmac('sha1', token).update(url + paramString, 'utf8').digest('base64')
}

const kAuthority = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i

/** The URL without and with its scheme's default port (or as given, when it names another port). */
export function urlCandidates (url: string): readonly string[] {
  let candidates = candidatesOf.get(url)
  if (candidates === undefined) {
    // A channel's URL is the same for every request: worked out once. Bounded, as query strings may vary.
    if (candidatesOf.size >= kCandidatesKept) candidatesOf.clear()
    candidates = computeUrlCandidates(url)
    candidatesOf.set(url, candidates)
  }
  return candidates
}

const kCandidatesKept = 256
const candidatesOf = new Map<string, readonly string[]>()

function computeUrlCandidates (url: string): readonly string[] {
  const m = kAuthority.exec(url)
  if (m === null) return [url]
  const [prefix, scheme, authority] = m as unknown as [string, string, string]
  const portStart = authority.indexOf(':', authority.lastIndexOf(']') + 1)
  const rest = url.slice(prefix.length)
  const host = portStart < 0 ? authority : authority.slice(0, portStart)
  const port = portStart < 0 ? '' : authority.slice(portStart)
  const withoutPort = scheme + host + rest
  const withPort = port !== '' ? url : scheme + host + (scheme.toLowerCase() === 'https://' ? ':443' : ':80') + rest
  return withoutPort === withPort ? [url] : [withoutPort, withPort]
}

/**
 * Whether `header` is the signature of (url, params) under any token. Each
 * comparison is constant-time; the search stops at the first match, as the
 * official validateRequest does: how many tries a valid signature took says
 * which URL form or token signed it, nothing about any token.
 */
export function verifyTwilioSignature (tokens: readonly string[], header: string, url: string, params: FormParams): boolean {
  const candidate = Buffer.from(header, 'latin1')
  const paramString = twilioParamString(params)
  const urls = urlCandidates(url)
  for (const token of tokens) {
    for (const candidateUrl of urls) {
      const expected = Buffer.from(twilioSignature(token, candidateUrl, paramString), 'latin1')
      if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) return true
    }
  }
  return false
}

/** The URL Twilio called: publicUrl (else http:// + Host), then the path and the raw query. */
export function calledUrl (publicUrl: string | null | undefined, host: string, path: string, query: string): string {
  const base = publicUrl ?? `http://${host}`
  return query === '' ? base + path : `${base}${path}?${query}`
}

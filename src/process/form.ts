/**
 * application/x-www-form-urlencoded, decoded exactly as Twilio signs it:
 * `+` is a space, %XX is a byte, the bytes are UTF-8; empty fields count and
 * repeated names are kept in order. Unlike URLSearchParams, a broken escape
 * (`%G1`, a lone `%`) or bytes that are not UTF-8 are refused, not
 * replaced: a repaired value would no longer be what the sender signed.
 */
import { isUtf8 } from 'node:buffer'

export type FormParams = ReadonlyArray<readonly [name: string, value: string]>

export type FormResult = { readonly ok: true, readonly params: FormParams } | { readonly ok: false, readonly problem: string }

/** Per component: an escaped or unescaped byte may be any part of a UTF-8 sequence, so only the decoded bytes are checked. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Hex digit values, -1 for anything else. */
const kHex = new Int8Array(256).fill(-1)
for (let i = 0; i < 10; i++) kHex[0x30 + i] = i
for (let i = 0; i < 6; i++) { kHex[0x41 + i] = 10 + i; kHex[0x61 + i] = 10 + i }

/** Decoded bytes of the current body (never longer than the body); kept between calls up to this size. */
const kKeptScratch = 256 * 1024
let scratch = Buffer.allocUnsafe(16 * 1024)

/**
 * One pass over the bytes. A name or value with no escape, '+' or non-ASCII
 * byte (most of a form) is a slice of the body read as one string; the
 * others are unescaped into a scratch buffer and decoded there. Checking the
 * raw body as UTF-8 and each decoded component as UTF-8 refuses exactly what
 * decodeURIComponent over the decoded text would: a raw multi-byte
 * character is whole in both, and an escaped sequence cut by anything
 * unescaped is not UTF-8.
 */
export function parseForm (body: Uint8Array): FormResult {
  if (!isUtf8(body)) return { ok: false, problem: 'the form body is not valid UTF-8' }
  const params: Array<readonly [string, string]> = []
  const end = body.length
  const text = latin1Slice.call(body, 0, end) // one character per byte
  // A leading byte order mark is not part of the first name (as a UTF-8 text decoder reads it).
  let i = end >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0
  const out = end <= scratch.length ? scratch : Buffer.allocUnsafe(end)
  if (out !== scratch && end <= kKeptScratch) scratch = out
  while (i < end) {
    const pairStart = i
    let name = ''
    let start = i // of the current component in the body
    let o = 0 // its decoded length in `out`
    let high = 0 // a decoded byte >= 0x80: UTF-8 to decode
    let changed = false // an escape or '+': the decoded bytes differ from the body's
    let inName = true
    for (; i < end; i++) {
      const c = body[i]!
      if (c > 0x3d) { // neither a delimiter nor an escape: letters, most of a form
        out[o++] = c
        high |= c & 0x80
        continue
      }
      if (c === 0x26) break // '&'
      if (c === 0x3d && inName) { // the first '=' ends the name
        const decoded = high !== 0 ? decodeUtf8(out, o) : changed ? latin1Slice.call(out, 0, o) : text.slice(start, i)
        if (decoded === null) return brokenEscape(body, pairStart)
        name = decoded
        inName = false
        start = i + 1
        o = 0
        high = 0
        changed = false
        continue
      }
      if (c === 0x2b) { // '+'
        out[o++] = 0x20
        changed = true
        continue
      }
      if (c === 0x25) { // '%'
        const h = i + 2 < end ? (kHex[body[i + 1]!]! << 4) | kHex[body[i + 2]!]! : -1
        if (h < 0) return brokenEscape(body, pairStart)
        out[o++] = h
        high |= h & 0x80
        changed = true
        i += 2
        continue
      }
      out[o++] = c
    }
    if (i === pairStart) { i++; continue } // an empty pair ('&&') is no field
    const last = high !== 0 ? decodeUtf8(out, o) : changed ? latin1Slice.call(out, 0, o) : text.slice(start, i)
    if (last === null) return brokenEscape(body, pairStart)
    params.push(inName ? [last, ''] : [name, last])
    i++
  }
  return { ok: true, params }
}

/** Buffer's own latin1 slice (what toString('latin1') ends in, without its argument checks); of ASCII bytes, their text. */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (this: Uint8Array, start: number, end: number) => string }).latin1Slice

/** The decoded bytes as text, or null when they are not UTF-8. */
function decodeUtf8 (bytes: Buffer, length: number): string | null {
  try {
    return strictUtf8.decode(bytes.subarray(0, length))
  } catch {
    return null
  }
}

/** Names the field (its raw name, as sent) whose escapes are broken or not UTF-8. */
function brokenEscape (body: Uint8Array, pairStart: number): FormResult {
  let pairEnd = body.indexOf(0x26, pairStart)
  if (pairEnd < 0) pairEnd = body.length
  let nameEnd = body.indexOf(0x3d, pairStart)
  if (nameEnd < 0 || nameEnd > pairEnd) nameEnd = pairEnd
  const rawName = Buffer.from(body.buffer, body.byteOffset + pairStart, nameEnd - pairStart).toString('utf8')
  return { ok: false, problem: `invalid percent-encoding in the form field ${JSON.stringify(rawName.slice(0, 64))}` }
}

/** The first value of each name (Twilio sends each once; a repeated one keeps its first). */
export function firstValues (params: FormParams): Map<string, string> {
  const map = new Map<string, string>()
  for (const [name, value] of params) if (!map.has(name)) map.set(name, value)
  return map
}

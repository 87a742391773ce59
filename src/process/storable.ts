/**
 * PostgreSQL text and jsonb hold neither U+0000 nor (in UTF-8) a lone
 * surrogate; a provider's payload may contain either. Stored payloads keep
 * everything else and get U+FFFD in their place, so one odd character
 * never refuses a whole receipt batch.
 */
// In /u mode a surrogate pair is one code point, so this matches only NUL and lone surrogates.
const kUnstorable = /[\u0000\uD800-\uDFFF]/gu
const kMaxDepth = 64

export function storableText (text: string): string {
  return text.replace(kUnstorable, '\uFFFD')
}

/** A copy of a parsed JSON value with every string (keys included) storable; nesting past 64 levels becomes null. */
export function storableJson (value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return storableText(value)
  if (value === null || typeof value !== 'object') return value
  if (depth >= kMaxDepth) return null
  if (Array.isArray(value)) return value.map((item) => storableJson(item, depth + 1))
  const out: Record<string, unknown> = Object.create(null) // a '__proto__' key stays a plain key
  for (const [key, item] of Object.entries(value)) out[storableText(key)] = storableJson(item, depth + 1)
  return out
}

/**
 * application/x-www-form-urlencoded, decoded exactly as Twilio signs it:
 * `+` is a space, %XX is a byte, the bytes are UTF-8; empty fields count and
 * repeated names are kept in order. Unlike URLSearchParams, a broken escape
 * (`%G1`, a lone `%`) or bytes that are not UTF-8 are refused, not
 * replaced: a repaired value would no longer be what the sender signed.
 */
export type FormParams = ReadonlyArray<readonly [name: string, value: string]>

export type FormResult = { readonly ok: true, readonly params: FormParams } | { readonly ok: false, readonly problem: string }

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * One name or value. decodeURIComponent refuses exactly what this must: a
 * broken escape, and escaped bytes that are not whole UTF-8 sequences
 * (unescaped characters are already whole, the body having been decoded
 * strictly), and it runs natively rather than byte by byte.
 */
function decodeComponent (text: string): string | null {
  const plain = text.includes('+') ? text.replace(/\+/g, ' ') : text
  if (!plain.includes('%')) return plain
  try {
    return decodeURIComponent(plain)
  } catch {
    return null
  }
}

export function parseForm (body: Uint8Array): FormResult {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return { ok: false, problem: 'the form body is not valid UTF-8' }
  }
  const params: Array<readonly [string, string]> = []
  if (text === '') return { ok: true, params }
  for (const pair of text.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const rawName = eq < 0 ? pair : pair.slice(0, eq)
    const rawValue = eq < 0 ? '' : pair.slice(eq + 1)
    const name = decodeComponent(rawName)
    const value = decodeComponent(rawValue)
    if (name === null || value === null) {
      return { ok: false, problem: `invalid percent-encoding in the form field ${JSON.stringify(rawName.slice(0, 64))}` }
    }
    params.push([name, value])
  }
  return { ok: true, params }
}

/** The first value of each name (Twilio sends each once; a repeated one keeps its first). */
export function firstValues (params: FormParams): Map<string, string> {
  const map = new Map<string, string>()
  for (const [name, value] of params) if (!map.has(name)) map.set(name, value)
  return map
}

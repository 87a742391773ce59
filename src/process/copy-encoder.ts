import { stagingColumns, type StagingColumn } from '../staging-row.js'

// COPY text format: only backslash, the delimiter (tab) and line breaks must be
// escaped. Most values contain none of them, so test before replacing.
const kNeedsEscape = /[\\\t\n\r]/
const kEscapable = /[\\\t\n\r]/g
const kEscapes: Readonly<Record<string, string>> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' }
const kArrayElementEscapable = /["\\]/g

function escapeChar (ch: string): string {
  return kEscapes[ch] ?? ch
}

/** One COPY text field; null is `\N`. Throws on U+0000, which PostgreSQL text cannot hold (validate.ts rejects it first). */
export function encodeCopyText (value: string | null): string {
  if (value === null) return '\\N'
  if (value.includes('\u0000')) throw new RangeError('a COPY text field cannot contain NUL characters')
  return kNeedsEscape.test(value) ? value.replace(kEscapable, escapeChar) : value
}

/**
 * A PostgreSQL text[] literal (`{}` or `{"a","b"}`). Every element is quoted so
 * that commas, braces, blanks and the word NULL stay plain text. The result is
 * a value, still to be COPY-escaped like any other field.
 */
export function encodeTextArray (values: readonly string[]): string {
  if (values.length === 0) return '{}'
  return '{"' + values.map((v) => v.replace(kArrayElementEscapable, '\\$&')).join('","') + '"}'
}

/** Columns only some formats fill (an email's subject and files); absent means NULL. */
type OptionalColumn = 'subject' | 'files'

/** One staging line: columns in `stagingColumns` order, tab-separated, ending in '\n'. */
export function encodeStagingRow (fields: Readonly<Record<Exclude<StagingColumn, OptionalColumn>, string | null>> & Partial<Record<OptionalColumn, string | null>>): string {
  return stagingColumns.map((column) => encodeCopyText(fields[column] ?? null)).join('\t') + '\n'
}

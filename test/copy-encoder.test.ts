import t from 'tap'
import { encodeCopyText, encodeStagingRow, encodeTextArray } from '../src/process/copy-encoder.js'
import { stagingColumns, type StagingColumn } from '../src/staging-row.js'

/** PostgreSQL's reading of one COPY text field (the escapes the encoder emits, plus \N). */
function decodeCopyText (field: string): string | null {
  if (field === '\\N') return null
  const escapes: Record<string, string> = { t: '\t', n: '\n', r: '\r', '\\': '\\' }
  return field.replace(/\\(.)/gs, (_, ch: string) => escapes[ch] ?? ch)
}

/** PostgreSQL's reading of a text[] literal whose elements are all quoted, as the encoder writes them. */
function decodeTextArray (literal: string): string[] {
  if (literal === '{}') return []
  const values: string[] = []
  let i = 1
  while (i < literal.length - 1) {
    if (literal[i] !== '"') throw new Error(`expected a quote at ${i} in ${literal}`)
    let value = ''
    for (i++; literal[i] !== '"'; i++) {
      if (literal[i] === '\\') i++
      value += literal[i]
    }
    values.push(value)
    i += literal[i + 1] === ',' ? 2 : 1
  }
  return values
}

/** An ASCII-only test name: a raw U+2028 in a TAP line would split it. */
function label (text: string): string {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function decodeRow (line: string): string[] {
  if (!line.endsWith('\n')) throw new Error('a row ends with a newline')
  return line.slice(0, -1).split('\t')
}

const tricky = [
  '', 'plain', 'tab\there', 'line\nbreak', 'carriage\rreturn', 'crlf\r\n', 'back\\slash', '\\N', '\\.', '\\t literally',
  'quote "x"', 'comma,brace{}', 'NULL', ' padded ', '😀 𝄞 e\u0301 👨‍👩‍👧', '\u2028\u2029\u0085', '\u0001\u001f\u007f', '\\\\\t\\\n'
]

t.test('plain text is passed through unchanged', async (t) => {
  const text = 'hello, world — 😀 "quoted" {braces}'
  t.equal(encodeCopyText(text), text)
})

t.test('backslash, tab, newline and carriage return are escaped', async (t) => {
  t.equal(encodeCopyText('a\\b\tc\nd\re'), 'a\\\\b\\tc\\nd\\re')
})

t.test('null is \\N and the text \\N is not null', async (t) => {
  t.equal(encodeCopyText(null), '\\N')
  t.equal(encodeCopyText('\\N'), '\\\\N')
  t.equal(decodeCopyText(encodeCopyText('\\N')), '\\N')
})

t.test('an encoded field never contains a raw tab or line break', async (t) => {
  for (const text of tricky) t.notMatch(encodeCopyText(text), /[\t\n\r]/, label(text))
})

t.test('a NUL character cannot be encoded', async (t) => {
  t.throws(() => encodeCopyText('a\u0000b'), RangeError)
})

t.test('every tricky text round-trips through COPY escaping', async (t) => {
  for (const text of tricky) t.equal(decodeCopyText(encodeCopyText(text)), text, label(text))
})

t.test('an empty text array is {}', async (t) => {
  t.equal(encodeTextArray([]), '{}')
})

t.test('text array elements are quoted with quotes and backslashes escaped', async (t) => {
  t.equal(encodeTextArray(['a', 'b']), '{"a","b"}')
  t.equal(encodeTextArray(['say "hi"', 'c:\\dir']), '{"say \\"hi\\"","c:\\\\dir"}')
  t.equal(encodeTextArray(['NULL', '', ' x ']), '{"NULL",""," x "}')
})

t.test('a text array round-trips through array quoting and then COPY escaping', async (t) => {
  const copyField = encodeCopyText(encodeTextArray(tricky))
  t.notMatch(copyField, /[\t\n\r]/)
  t.same(decodeTextArray(decodeCopyText(copyField) ?? ''), tricky)
})

t.test('a staging row has the columns in stagingColumns order, tab-separated, ending in a newline', async (t) => {
  const fields = Object.fromEntries(stagingColumns.map((c) => [c, `<${c}>`])) as Record<StagingColumn, string>
  t.equal(encodeStagingRow(fields), stagingColumns.map((c) => `<${c}>`).join('\t') + '\n')
})

t.test('a staging row writes null columns as \\N', async (t) => {
  const fields = Object.fromEntries(stagingColumns.map((c) => [c, c === 'sent_at' ? null : 'v'])) as Record<StagingColumn, string | null>
  const columns = decodeRow(encodeStagingRow(fields))
  t.equal(columns[stagingColumns.indexOf('sent_at')], '\\N')
  t.equal(columns.filter((c) => c === 'v').length, stagingColumns.length - 1)
})

t.test('a staging row of tricky values round-trips', async (t) => {
  tricky.forEach((text, n) => {
    const fields = Object.fromEntries(stagingColumns.map((c, i) => [c, tricky[(n + i) % tricky.length] ?? null])) as Record<StagingColumn, string>
    fields.attachments = encodeTextArray(tricky.slice(n))
    const columns = decodeRow(encodeStagingRow(fields))
    t.equal(columns.length, stagingColumns.length, label(text))
    t.same(columns.map(decodeCopyText), stagingColumns.map((c) => fields[c]))
    t.same(decodeTextArray(decodeCopyText(columns[stagingColumns.indexOf('attachments')] ?? '') ?? ''), tricky.slice(n))
  })
})

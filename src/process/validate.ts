import { createHash } from 'node:crypto'
import { domainToASCII } from 'node:url'
import { Rejection, type FieldProblem } from '../errors.js'
import type { AddressKind, RawWebhook, Rejected } from './types.js'

/** A webhook that passed validation, in the form the staging row stores. */
export interface NormalizedMessage {
  readonly externalId: string
  readonly from: string
  readonly to: string
  readonly body: string
  readonly attachments: readonly string[]
  /** The payload's timestamp as `toISOString()`, or null when absent. */
  readonly sentAt: string | null
}

export type Validation = { readonly ok: true, readonly message: NormalizedMessage } | Rejected

/** Limits in characters (Unicode code points, as PostgreSQL counts them). */
export const limits = Object.freeze({ id: 255, email: 254, emailLocal: 64, body: 65536, url: 2048 })

const utf8 = new TextDecoder('utf-8', { fatal: true })
const kE164 = /^\+[1-9]\d{1,14}$/
// Deliberately narrower than RFC 5322: no blanks, controls, quotes or list/header punctuation.
const kEmail = /^[^\s\p{Cc}@<>()[\]\\,;:"]+@(?:[^\s\p{Cc}@<>()[\]\\,;:".]+\.)+[^\s\p{Cc}@<>()[\]\\,;:".]{2,}$/u
const kUrlShape = /^[a-z][a-z0-9+.-]*:\/\/[^\s\p{Cc}]+$/iu
const kUrlProtocols = new Set(['http:', 'https:', 's3:'])
const kDateTime = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/
// PostgreSQL timestamptz has no year 0 or 5-digit years; such a value would fail the whole COPY batch.
const kMinTime = Date.parse('0001-01-01T00:00:00Z')
const kMaxTime = Date.parse('9999-12-31T23:59:59.999Z')
// In /u mode a surrogate pair is one code point, so this matches only NUL and lone surrogates.
const kUnstorable = /[\u0000\uD800-\uDFFF]/u

function reject (kind: 'emptyBody' | 'invalidUtf8' | 'malformedJson' | 'notAnObject', message: string): Rejected {
  return { ok: false, status: Rejection[kind].status, code: Rejection[kind].code, message }
}

type Parsed = { readonly ok: true, readonly payload: Record<string, unknown> } | Rejected

function parse (body: Uint8Array): Parsed {
  if (body.length === 0) return reject('emptyBody', 'the request body is empty')
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return reject('invalidUtf8', 'the request body is not valid UTF-8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    if (err instanceof RangeError) return reject('malformedJson', 'malformed JSON: nested too deeply')
    // V8 appends a quote of the body ('"…" is not valid JSON'); keep only the where and why.
    const detail = err instanceof Error ? err.message.replace(/, ".*" is not valid JSON$/s, '') : ''
    return reject('malformedJson', detail === '' ? 'malformed JSON' : `malformed JSON: ${detail}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`
    return reject('notAnObject', `the body must be a JSON object, not ${kind}`)
  }
  return { ok: true, payload: value as Record<string, unknown> }
}

/** Own properties only: JSON.parse makes `__proto__` an own key, and inherited ones must never count. */
function read (obj: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(obj, name) ? obj[name] : undefined
}

function tooLong (value: string, max: number): boolean {
  if (value.length <= max) return false
  if (value.length > 2 * max) return true
  let codePoints = value.length // lone surrogates are already rejected, so each high surrogate starts a pair
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i)
    if (unit >= 0xd800 && unit <= 0xdbff) codePoints--
  }
  return codePoints > max
}

/** PostgreSQL text holds neither U+0000 nor (in UTF-8) a lone surrogate; reject rather than mangle. */
function unstorable (value: string): string | null {
  if (!kUnstorable.test(value)) return null
  return value.includes('\u0000') ? 'must not contain NUL characters' : 'must not contain unpaired surrogates'
}

function textProblem (value: string, max: number): string | null {
  return unstorable(value) ?? (tooLong(value, max) ? `must be at most ${max} characters` : null)
}

type Check<T> = { value: T } | { problem: string }

function checkId (raw: unknown): Check<string> {
  const value = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : raw
  // An unsafe integer was already rounded by JSON.parse: two ids could collide and one message be dropped as a duplicate.
  if (typeof value !== 'string' || value === '') return { problem: 'must be a non-empty string or a safe integer' }
  const problem = textProblem(value, limits.id)
  return problem === null ? { value } : { problem }
}

function checkAddress (raw: unknown, kind: AddressKind): Check<string> {
  if (raw === undefined || raw === null) return { problem: 'is required' }
  if (typeof raw !== 'string') return { problem: 'must be a string' }
  const problem = unstorable(raw)
  if (problem !== null) return { problem }
  const value = raw.trim()
  if (kind === 'phone') {
    return kE164.test(value) ? { value } : { problem: 'must be an E.164 phone number (+ then up to 15 digits)' }
  }
  // The shape is checked as sent and again as stored: IDNA silently drops tabs and maps dots.
  const email = kEmail.test(value) ? canonicalEmail(value) : ''
  const at = email.lastIndexOf('@')
  if (tooLong(email, limits.email) || at > limits.emailLocal || !kEmail.test(email)) {
    return { problem: `must be an email address (local@domain.tld, at most ${limits.email} characters)` }
  }
  return { value: email }
}

/**
 * One mailbox, one spelling, so one mailbox is one party: the local part
 * lower-cased in NFC (`jos\u00e9` and `jose\u0301` are the same name), the
 * domain in its ASCII (punycode) form, which is what DNS and SMTP use and
 * what `bücher.example` and `xn--bcher-kva.example` both become. A domain
 * IDNA refuses becomes '' and fails the shape check.
 */
function canonicalEmail (value: string): string {
  const at = value.lastIndexOf('@')
  if (at < 0) return value
  const local = value.slice(0, at).toLowerCase().normalize('NFC')
  return `${local}@${domainToASCII(value.slice(at + 1).normalize('NFC'))}`
}

function checkBody (raw: unknown): Check<string> {
  if (raw === undefined || raw === null) return { value: '' }
  if (typeof raw !== 'string') return { problem: 'must be a string' }
  const problem = textProblem(raw, limits.body)
  return problem === null ? { value: raw } : { problem }
}

/**
 * An attachment URL as stored: the sender's text with its scheme lower-cased
 * (schemes are case-insensitive, RFC 3986 §3.1, and schema.sql's
 * attachment_url_check accepts only the lower-case form), or the problem.
 */
function checkUrl (raw: unknown): Check<string> {
  if (typeof raw !== 'string') return { problem: 'must be a string' }
  const problem = textProblem(raw, limits.url)
  if (problem !== null) return { problem }
  const reason = { problem: 'must be an absolute http, https or s3 URL' }
  // The shape test refuses what `new URL` would silently repair (blanks, 'http:host' without //).
  if (!kUrlShape.test(raw)) return reason
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return reason
  }
  if (!kUrlProtocols.has(url.protocol) || url.host === '') return reason
  const colon = raw.indexOf(':')
  return { value: raw.slice(0, colon).toLowerCase() + raw.slice(colon) }
}

const kDaysInMonth = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function daysInMonth (year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  return month === 2 && leap ? 29 : kDaysInMonth[month] ?? 0
}

function checkTimestamp (raw: unknown): Check<string | null> {
  if (raw === undefined || raw === null) return { value: null }
  const problem = { problem: 'must be an ISO-8601 date-time with a timezone, e.g. 2026-11-29T10:00:00Z' }
  if (typeof raw !== 'string') return problem
  const m = kDateTime.exec(raw)
  if (m === null) return problem
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const offsetHour = Number(m[7] ?? 0)
  const offsetMinute = Number(m[8] ?? 0)
  // Date.parse rolls 2026-02-30 over to March; the calendar has to be checked by hand.
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 ||
      second > 59 || offsetHour > 23 || offsetMinute > 59) return problem
  const ms = Date.parse(raw)
  if (Number.isNaN(ms) || ms < kMinTime || ms > kMaxTime) return problem
  return { value: new Date(ms).toISOString() }
}

function collect<T> (problems: FieldProblem[], field: string, check: Check<T>): T | undefined {
  if ('problem' in check) {
    problems.push({ field, reason: check.problem })
    return undefined
  }
  return check.value
}

function checkAttachments (raw: unknown, max: number, problems: FieldProblem[]): string[] {
  if (raw === undefined || raw === null) return []
  if (!Array.isArray(raw)) {
    problems.push({ field: 'attachments', reason: 'must be an array of URLs' })
    return []
  }
  // Over the limit, per-element reasons would only bloat the answer: the count is what to fix.
  if (raw.length > max) {
    problems.push({ field: 'attachments', reason: `must have at most ${max} entries` })
    return []
  }
  return raw.map((url: unknown, i) => collect(problems, `attachments[${i}]`, checkUrl(url)) ?? '')
}

/**
 * The sender's id: `id`, else the seed's `xillio_id` (a `null` id counts as
 * absent), else the webhook-id header, else the body's SHA-256. A JSON number
 * is its value, so 1500, 1.5e3 and 1500.0 are the id "1500", the same
 * message as the string "1500" (docs/proxies.md, "Message ids").
 */
function externalIdOf (raw: RawWebhook, payload: Record<string, unknown>, problems: FieldProblem[]): string | undefined {
  const primary = read(payload, 'id')
  const idField = primary === undefined || primary === null ? 'xillio_id' : 'id'
  const id = read(payload, idField)
  if (id !== undefined && id !== null) return collect(problems, idField, checkId(id))
  if (raw.webhookId !== '') {
    const problem = textProblem(raw.webhookId, limits.id)
    if (problem === null) return raw.webhookId
    problems.push({ field: 'webhook-id', reason: problem })
    return undefined
  }
  return createHash('sha256').update(raw.body).digest('hex')
}

/** Parses and validates one authenticated webhook; every field problem is reported at once. */
export function validateWebhook (raw: RawWebhook): Validation {
  const parsed = parse(raw.body)
  if (!parsed.ok) return parsed
  return validatePayload(raw, parsed.payload)
}

/**
 * Validates a payload of Hermes' fields (id, from, to, body, attachments, timestamp);
 * the provider-native formats map their own fields onto these first.
 */
export function validatePayload (raw: RawWebhook, payload: Record<string, unknown>): Validation {
  const problems: FieldProblem[] = []
  const { addressKind, maxAttachments } = raw.channel
  const externalId = externalIdOf(raw, payload, problems)
  const from = collect(problems, 'from', checkAddress(read(payload, 'from'), addressKind))
  const to = collect(problems, 'to', checkAddress(read(payload, 'to'), addressKind))
  if (from !== undefined && from === to) problems.push({ field: 'to', reason: 'must differ from from' })
  const body = collect(problems, 'body', checkBody(read(payload, 'body')))
  const attachments = checkAttachments(read(payload, 'attachments'), maxAttachments, problems)
  const sentAt = collect(problems, 'timestamp', checkTimestamp(read(payload, 'timestamp')))

  if (problems.length > 0 || externalId === undefined || from === undefined || to === undefined ||
      body === undefined || sentAt === undefined) {
    const names = problems.map((p) => p.field).join(', ')
    const count = `${problems.length} invalid field${problems.length === 1 ? '' : 's'}`
    return { ok: false, ...Rejection.invalidFields, message: `${count}: ${names}`, fields: problems }
  }
  return { ok: true, message: { externalId, from, to, body, attachments, sentAt } }
}

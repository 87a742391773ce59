/**
 * SendGrid Inbound Parse (channel format "sendgrid-parse"): a multipart
 * form in SendGrid's default shape (headers, from, to, subject, text,
 * envelope, attachment-info and file parts attachment1…N) or its raw shape
 * (`email` = the whole MIME message, parsed with postal-mime). Mapped onto
 * Hermes' fields as design.md says; attached files keep their bytes.
 */
import { createHash } from 'node:crypto'
import PostalMime, { addressParser } from 'postal-mime'
import type { FieldProblem } from '../errors.js'
import type { NativeMeta } from '../native-meta.js'
import { basicAuthValid } from './basic-auth.js'
import { encodeMessageRow, type AttachedFile } from './message-row.js'
import { parseMultipart, type Part } from './multipart.js'
import { invalidFields, mediaTypeOf, refuse } from './native-reject.js'
import { verifySendgridRequest } from './sendgrid-signature.js'
import { storableText } from './storable.js'
import type { RawWebhook, Rejected, Verdict } from './types.js'
import { limits, validatePayload } from './validate.js'

/** What both shapes yield before validation. */
interface Email {
  readonly messageId: string | null
  readonly from: string | null
  readonly to: string | null
  readonly subject: string | null
  readonly text: string
  readonly date: string | null
  readonly files: AttachedFile[]
}

/** Authenticates by every mechanism the channel configures (basic auth and/or SendGrid's signature). */
function authenticate (raw: RawWebhook, meta: NativeMeta): Rejected | null {
  const basic = raw.channel.basicAuth ?? []
  const keys = raw.channel.publicKeys ?? []
  if (basic.length > 0) {
    if (meta.authorization.trim() === '') return refuse('invalidCredentials', 'Authorization: Basic credentials are required (put user:password@ in the Inbound Parse URL)')
    if (!basicAuthValid(basic, meta.authorization)) return refuse('invalidCredentials', 'Authorization: Basic credentials do not match any configured user:password')
  }
  if (keys.length > 0) return verifySendgridRequest(keys, meta, raw.body)
  return basic.length > 0 ? null : refuse('missingSignature', 'this channel has no credentials configured')
}

function fileOf (filename: string | null, contentType: string, bytes: Buffer): AttachedFile {
  return { filename: filename === null ? null : storableText(filename), contentType: contentType === '' ? 'application/octet-stream' : storableText(contentType), size: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex'), data: bytes }
}

function decode (bytes: Buffer, charset: string | undefined): string {
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(bytes)
  } catch {
    return new TextDecoder('utf-8').decode(bytes) // an unknown charset label: UTF-8, with replacement characters
  }
}

function jsonObject (text: string | undefined): Record<string, unknown> | null {
  if (text === undefined) return null
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null
  } catch {
    return null
  }
}

/** The first mailbox address in an address list ("Alice <a@x>, b@y"), or null. */
function firstAddress (text: string | null | undefined): string | null {
  if (text === undefined || text === null || text.trim() === '') return null
  for (const entry of addressParser(text, { flatten: true })) {
    if (entry.address !== undefined && entry.address !== '') return entry.address
  }
  return null
}

/** A header's value from a raw header block (folded lines joined), or null. */
function headerOf (block: string, name: string): string | null {
  const unfolded = block.replace(/\r?\n[ \t]+/g, ' ')
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(unfolded)
  return m === null ? null : m[1]!.trim()
}

function envelopeOf (text: string | undefined): { from: string | null, to: string | null } {
  const envelope = jsonObject(text)
  const from = typeof envelope?.['from'] === 'string' ? envelope['from'] : null
  const list = envelope?.['to']
  const to = Array.isArray(list) && typeof list[0] === 'string' ? list[0] : typeof list === 'string' ? list : null
  return { from, to }
}

function fromDefaultForm (fields: Map<string, Part>, files: Part[]): Email {
  const charsets = jsonObject(fields.get('charsets')?.bytes.toString('latin1')) ?? {}
  const text = (name: string): string | undefined => {
    const part = fields.get(name)
    const charset = charsets[name]
    return part === undefined ? undefined : decode(part.bytes, typeof charset === 'string' ? charset : undefined)
  }
  const headers = text('headers') ?? ''
  const envelope = envelopeOf(text('envelope'))
  const info = jsonObject(text('attachment-info')) ?? {}
  return {
    messageId: headerOf(headers, 'Message-ID'),
    from: envelope.from ?? firstAddress(text('from')),
    to: envelope.to ?? firstAddress(text('to')),
    subject: text('subject') ?? null,
    text: text('text') ?? '',
    date: headerOf(headers, 'Date'),
    files: files.map((part) => {
      const described = info[part.name] as Record<string, unknown> | undefined
      const filename = typeof described?.['filename'] === 'string' ? described['filename'] : part.filename
      const type = typeof described?.['type'] === 'string' ? described['type'] : part.contentType
      return fileOf(filename, type, part.bytes)
    })
  }
}

async function fromRawForm (fields: Map<string, Part>, email: Buffer): Promise<Email | Rejected> {
  let parsed: Awaited<ReturnType<typeof PostalMime.parse>>
  try {
    parsed = await PostalMime.parse(email, { attachmentEncoding: 'arraybuffer' })
  } catch (error) {
    return refuse('malformedMime', `the email field is not a readable MIME message: ${error instanceof Error ? error.message : String(error)}`)
  }
  const envelope = envelopeOf(fields.get('envelope')?.bytes.toString('utf8'))
  const mailbox = (address: typeof parsed.from): string | null => address?.address ?? address?.group?.[0]?.address ?? null
  return {
    messageId: parsed.messageId ?? null,
    from: envelope.from ?? mailbox(parsed.from),
    to: envelope.to ?? mailbox(parsed.to?.[0]),
    subject: parsed.subject ?? null,
    text: parsed.text ?? '',
    date: parsed.date ?? null,
    files: parsed.attachments.map((a) => {
      const bytes = typeof a.content === 'string' ? Buffer.from(a.content, 'utf8') : Buffer.from(a.content instanceof Uint8Array ? a.content : new Uint8Array(a.content))
      return fileOf(a.filename, a.mimeType, bytes)
    })
  }
}

export async function processSendgridParse (raw: RawWebhook, meta: NativeMeta): Promise<Verdict> {
  const unauthenticated = authenticate(raw, meta)
  if (unauthenticated !== null) return unauthenticated
  const type = mediaTypeOf(meta.contentType)
  if (type !== 'multipart/form-data') return refuse('unsupportedMediaType', `SendGrid Inbound Parse posts multipart/form-data, not ${JSON.stringify(type.slice(0, 100) || '(none)')}`)
  if (!/;\s*boundary=/i.test(meta.contentType)) return refuse('malformedMultipart', 'malformed multipart body: the Content-Type has no boundary')
  const multipart = await parseMultipart(meta.contentType, raw.body)
  if (!multipart.ok) return refuse('malformedMultipart', multipart.problem)
  const fields = new Map<string, Part>()
  const files: Part[] = []
  for (const part of multipart.parts) {
    if (part.filename !== null && part.name !== 'email') files.push(part)
    else if (!fields.has(part.name)) fields.set(part.name, part)
  }
  const rawEmail = fields.get('email') ?? multipart.parts.find((p) => p.name === 'email')
  const email = rawEmail === undefined ? fromDefaultForm(fields, files) : await fromRawForm(fields, rawEmail.bytes)
  if ('ok' in email) return email
  return mapEmail(raw, email)
}

function mapEmail (raw: RawWebhook, email: Email): Verdict {
  const problems: FieldProblem[] = []
  const messageId = email.messageId?.replace(/^<|>$/g, '').trim() ?? ''
  const date = email.date === null ? Number.NaN : Date.parse(email.date)
  // A text over the body limit is kept whole as a file; the body holds its beginning.
  let text = email.text
  const files = [...email.files]
  if (text.length > limits.body) {
    files.push(fileOf('body.txt', 'text/plain; charset=utf-8', Buffer.from(text, 'utf8')))
    text = text.slice(0, limits.body - 1).replace(/[\uD800-\uDBFF]$/, '') // never half a surrogate pair
  }
  const validation = validatePayload(raw, {
    id: messageId === '' || messageId.length > limits.id ? createHash('sha256').update(raw.body).digest('hex') : messageId,
    from: email.from ?? undefined,
    to: email.to ?? undefined,
    body: text,
    timestamp: new Date(Number.isNaN(date) ? raw.receivedAtMs : date).toISOString()
  })
  if (!validation.ok) {
    for (const problem of validation.fields ?? []) problems.push(problem.field === 'id' ? { ...problem, field: 'Message-ID' } : problem)
    return invalidFields(problems)
  }
  const subject = email.subject === null ? null : storableText(email.subject)
  return { ok: true, externalId: validation.message.externalId, row: encodeMessageRow(raw, validation.message, subject, files) }
}

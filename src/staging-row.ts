/**
 * The row format shared by the process stage (which encodes it) and the
 * writer (which COPYs it into the staging table). One COPY text line per
 * accepted webhook, columns in exactly this order, tab-separated, `\N` for
 * NULL, backslash escapes as in PostgreSQL's COPY text format.
 */
export const stagingColumns = [
  'channel', // channel name, e.g. "sms"
  'external_id', // the sender's id (or webhook-id header, or sha256 of the body)
  'address_kind', // 'phone' | 'email'
  'from_address', // E.164 or lower-cased email
  'to_address',
  'body', // message text ('' when absent)
  'sent_at', // the payload's timestamp, ISO-8601, or \N
  'received_at', // when the front end read the request, ISO-8601
  'attachments', // PostgreSQL text[] literal, '{}' when none
  'subject', // an email's subject (sendgrid-parse), or \N
  'files' // attached files (sendgrid-parse) as JSON [{filename, type, size, sha256 (hex), data (base64)}], or \N
] as const

export type StagingColumn = typeof stagingColumns[number]

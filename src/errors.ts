/**
 * Every error Hermes reports has a stable `code` (HERMES_ERR_*) that logs,
 * JSON error bodies and tests rely on; codes never change meaning. Errors that
 * map to an HTTP answer carry that `status`.
 */
export interface FieldProblem {
  field: string
  reason: string
}

export class HermesError extends Error {
  readonly code: string
  readonly status: number

  constructor (code: string, message: string, status = 500, options?: ErrorOptions) {
    super(message, options)
    this.name = 'HermesError'
    this.code = code
    this.status = status
  }
}

/** A configuration that cannot run; the message names every bad field. */
export class ConfigError extends HermesError {
  readonly problems: readonly string[]
  constructor (problems: readonly string[]) {
    super('HERMES_ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** The uWebSockets.js native binding did not load (the package's slow JS fallback is refused). */
export class NativeBindingError extends HermesError {
  constructor (detail: string) {
    super('HERMES_ERR_UWS_NATIVE', `uWebSockets.js native binding is not in use (${detail}); refusing to start on the slow fallback`)
    this.name = 'NativeBindingError'
  }
}

export class DatabaseError extends HermesError {
  constructor (message: string, options?: ErrorOptions) {
    super('HERMES_ERR_DATABASE', message, 503, options)
    this.name = 'DatabaseError'
  }
}

/** The server is one Hermes cannot run on: too old, or reached through a pooler that shares sessions between clients. */
export class DatabaseServerError extends HermesError {
  constructor (code: 'HERMES_ERR_DATABASE_VERSION' | 'HERMES_ERR_DATABASE_POOLING', message: string) {
    super(code, message)
    this.name = 'DatabaseServerError'
  }
}

/**
 * The HTTP-facing error codes, in one place. The status is part of the
 * public contract (design.md); the code is what clients can branch on.
 */
export const Rejection = {
  unknownChannel: { status: 404, code: 'HERMES_ERR_UNKNOWN_CHANNEL' },
  methodNotAllowed: { status: 405, code: 'HERMES_ERR_METHOD_NOT_ALLOWED' },
  notFound: { status: 404, code: 'HERMES_ERR_NOT_FOUND' },
  bodyTooLarge: { status: 413, code: 'HERMES_ERR_BODY_TOO_LARGE' },
  emptyBody: { status: 400, code: 'HERMES_ERR_EMPTY_BODY' },
  /** Content-Length headers that disagree or are not a number: the request's end is ambiguous (RFC 9112 §6.3). */
  ambiguousLength: { status: 400, code: 'HERMES_ERR_AMBIGUOUS_LENGTH' },
  invalidUtf8: { status: 400, code: 'HERMES_ERR_INVALID_UTF8' },
  malformedJson: { status: 400, code: 'HERMES_ERR_MALFORMED_JSON' },
  notAnObject: { status: 400, code: 'HERMES_ERR_NOT_AN_OBJECT' },
  invalidFields: { status: 422, code: 'HERMES_ERR_INVALID_FIELDS' },
  missingSignature: { status: 401, code: 'HERMES_ERR_SIGNATURE_MISSING' },
  invalidSignature: { status: 401, code: 'HERMES_ERR_SIGNATURE_INVALID' },
  staleTimestamp: { status: 401, code: 'HERMES_ERR_TIMESTAMP_STALE' },
  bufferFull: { status: 503, code: 'HERMES_ERR_BUFFER_FULL' },
  databaseUnavailable: { status: 503, code: 'HERMES_ERR_DATABASE_UNAVAILABLE' },
  draining: { status: 503, code: 'HERMES_ERR_DRAINING' },
  ackTimeout: { status: 503, code: 'HERMES_ERR_ACK_TIMEOUT' },
  /** GET /readyz while the database, a stage thread or the workers are down, or while draining. */
  notReady: { status: 503, code: 'HERMES_ERR_NOT_READY' },
  /** The writer or dispatch thread died: the process is about to exit for its supervisor to restart it. */
  threadLost: { status: 503, code: 'HERMES_ERR_THREAD_LOST' },
  /** PostgreSQL refused the row; the answer says so without naming schema internals (the log has the detail). */
  storeRefused: { status: 500, code: 'HERMES_ERR_STORE_REFUSED' },
  internal: { status: 500, code: 'HERMES_ERR_INTERNAL' },
  // Provider-native formats and delivery receipts (design.md, "Provider-native webhooks", "Delivery receipts").
  unknownProvider: { status: 404, code: 'HERMES_ERR_UNKNOWN_PROVIDER' },
  headersTooLarge: { status: 400, code: 'HERMES_ERR_HEADERS_TOO_LARGE' },
  malformedSignature: { status: 401, code: 'HERMES_ERR_SIGNATURE_MALFORMED' },
  invalidCredentials: { status: 401, code: 'HERMES_ERR_BASIC_AUTH_INVALID' },
  unsupportedMediaType: { status: 415, code: 'HERMES_ERR_UNSUPPORTED_MEDIA_TYPE' },
  malformedForm: { status: 400, code: 'HERMES_ERR_MALFORMED_FORM' },
  malformedMultipart: { status: 400, code: 'HERMES_ERR_MALFORMED_MULTIPART' },
  malformedMime: { status: 400, code: 'HERMES_ERR_MALFORMED_MIME' },
  notAnArray: { status: 400, code: 'HERMES_ERR_NOT_AN_ARRAY' },
  batchTooLarge: { status: 413, code: 'HERMES_ERR_BATCH_TOO_LARGE' }
} as const

export type RejectionKind = keyof typeof Rejection

/** A SIGHUP reload that cannot be applied; the running configuration stays. The message names every reason. */
export class ReloadRefusedError extends HermesError {
  readonly problems: readonly string[]
  constructor (problems: readonly string[]) {
    super('HERMES_ERR_RELOAD', `configuration not reloaded:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ReloadRefusedError'
    this.problems = problems
  }
}

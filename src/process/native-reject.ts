import { Rejection, type FieldProblem, type RejectionKind } from '../errors.js'
import type { Rejected } from './types.js'

/** A refusal with its stable code and HTTP status (errors.ts). */
export function refuse (kind: RejectionKind, message: string, fields?: FieldProblem[]): Rejected {
  const { status, code } = Rejection[kind]
  return fields === undefined ? { ok: false, status, code, message } : { ok: false, status, code, message, fields }
}

/** 422 listing each field and why, as Hermes' own format answers. */
export function invalidFields (problems: FieldProblem[]): Rejected {
  const names = problems.map((p) => p.field).join(', ')
  return refuse('invalidFields', `${problems.length} invalid field${problems.length === 1 ? '' : 's'}: ${names}`, problems)
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaTypeOf (contentType: string): string {
  return contentType.split(';', 1)[0]!.trim().toLowerCase()
}

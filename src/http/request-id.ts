import { randomUUID } from 'node:crypto'

// Echo only ids that cannot inject anything into headers or logs.
const safeRequestId = /^[A-Za-z0-9._:-]{1,128}$/

/** The client's x-request-id when it is safe to echo, else a fresh UUID. */
export function requestIdFrom (header: string): string {
  return safeRequestId.test(header) ? header : randomUUID()
}

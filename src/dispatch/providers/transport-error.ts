/**
 * Why a request produced no complete answer. In a module of its own, so that
 * classifying a failure (classify.ts, the dispatcher) does not load undici.
 */
export class TransportError extends Error {
  readonly kind: 'timeout' | 'network' | 'truncated'
  /** Set when a status line arrived before the failure. */
  readonly status: number | undefined
  constructor (kind: TransportError['kind'], message: string, status?: number) {
    super(message)
    this.name = 'TransportError'
    this.kind = kind
    this.status = status
  }
}

/**
 * Every message that crosses a thread boundary, typed in one place.
 * Row data travels as transferred ArrayBuffers (COPY text bytes), never as
 * per-message objects.
 */
import type { FieldProblem } from './errors.js'
import type { MetricsData } from './metrics/thread-metrics.js'
import type { ChannelRule, ProviderRule } from './process/types.js'
import type { PreclaimData } from './preclaim-credit.js'

/** Piscina task: process `count` ring records starting at `offset`. */
export interface ProcessTask {
  readonly offset: number
  readonly count: number
  /** The bodies of the range's out-of-band records, in record order (ring-layout.ts, kFlagOutOfBand). */
  readonly bodies?: readonly SharedArrayBuffer[]
}

export interface RecordRejection {
  readonly slot: number
  readonly channel: string
  readonly status: number
  readonly code: string
  readonly message: string
  readonly fields?: FieldProblem[]
}

/**
 * Piscina task result. `rows` holds one COPY text line per accepted slot, in order;
 * `receiptRows` one line per accepted delivery-receipt request (src/store/receipt-sql.ts).
 */
export interface ProcessResult {
  readonly acceptedSlots: Uint32Array
  readonly rows: Uint8Array
  readonly receiptSlots: Uint32Array
  readonly receiptRows: Uint8Array
  readonly rejected: RecordRejection[]
  /** Records by inbound format (src/metrics/definitions.ts, inboundFormats): [accepted, rejected]. */
  readonly formats: Readonly<Record<string, readonly [number, number]>>
  readonly elapsedMs: number
}

/** What a writer batch holds: messages (the staging table) or delivery receipts (the receipt staging table). */
export type BatchKind = 'messages' | 'receipts'

/** main → writer */
export type ToWriter =
  | { readonly type: 'batch', readonly slots: Uint32Array, readonly rows: Uint8Array, readonly kind?: BatchKind }
  | { readonly type: 'stop' }

/** writer → main */
export type FromWriter =
  | { readonly type: 'ready' }
  | { readonly type: 'committed', readonly slots: Uint32Array, readonly inserted: number, readonly claimed: number, readonly elapsedMs: number }
  | Preclaimed
  | { readonly type: 'rejected', readonly slots: Uint32Array, readonly code: string, readonly message: string }
  | { readonly type: 'database', readonly up: boolean, readonly error?: string }
  | { readonly type: 'stopped' }
  | { readonly type: 'fatal', readonly code: string, readonly message: string }

/**
 * writer → main → dispatch, after every transaction that took pre-claim
 * credit (src/preclaim-credit.ts), committed or not: the credit it took per
 * provider slot, and the messages it inserted claimed (JSON text from
 * PostgreSQL, parsed by the dispatch thread; null when none).
 */
export interface Preclaimed {
  readonly type: 'preclaimed'
  readonly taken: ReadonlyArray<readonly [slot: number, count: number]>
  readonly rows: string | null
  /** Date.now() before the transaction began: the leases count from later than this. */
  readonly startedAtMs: number
}

/** workerData of the writer thread */
export interface WriterData {
  readonly databaseUrl: string
  readonly status: Int32Array
  readonly maxBatchRows: number
  readonly maxBatchDelayMs: number
  /** Absent: the writer never pre-claims. */
  readonly preclaim?: PreclaimData
  readonly logLevel: string
  /** Nice increment of this thread (src/thread-priority.ts). */
  readonly backgroundNice: number
  readonly metrics?: MetricsData
}

/** workerData of the Piscina process workers */
export interface ProcessWorkerData {
  readonly ring: SharedArrayBuffer
  readonly rules: ChannelRule[]
  /** Providers taking delivery receipts, in the order callback records name them. */
  readonly providers?: ProviderRule[]
  /** Top-level publicUrl (Twilio signs the URL it called), or null. */
  readonly publicUrl?: string | null
  readonly toleranceSeconds: number
  /** Nice increment of each worker thread (src/thread-priority.ts). */
  readonly backgroundNice: number
  readonly metrics?: MetricsData
  /** Hands each worker thread its index (for per-thread metrics labels). */
  readonly workerSeq: Int32Array
}

/**
 * Every message that crosses a thread boundary, typed in one place.
 * Row data travels as transferred ArrayBuffers (COPY text bytes), never as
 * per-message objects.
 */
import type { ChannelConfig, ProviderConfig, RateLimit } from './config.js'
import type { FieldProblem } from './errors.js'
import type { MetricsData } from './metrics/thread-metrics.js'
import type { PreclaimData } from './preclaim-credit.js'

/** Piscina task: process `count` ring records starting at `offset`, verified with the channel rules of `generation` (src/process/rules-board.ts). */
export interface ProcessTask {
  readonly offset: number
  readonly count: number
  readonly generation: number
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
  | { readonly type: 'fatal', readonly code: string, readonly message: string }

/**
 * writer → main → dispatch, after every transaction that took pre-claim
 * credit (src/preclaim-credit.ts, CreditLedger), committed or not: the
 * credit it took per provider slot, and the messages it inserted claimed
 * (JSON text from PostgreSQL: an array of PreclaimedRow, parsed by the
 * dispatch thread; null when none).
 */
export interface Preclaimed {
  readonly type: 'preclaimed'
  readonly taken: ReadonlyArray<readonly [slot: number, count: number]>
  readonly rows: string | null
  /** Date.now() before the transaction began: the leases count from later than this. */
  readonly startedAtMs: number
}

/**
 * One pre-claimed message as the writer's merge returns it
 * (src/store/merge-sql.ts, insertMessages, json_build_object): the same
 * names as a claim's row (src/dispatch/dispatch-sql.ts, ClaimedRow), with
 * timestamps as JSON text.
 */
export interface PreclaimedRow {
  readonly id: string
  readonly channel_id: number
  readonly external_id: string
  readonly sender: string
  readonly recipient: string
  readonly body: string
  readonly sent_at: string | null
  readonly received_at: string
  readonly attachments: string[]
  /** The claim's fencing token (claimed_until as text). */
  readonly lease: string
}

/** The limits of one provider that can change while Hermes runs (Dispatcher.updateProviderLimits). */
export interface ProviderLimits {
  readonly rateLimit: RateLimit
  readonly concurrency: number
}

/** workerData of the dispatch thread */
export interface DispatchData {
  readonly databaseUrl: string
  readonly providers: readonly ProviderConfig[]
  readonly channels: readonly ChannelConfig[]
  readonly logLevel: string
  /** Nice increment of the dispatch thread (src/thread-priority.ts); none when absent. */
  readonly nice?: number
  /**
   * Nice increment of the server processes of the dispatch sessions
   * (src/thread-priority.ts, lowerBackendPriority): only for a server in
   * this machine's pid namespace (the embedded one Hermes started). 0 or
   * absent: they keep the server's priority.
   */
  readonly backendNice?: number
  /** Optional tuning; defaults in src/dispatch/dispatcher.ts (kDefaultTuning). */
  readonly pollMs?: number
  readonly leaseMs?: number
  readonly stopTimeoutMs?: number
  /** Pre-claim credit shared with the writer (src/preclaim-credit.ts); absent: no pre-claims. */
  readonly preclaimCredit?: SharedArrayBuffer
  /** Fleet coordination (src/fleet/coordinator.ts); absent: this instance uses the configured limits as they are. */
  readonly fleet?: { readonly heartbeatMs: number; readonly deadAfterMs: number; readonly pauseMs: number; readonly maxPauseMs: number }
  /** Retention sweeps (src/fleet/retention.ts); absent or days null: messages are kept forever. */
  readonly retention?: { readonly days: number | null; readonly intervalMs: number; readonly firstSweepMs: number; readonly batchRows: number }
  /** The shared metrics block (absent in tests that run the thread alone). */
  readonly metrics?: MetricsData
}

/**
 * main → dispatch: `wake` after a commit that inserted rows it did not
 * pre-claim; the writer's pre-claim reports; `limits` to change a
 * provider's rate limit and concurrency without a restart
 * (Dispatcher.updateProviderLimits); `reload` with a reloaded configuration's
 * providers (SIGHUP: credentials, limits); `stop` to drain and exit.
 */
export type ToDispatch =
  | { readonly type: 'wake' }
  | Preclaimed
  | { readonly type: 'limits', readonly provider: string, readonly limits: ProviderLimits }
  | { readonly type: 'reload', readonly providers: readonly ProviderConfig[] }
  | { readonly type: 'stop' }

/** dispatch → main. `limits` answers a `limits` message: applied, or why not (HERMES_ERR_* code). */
export type FromDispatch =
  | { readonly type: 'ready' }
  | { readonly type: 'limits', readonly provider: string, readonly ok: true }
  | { readonly type: 'limits', readonly provider: string, readonly ok: false, readonly code: string, readonly message: string }
  | { readonly type: 'stopped' }
  | { readonly type: 'fatal'; readonly code: string; readonly message: string }

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
  /** What the workers verify with (channel rules, receipt providers, publicUrl) by generation (src/process/rules-board.ts): a reload publishes a new one. */
  readonly rulesBoard: SharedArrayBuffer
  readonly toleranceSeconds: number
  /** Nice increment of each worker thread (src/thread-priority.ts). */
  readonly backgroundNice: number
  readonly metrics?: MetricsData
  /** Hands each worker thread its index (for per-thread metrics labels). */
  readonly workerSeq: Int32Array
}

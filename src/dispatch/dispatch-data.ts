/**
 * The dispatch thread's workerData and the messages that cross its
 * boundary, typed in one place.
 */
import type { ChannelConfig, ProviderConfig } from '../config.js'
import type { MetricsData } from '../metrics/thread-metrics.js'
import type { Preclaimed } from '../messages.js'

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
  /** Optional tuning; defaults in dispatcher.ts (kDefaultTuning). */
  readonly pollMs?: number
  readonly leaseMs?: number
  readonly stopTimeoutMs?: number
  /** Pre-claim credit shared with the writer (src/preclaim-credit.ts); absent: no pre-claims. */
  readonly preclaimCredit?: SharedArrayBuffer
  /** Fleet coordination (src/fleet/coordinator.ts); absent: this instance uses the configured limits as they are. */
  readonly fleet?: { readonly heartbeatMs: number; readonly deadAfterMs: number; readonly pauseMs: number }
  /** Retention sweeps (src/fleet/retention.ts); absent or days null: messages are kept forever. */
  readonly retention?: { readonly days: number | null; readonly intervalMs: number; readonly firstSweepMs: number; readonly batchRows: number }
  /** The shared metrics block (absent in tests that run the thread alone). */
  readonly metrics?: MetricsData
}

/** main → dispatch: `wake` after a commit that inserted rows it did not pre-claim; the writer's pre-claim reports; `stop` to drain and exit. */
export type ToDispatch =
  | { readonly type: 'wake' }
  | Preclaimed
  | { readonly type: 'stop' }

/** dispatch → main */
export type FromDispatch =
  | { readonly type: 'ready' }
  | { readonly type: 'stopped' }
  | { readonly type: 'fatal'; readonly code: string; readonly message: string }

/**
 * Default values and hard limits for the configuration, kept apart from the
 * validation in config.ts so the numbers an operator asks about are in one
 * short file.
 */
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

/** The secret of the no-config development default; anyone can forge webhooks with it. */
export const DEVELOPMENT_SECRET = 'hermes-development-secret'

export const ackModes = ['durable', 'enqueued'] as const
export const channelTypes = ['sms', 'mms', 'email'] as const
export const providerKinds = ['twilio', 'sendgrid', 'http', 'mock'] as const
export const channelFormats = ['hermes', 'twilio', 'sendgrid-parse'] as const
/** pino's built-in levels plus 'silent'. */
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Node.js timers overflow past 2^31-1 ms and then fire at once, so no duration may exceed it. */
export const kMaxTimerMs = 2_147_483_647
export const kMinBodyBytes = 1024
export const kMaxBodyBytes = 16 * 1024 * 1024
/** A channel's own limit may go higher (SendGrid Inbound Parse posts up to 30 MB); such bodies travel outside the ring. */
export const kMaxChannelBodyBytes = 32 * 1024 * 1024
/** Room for a ring record's header and its four signature header values beside a largest body. */
export const kRecordOverheadBytes = 4096
/** The ring's cursors are Int32 slots, so the record area stays well below 2^31 bytes. */
export const kMaxRingBytes = 1024 * 1024 * 1024
/** A ring record stores its channel as a one-byte index. */
export const kMaxChannels = 256
/** Channel names are URL path segments (/webhooks/:channel); provider names are database keys. */
export const namePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/

/** Everything but channels and providers; `cwd` anchors the embedded database directory. */
export function topLevelDefaults (cwd: string) {
  return {
    port: 8080,
    host: '0.0.0.0',
    ack: 'durable',
    ackTimeoutMs: 10_000,
    maxBodyBytes: 65_536,
    buffer: { maxMessages: 100_000, maxBytes: 64 * 1024 * 1024 },
    workers: availableParallelism(),
    taskRecords: 256,
    // In enqueued mode the threads behind the ring run this much nicer than the HTTP thread (src/thread-priority.ts).
    backgroundNice: 10,
    // maxBatchDelayMs is short because the writer closes a batch as soon as the
    // previous commit returns; the timer only bounds the wait of a lone message.
    writer: { maxBatchRows: 5000, maxBatchDelayMs: 2, maxQueuedRows: 50_000 },
    signature: { toleranceSeconds: 300 },
    // Dispatch runs this much nicer than the HTTP thread, in both ack modes (src/hermes.ts, dispatchData).
    dispatch: { leaseMs: 60_000, pollMs: 500, nice: 10 },
    // days null: keep every message forever. A sweep runs within a minute of start (firstSweepMs), then every intervalMs.
    retention: { days: null, intervalMs: 600_000, firstSweepMs: 30_000, batchRows: 5000 },
    // Instances heartbeat every heartbeatMs; one silent for deadAfterMs is dead and its share of every provider limit is split
    // among the others. A 429 pauses the provider for the whole fleet for its Retry-After (pauseMs without one), at most maxPauseMs.
    fleet: { heartbeatMs: 1000, deadAfterMs: 3000, pauseMs: 1000, maxPauseMs: 60_000 },
    database: { url: null, embeddedDir: join(cwd, '.hermes', 'postgres'), embeddedPort: 54_320 },
    logLevel: 'info',
    shutdownTimeoutMs: 15_000
  } as const
}

/** Per-provider defaults; a rate limit's burst defaults to its perSecond (see config.ts). */
export const providerDefaults = {
  rateLimit: { perSecond: 100 },
  concurrency: 32,
  // 12 attempts: the jittered delays before the 12th add up to minutes, so a provider gone for a
  // minute or two leaves no dead letters (with 8, a one-minute outage failed about half the messages).
  retry: { maxAttempts: 12, baseDelayMs: 500, maxDelayMs: 600_000 },
  timeoutMs: 10_000
} as const

/**
 * What runs when there is no config file at all: the three channels on the
 * built-in mock provider, all signed with DEVELOPMENT_SECRET. It goes through
 * the same validation as a file.
 */
export function developmentConfig (): Record<string, unknown> {
  const channel = { provider: 'mock', secrets: [DEVELOPMENT_SECRET] }
  return {
    channels: { sms: { ...channel }, mms: { ...channel }, email: { ...channel } },
    providers: { mock: { kind: 'mock' } }
  }
}

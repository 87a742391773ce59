/**
 * The configuration, validated once at start: a JSON file (or the
 * development default when there is none) plus environment overrides.
 * Every bad field is collected and reported in one ConfigError whose
 * messages name the field path; the result is deeply frozen.
 */
import { createPublicKey } from 'node:crypto'
import { accessSync, constants, readFileSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { ConfigError } from './errors.js'
import { kMaxNice } from './thread-priority.js'
import {
  DEVELOPMENT_SECRET, ackModes, channelTypes, developmentConfig, kMaxBodyBytes, kMaxChannels,
  kMaxChannelBodyBytes, kMaxRingBytes, kMaxTimerMs, kMinBodyBytes, kRecordOverheadBytes, logLevels, namePattern,
  channelFormats, providerDefaults, providerKinds, topLevelDefaults
} from './config-defaults.js'

export { DEVELOPMENT_SECRET } from './config-defaults.js'

export type AckMode = 'durable' | 'enqueued'
export type ChannelType = 'sms' | 'mms' | 'email'
export type ProviderKind = 'twilio' | 'sendgrid' | 'http' | 'mock'
/** How a channel's webhook body is read and verified: Hermes' JSON, Twilio's inbound form, SendGrid Inbound Parse. */
export type ChannelFormat = 'hermes' | 'twilio' | 'sendgrid-parse'
export interface RateLimit { readonly perSecond: number; readonly burst: number }
export interface RetryPolicy { readonly maxAttempts: number; readonly baseDelayMs: number; readonly maxDelayMs: number }
export interface ProviderConfig {
  readonly name: string; readonly kind: ProviderKind
  readonly baseUrl: string | null; readonly accountSid: string | null; readonly authToken: string | null
  readonly apiKey: string | null; readonly from: string | null
  readonly rateLimit: RateLimit; readonly concurrency: number; readonly retry: RetryPolicy; readonly timeoutMs: number
  /** SendGrid Event Webhook verification keys (base64 SPKI DER or PEM); empty when none. */
  readonly eventWebhookPublicKeys: readonly string[]
  /** Where this provider sends delivery receipts: `{publicUrl}/callbacks/{name}`, or null without publicUrl. */
  readonly callbackUrl: string | null
}
export interface ChannelConfig {
  readonly name: string; readonly type: ChannelType; readonly provider: string; readonly secrets: readonly string[]
  readonly format: ChannelFormat
  /** Twilio auth tokens for format "twilio" (rotation); empty: the provider's authToken. */
  readonly authTokens: readonly string[]
  /** "user:password" entries accepted in Authorization: Basic (format "sendgrid-parse"). */
  readonly basicAuth: readonly string[]
  /** ECDSA P-256 keys verifying SendGrid's signature headers (format "sendgrid-parse"). */
  readonly publicKeys: readonly string[]
  /** This channel's body limit; above the top-level maxBodyBytes a body travels outside the ring. */
  readonly maxBodyBytes: number
}
export interface HermesConfig {
  readonly port: number; readonly host: string
  readonly ack: AckMode; readonly ackTimeoutMs: number; readonly maxBodyBytes: number
  /** The URL providers call Hermes at (scheme, host, port, no trailing slash), e.g. behind a TLS proxy; null: http:// + Host. */
  readonly publicUrl: string | null
  readonly buffer: { readonly maxMessages: number; readonly maxBytes: number }
  readonly workers: number // Piscina threads
  readonly taskRecords: number // max ring records per worker task
  /** In enqueued mode, how much lower than the HTTP thread's the workers' and writer's CPU priority is (a nice increment, Linux); 0 = the same. The dispatch thread runs at least this low too. */
  readonly backgroundNice: number
  readonly writer: { readonly maxBatchRows: number; readonly maxBatchDelayMs: number; readonly maxQueuedRows: number }
  readonly signature: { readonly toleranceSeconds: number }
  /** Dispatch claims: how long a claim lasts before another instance may take the message, and the poll period; how much lower than the HTTP thread dispatch runs (a nice increment, Linux). */
  readonly dispatch: { readonly leaseMs: number; readonly pollMs: number; readonly nice: number }
  /** Deletes messages whose dispatch ended more than `days` after receipt (null: keep forever), in batches of batchRows (src/fleet/retention.ts). */
  readonly retention: { readonly days: number | null; readonly intervalMs: number; readonly firstSweepMs: number; readonly batchRows: number }
  /** Instances sharing a database split each provider's limits (src/fleet/): heartbeat period, silence after which an instance counts as dead, fleet-wide pause after a 429. */
  readonly fleet: { readonly heartbeatMs: number; readonly deadAfterMs: number; readonly pauseMs: number; readonly maxPauseMs: number }
  readonly database: { readonly url: string | null; readonly embeddedDir: string; readonly embeddedPort: number }
  readonly channels: Readonly<Record<string, ChannelConfig>>
  readonly providers: Readonly<Record<string, ProviderConfig>>
  readonly logLevel: string
  readonly shutdownTimeoutMs: number
  readonly developmentSecret: boolean // true when the dev default secret is in use (the log warns loudly)
  /** HTTPS on the listener: PEM certificate (chain) and key files, re-read on SIGHUP; null = plain HTTP. */
  readonly tls: TlsConfig | null
}
export interface TlsConfig { readonly certFile: string; readonly keyFile: string }

type Dict = Record<string, unknown>
interface IntRange { readonly min: number; readonly max?: number }

const topLevelKeys = ['port', 'host', 'publicUrl', 'ack', 'ackTimeoutMs', 'maxBodyBytes', 'buffer', 'workers', 'taskRecords',
  'backgroundNice', 'writer', 'signature', 'dispatch', 'retention', 'fleet', 'database', 'channels', 'providers', 'logLevel', 'shutdownTimeoutMs', 'tls']
const channelKeys = ['type', 'provider', 'format', 'secrets', 'authTokens', 'basicAuth', 'publicKeys', 'maxBodyBytes']
const providerKeys = ['kind', 'baseUrl', 'accountSid', 'authToken', 'apiKey', 'from', 'rateLimit', 'concurrency', 'retry', 'timeoutMs', 'eventWebhookPublicKeys']
const credentialsRequired: Record<ProviderKind, ReadonlyArray<'baseUrl' | 'accountSid' | 'authToken' | 'apiKey'>> = {
  twilio: ['baseUrl', 'accountSid', 'authToken'],
  sendgrid: ['baseUrl', 'apiKey'],
  http: ['baseUrl', 'apiKey'],
  mock: []
}
const portRange = { min: 0, max: 65_535 } // 0 = an ephemeral port (tests)
const positive = { min: 1 }
const timer = { min: 1, max: kMaxTimerMs }
const REDACTED = '[redacted]'

/** Collects problems instead of throwing, so one run reports every bad field. */
class Checker {
  readonly problems: string[] = []

  add (problem: string): void { this.problems.push(problem) }

  /** Whether `label` already has a problem, so relations between fields are only checked on valid values. */
  failed (label: string): boolean { return this.problems.some((p) => p.startsWith(`${label} `)) }

  /** An object whose keys are all known ('$comment' is always allowed); undefined when absent or invalid. */
  object (value: unknown, label: string, known: readonly string[], required = false): Dict | undefined {
    if (value === undefined && !required) return undefined
    if (value === undefined) { this.add(`${label} is required`); return undefined }
    if (!isObject(value)) { this.add(`${label} must be an object`); return undefined }
    for (const key of Object.keys(value)) {
      // Typo protection: a misspelt key would otherwise silently fall back to its default.
      if (key !== '$comment' && !known.includes(key)) this.add(`${at(label, key)} is not a known key (expected one of: ${known.join(', ')})`)
    }
    return value
  }

  int (value: unknown, label: string, range: IntRange, fallback: number): number {
    if (value === undefined) return fallback
    if (typeof value === 'number' && Number.isInteger(value) && value >= range.min && value <= (range.max ?? Infinity)) return value
    this.add(`${label} must be ${describeRange(range)}`)
    return fallback
  }

  positiveNumber (value: unknown, label: string, fallback: number): number {
    if (value === undefined) return fallback
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value
    this.add(`${label} must be a positive number`)
    return fallback
  }

  string (value: unknown, label: string, fallback: string): string {
    if (value === undefined) return fallback
    if (typeof value === 'string' && value !== '') return value
    this.add(`${label} must be a non-empty string`)
    return fallback
  }

  /** A non-empty string, or null when absent (null in the file also means absent). */
  optionalString (value: unknown, label: string): string | null {
    if (value === undefined || value === null) return null
    return this.string(value, label, '') || null
  }

  choice<T extends string> (value: unknown, label: string, choices: readonly T[], fallback: T | null): T | null {
    if (value === undefined && fallback !== null) return fallback
    if (choices.includes(value as T)) return value as T
    this.add(`${label} must be ${choices.length === 2 ? `"${choices[0]}" or "${choices[1]}"` : `one of ${choices.join(', ')}`}`)
    return fallback
  }

  /** An optional array of non-empty strings; [] when absent. */
  strings (value: unknown, label: string, check?: (entry: string) => boolean, what = 'non-empty strings'): string[] {
    if (value === undefined || value === null) return []
    if (Array.isArray(value) && value.length > 0 && value.every((s) => typeof s === 'string' && s !== '' && (check === undefined || check(s)))) return [...value as string[]]
    this.add(`${label} must be a non-empty array of ${what}`)
    return []
  }

  postgresUrl (value: unknown, label: string): string | null {
    if (value === undefined || value === null) return null
    if (typeof value === 'string' && parsesWith(value, ['postgres:', 'postgresql:'])) return value
    this.add(`${label} must be a postgres:// or postgresql:// URL`)
    return null
  }
}

export function resolveConfig (raw: unknown, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): HermesConfig {
  const c = new Checker()
  const d = topLevelDefaults(cwd)
  // Nothing else can be checked in a file that is not an object, so that is the only problem reported.
  if (raw !== undefined && !isObject(raw)) throw new ConfigError(['the configuration must be a JSON object'])
  const file = raw ?? developmentConfig()
  c.object(file, '', topLevelKeys)

  let port = c.int(file.port, 'port', portRange, d.port)
  const host = c.string(file.host, 'host', d.host)
  const publicUrl = readPublicUrl(c, file.publicUrl)
  let ack = c.choice(file.ack, 'ack', ackModes, d.ack) ?? d.ack
  const ackTimeoutMs = c.int(file.ackTimeoutMs, 'ackTimeoutMs', timer, d.ackTimeoutMs)
  const maxBodyBytes = c.int(file.maxBodyBytes, 'maxBodyBytes', { min: kMinBodyBytes, max: kMaxBodyBytes }, d.maxBodyBytes)

  const buf = c.object(file.buffer, 'buffer', ['maxMessages', 'maxBytes']) ?? {}
  const buffer = {
    maxMessages: c.int(buf.maxMessages, 'buffer.maxMessages', positive, d.buffer.maxMessages),
    maxBytes: c.int(buf.maxBytes, 'buffer.maxBytes', { min: 1, max: kMaxRingBytes }, d.buffer.maxBytes)
  }
  // An empty ring's cursor may sit anywhere, leaving at least half of it
  // contiguous; twice the largest record always fits, whatever the cursor.
  const minRingBytes = 2 * (maxBodyBytes + kRecordOverheadBytes)
  if (!c.failed('maxBodyBytes') && !c.failed('buffer.maxBytes') && buffer.maxBytes < minRingBytes) {
    c.add(`buffer.maxBytes must be at least 2 × (maxBodyBytes + ${kRecordOverheadBytes}) (${minRingBytes}) so the largest body always fits in the ring`)
  }

  let workers = c.int(file.workers, 'workers', positive, d.workers)
  const taskRecords = c.int(file.taskRecords, 'taskRecords', positive, d.taskRecords)
  const backgroundNice = c.int(file.backgroundNice, 'backgroundNice', { min: 0, max: kMaxNice }, d.backgroundNice)
  const w = c.object(file.writer, 'writer', ['maxBatchRows', 'maxBatchDelayMs', 'maxQueuedRows']) ?? {}
  const writer = {
    maxBatchRows: c.int(w.maxBatchRows, 'writer.maxBatchRows', positive, d.writer.maxBatchRows),
    maxBatchDelayMs: c.int(w.maxBatchDelayMs, 'writer.maxBatchDelayMs', { min: 0, max: kMaxTimerMs }, d.writer.maxBatchDelayMs),
    maxQueuedRows: c.int(w.maxQueuedRows, 'writer.maxQueuedRows', positive, d.writer.maxQueuedRows)
  }
  const sig = c.object(file.signature, 'signature', ['toleranceSeconds']) ?? {}
  const signature = { toleranceSeconds: c.int(sig.toleranceSeconds, 'signature.toleranceSeconds', positive, d.signature.toleranceSeconds) }

  const disp = c.object(file.dispatch, 'dispatch', ['leaseMs', 'pollMs', 'nice']) ?? {}
  const dispatch = {
    leaseMs: c.int(disp.leaseMs, 'dispatch.leaseMs', { min: 100, max: kMaxTimerMs }, d.dispatch.leaseMs),
    pollMs: c.int(disp.pollMs, 'dispatch.pollMs', { min: 10, max: kMaxTimerMs }, d.dispatch.pollMs),
    nice: c.int(disp.nice, 'dispatch.nice', { min: 0, max: kMaxNice }, d.dispatch.nice)
  }

  const ret = c.object(file.retention, 'retention', ['days', 'intervalMs', 'firstSweepMs', 'batchRows']) ?? {}
  const retention = {
    days: ret.days === undefined || ret.days === null ? d.retention.days : c.positiveNumber(ret.days, 'retention.days', 1),
    intervalMs: c.int(ret.intervalMs, 'retention.intervalMs', timer, d.retention.intervalMs),
    firstSweepMs: c.int(ret.firstSweepMs, 'retention.firstSweepMs', timer, d.retention.firstSweepMs),
    batchRows: c.int(ret.batchRows, 'retention.batchRows', { min: 1, max: 100_000 }, d.retention.batchRows)
  }
  const fl = c.object(file.fleet, 'fleet', ['heartbeatMs', 'deadAfterMs', 'pauseMs', 'maxPauseMs']) ?? {}
  const fleet = {
    heartbeatMs: c.int(fl.heartbeatMs, 'fleet.heartbeatMs', { min: 50, max: 60_000 }, d.fleet.heartbeatMs),
    deadAfterMs: c.int(fl.deadAfterMs, 'fleet.deadAfterMs', { min: 100, max: 600_000 }, d.fleet.deadAfterMs),
    pauseMs: c.int(fl.pauseMs, 'fleet.pauseMs', { min: 1, max: kMaxTimerMs }, d.fleet.pauseMs),
    maxPauseMs: c.int(fl.maxPauseMs, 'fleet.maxPauseMs', { min: 1, max: kMaxTimerMs }, d.fleet.maxPauseMs)
  }
  // An instance must beat at least twice before the others may count it dead.
  if (!c.failed('fleet.heartbeatMs') && !c.failed('fleet.deadAfterMs') && fleet.deadAfterMs < 2 * fleet.heartbeatMs) {
    c.add(`fleet.deadAfterMs must be at least 2 × fleet.heartbeatMs (${2 * fleet.heartbeatMs})`)
  }

  const db = c.object(file.database, 'database', ['url', 'embeddedDir', 'embeddedPort']) ?? {}
  let databaseUrl = c.postgresUrl(db.url, 'database.url')
  const embeddedDir = resolvePath(cwd, c.string(db.embeddedDir, 'database.embeddedDir', d.database.embeddedDir))
  const embeddedPort = c.int(db.embeddedPort, 'database.embeddedPort', { min: 1, max: 65_535 }, d.database.embeddedPort)

  let logLevel: string = c.choice(file.logLevel, 'logLevel', logLevels, d.logLevel) ?? d.logLevel
  const shutdownTimeoutMs = c.int(file.shutdownTimeoutMs, 'shutdownTimeoutMs', timer, d.shutdownTimeoutMs)

  const tls = readTls(c, file.tls, cwd)
  const providers = readProviders(c, file.providers, publicUrl)
  const channels = readChannels(c, file.channels, providers?.names ?? null, providers?.configs ?? {}, maxBodyBytes)

  // Environment overrides win over the file; each is validated like its field, named by its variable.
  const fromEnv = (name: string): string | undefined => {
    const value = env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }
  const envInt = (text: string): number => /^\d+$/.test(text) ? Number(text) : Number.NaN
  const PORT = fromEnv('PORT')
  if (PORT !== undefined) port = c.int(envInt(PORT), 'PORT', portRange, port)
  const DATABASE_URL = fromEnv('DATABASE_URL')
  if (DATABASE_URL !== undefined) databaseUrl = c.postgresUrl(DATABASE_URL, 'DATABASE_URL')
  const HERMES_ACK = fromEnv('HERMES_ACK')
  if (HERMES_ACK !== undefined) ack = c.choice(HERMES_ACK, 'HERMES_ACK', ackModes, ack) ?? ack
  const HERMES_WORKERS = fromEnv('HERMES_WORKERS')
  if (HERMES_WORKERS !== undefined) workers = c.int(envInt(HERMES_WORKERS), 'HERMES_WORKERS', positive, workers)
  const LOG_LEVEL = fromEnv('LOG_LEVEL')
  if (LOG_LEVEL !== undefined) logLevel = c.choice(LOG_LEVEL, 'LOG_LEVEL', logLevels, null) ?? logLevel

  if (c.problems.length > 0) throw new ConfigError(c.problems)
  return deepFreeze({
    port,
    host,
    publicUrl,
    ack,
    ackTimeoutMs,
    maxBodyBytes,
    buffer,
    workers,
    taskRecords,
    backgroundNice,
    writer,
    signature,
    dispatch,
    retention,
    fleet,
    database: { url: databaseUrl, embeddedDir, embeddedPort },
    channels: channels ?? {},
    providers: providers?.configs ?? {},
    logLevel,
    shutdownTimeoutMs,
    tls,
    // Also true when a config file lists the development secret itself: it is just as forgeable there.
    developmentSecret: Object.values(channels ?? {}).some((ch) => ch.secrets.includes(DEVELOPMENT_SECRET))
  })
}

/** `tls: { certFile, keyFile }`, paths relative to the working directory; both files must be readable. */
function readTls (c: Checker, value: unknown, cwd: string): TlsConfig | null {
  if (value === null) return null
  const t = c.object(value, 'tls', ['certFile', 'keyFile'])
  if (t === undefined) return null
  const files = { certFile: '', keyFile: '' }
  for (const key of ['certFile', 'keyFile'] as const) {
    if (t[key] === undefined) { c.add(`tls.${key} is required`); continue }
    const path = resolvePath(cwd, c.string(t[key], `tls.${key}`, ''))
    if (c.failed(`tls.${key}`)) continue
    try { accessSync(path, constants.R_OK) } catch (err) { c.add(`tls.${key} ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`) }
    files[key] = path
  }
  return files
}

/**
 * The `providers` block; null when it is missing or not an object, and then channels skip
 * the name check. `names` includes broken entries so a channel is not blamed for them too.
 */
function readProviders (c: Checker, value: unknown, publicUrl: string | null): { configs: Record<string, ProviderConfig>; names: Set<string> } | null {
  const block = readNamedBlock(c, value, 'providers', 'provider')
  if (block === null) return null
  const configs: Record<string, ProviderConfig> = {}
  for (const [name, entry] of block) {
    const config = readProvider(c, name, entry, publicUrl)
    if (config !== null) configs[name] = config
  }
  return { configs, names: new Set(block.map(([name]) => name)) }
}

function readProvider (c: Checker, name: string, value: unknown, publicUrl: string | null): ProviderConfig | null {
  const label = `providers.${name}`
  const p = c.object(value, label, providerKeys, true)
  if (p === undefined) return null
  const kind = c.choice(p.kind, `${label}.kind`, providerKinds, null)
  let baseUrl: string | null = null
  if (p.baseUrl !== undefined && p.baseUrl !== null) {
    if (typeof p.baseUrl === 'string' && /^https?:\/\//i.test(p.baseUrl) && parsesWith(p.baseUrl, ['http:', 'https:'])) {
      // Clients append paths ("/api/messages"), so a trailing slash would double up.
      baseUrl = p.baseUrl.replace(/\/+$/, '')
    } else {
      c.add(`${label}.baseUrl must be an absolute http(s) URL`)
    }
  }
  const credentials = {
    baseUrl,
    accountSid: c.optionalString(p.accountSid, `${label}.accountSid`),
    authToken: c.optionalString(p.authToken, `${label}.authToken`),
    apiKey: c.optionalString(p.apiKey, `${label}.apiKey`)
  }
  for (const field of kind === null ? [] : credentialsRequired[kind]) {
    if (p[field] === undefined || p[field] === null) c.add(`${label}.${field} is required for kind ${kind}`)
  }

  const rl = c.object(p.rateLimit, `${label}.rateLimit`, ['perSecond', 'burst']) ?? {}
  const perSecond = c.positiveNumber(rl.perSecond, `${label}.rateLimit.perSecond`, providerDefaults.rateLimit.perSecond)
  // The burst defaults to one second's worth, but never below one token, or a slow rate could never send.
  let burst = Math.max(1, perSecond)
  if (rl.burst !== undefined) {
    if (typeof rl.burst === 'number' && Number.isFinite(rl.burst) && rl.burst >= 1) burst = rl.burst
    else c.add(`${label}.rateLimit.burst must be a number >= 1`)
  }

  const r = c.object(p.retry, `${label}.retry`, ['maxAttempts', 'baseDelayMs', 'maxDelayMs']) ?? {}
  const rd = providerDefaults.retry
  const retry = {
    maxAttempts: c.int(r.maxAttempts, `${label}.retry.maxAttempts`, positive, rd.maxAttempts),
    baseDelayMs: c.int(r.baseDelayMs, `${label}.retry.baseDelayMs`, { min: 0, max: kMaxTimerMs }, rd.baseDelayMs),
    maxDelayMs: c.int(r.maxDelayMs, `${label}.retry.maxDelayMs`, { min: 0, max: kMaxTimerMs }, rd.maxDelayMs)
  }
  if (!c.failed(`${label}.retry.baseDelayMs`) && !c.failed(`${label}.retry.maxDelayMs`) && retry.maxDelayMs < retry.baseDelayMs) {
    c.add(`${label}.retry.maxDelayMs must be at least retry.baseDelayMs (${retry.baseDelayMs})`)
  }

  return {
    name,
    kind: kind ?? 'mock',
    ...credentials,
    from: c.optionalString(p.from, `${label}.from`),
    rateLimit: { perSecond, burst },
    concurrency: c.int(p.concurrency, `${label}.concurrency`, positive, providerDefaults.concurrency),
    retry,
    timeoutMs: c.int(p.timeoutMs, `${label}.timeoutMs`, timer, providerDefaults.timeoutMs),
    eventWebhookPublicKeys: readEventWebhookKeys(c, p.eventWebhookPublicKeys, label, kind),
    callbackUrl: publicUrl !== null && (kind === 'twilio' || kind === 'sendgrid') ? `${publicUrl}/callbacks/${name}` : null
  }
}

function readEventWebhookKeys (c: Checker, value: unknown, label: string, kind: ProviderKind | null): string[] {
  const keys = c.strings(value, `${label}.eventWebhookPublicKeys`, isEcdsaP256Key, 'ECDSA P-256 public keys (base64 SPKI DER or PEM)')
  if (keys.length > 0 && kind !== null && kind !== 'sendgrid') c.add(`${label}.eventWebhookPublicKeys is only for kind sendgrid`)
  return keys
}

/** Top-level publicUrl: an absolute http(s) URL with nothing after its path; a trailing slash is dropped. */
function readPublicUrl (c: Checker, value: unknown): string | null {
  if (value === undefined || value === null) return null
  if (typeof value === 'string' && /^https?:\/\//i.test(value) && parsesWith(value, ['http:', 'https:']) && !/[?#]/.test(value)) {
    return value.replace(/\/+$/, '')
  }
  c.add('publicUrl must be an absolute http(s) URL without query or fragment, e.g. https://hermes.example.com')
  return null
}

/** Whether `text` is an ECDSA P-256 public key, as base64 SPKI DER (SendGrid's console shows this) or PEM. */
export function isEcdsaP256Key (text: string): boolean {
  try {
    const key = text.includes('-----BEGIN')
      ? createPublicKey(text)
      : createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' })
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
  } catch {
    return false
  }
}

function readChannels (c: Checker, value: unknown, providerNames: ReadonlySet<string> | null,
  providers: Readonly<Record<string, ProviderConfig>>, ringBodyBytes: number): Record<string, ChannelConfig> | null {
  const block = readNamedBlock(c, value, 'channels', 'channel')
  if (block === null) return null
  if (block.length > kMaxChannels) c.add(`channels must define at most ${kMaxChannels} channels (a ring record stores a one-byte channel index)`)
  const channels: Record<string, ChannelConfig> = {}
  for (const [name, entry] of block) {
    const label = `channels.${name}`
    const ch = c.object(entry, label, channelKeys, true)
    if (ch === undefined) continue
    let type: ChannelType = 'sms'
    if (ch.type !== undefined) type = c.choice(ch.type, `${label}.type`, channelTypes, null) ?? type
    else if (isChannelType(name)) type = name
    else c.add(`${label}.type is required (one of ${channelTypes.join(', ')}) when the channel name is not one of them`)

    const provider = ch.provider === undefined ? '' : c.string(ch.provider, `${label}.provider`, '')
    if (ch.provider === undefined) c.add(`${label}.provider is required`)
    else if (provider !== '' && providerNames !== null && !providerNames.has(provider)) {
      c.add(`${label}.provider "${provider}" is not a configured provider`)
    }

    const format = c.choice(ch.format, `${label}.format`, channelFormats, 'hermes') ?? 'hermes'
    const secrets = ch.secrets
    const secretsOk = Array.isArray(secrets) && secrets.length > 0 && secrets.every((s) => typeof s === 'string' && s !== '')
    // Only Hermes' own format is signed with channel secrets; the provider formats have their own credentials.
    if (!secretsOk && (format === 'hermes' || secrets !== undefined)) c.add(`${label}.secrets must be a non-empty array of non-empty strings`)
    const native = readNativeFormat(c, ch, label, format, type, providers[provider])
    const maxBodyBytes = c.int(ch.maxBodyBytes, `${label}.maxBodyBytes`, { min: kMinBodyBytes, max: kMaxChannelBodyBytes }, ringBodyBytes)
    channels[name] = { name, type, provider, secrets: secretsOk ? [...(secrets as string[])] : [], format, ...native, maxBodyBytes }
  }
  return channels
}

/** The credentials of a provider-native format, checked against the format, the channel type and its provider. */
function readNativeFormat (c: Checker, ch: Dict, label: string, format: ChannelFormat, type: ChannelType, provider: ProviderConfig | undefined): { authTokens: string[], basicAuth: string[], publicKeys: string[] } {
  const authTokens = c.strings(ch.authTokens, `${label}.authTokens`)
  const basicAuth = c.strings(ch.basicAuth, `${label}.basicAuth`, (entry) => entry.indexOf(':') > 0, '"user:password" strings')
  const publicKeys = c.strings(ch.publicKeys, `${label}.publicKeys`, isEcdsaP256Key, 'ECDSA P-256 public keys (base64 SPKI DER or PEM)')
  const only = (field: string, value: unknown, formatName: ChannelFormat): void => {
    if (value !== undefined && format !== formatName) c.add(`${label}.${field} is only for format "${formatName}"`)
  }
  only('authTokens', ch.authTokens, 'twilio')
  only('basicAuth', ch.basicAuth, 'sendgrid-parse')
  only('publicKeys', ch.publicKeys, 'sendgrid-parse')
  if (format === 'twilio') {
    if (type === 'email') c.add(`${label}.format "twilio" needs a channel of type sms or mms`)
    if (ch.authTokens === undefined && provider !== undefined && (provider.kind !== 'twilio' || provider.authToken === null)) {
      c.add(`${label}.authTokens is required for format "twilio" unless the channel's provider is of kind twilio`)
    }
  }
  if (format === 'sendgrid-parse') {
    if (type !== 'email') c.add(`${label}.format "sendgrid-parse" needs a channel of type email`)
    if (ch.basicAuth === undefined && ch.publicKeys === undefined) c.add(`${label} of format "sendgrid-parse" needs basicAuth or publicKeys (or both)`)
  }
  return { authTokens, basicAuth, publicKeys }
}

/** A required, non-empty object of named entries whose names are valid; null when the block itself is unusable. */
function readNamedBlock (c: Checker, value: unknown, label: string, noun: string): Array<[string, unknown]> | null {
  if (value === undefined) { c.add(`${label} is required`); return null }
  if (!isObject(value)) { c.add(`${label} must be an object mapping ${noun} names to ${noun}s`); return null }
  const entries = Object.entries(value).filter(([name]) => name !== '$comment')
  if (entries.length === 0) c.add(`${label} must define at least one ${noun}`)
  return entries.filter(([name]) => {
    if (namePattern.test(name)) return true
    c.add(`${noun} name ${JSON.stringify(name)} must be 1-64 letters, digits, "_" or "-", starting with a letter or digit`)
    return false
  })
}

/**
 * Reads `--config <file>` / `--config=<file>` from argv (default: this process's arguments),
 * else env.HERMES_CONFIG, else runs without a file (the development default).
 */
export function loadConfig (options: { argv?: readonly string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): HermesConfig {
  const { argv = process.argv.slice(2), env = process.env, cwd = process.cwd() } = options
  const file = configPathFromArgv(argv) ?? (env.HERMES_CONFIG || undefined)
  if (file === undefined) return resolveConfig(undefined, env, cwd)
  return resolveConfig(readJsonFile(resolvePath(cwd, file)), env, cwd)
}

function configPathFromArgv (argv: readonly string[]): string | undefined {
  let path: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--config') path = argv[++i] ?? ''
    else if (arg.startsWith('--config=')) path = arg.slice('--config='.length)
    else continue
    if (path === '' || path.startsWith('--')) throw new ConfigError(['--config needs a file path'])
  }
  return path
}

function readJsonFile (path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new ConfigError([`config file ${path} cannot be read: ${e.code === 'ENOENT' ? 'no such file' : e.message}`])
  }
  try {
    // Some editors save a byte-order mark, which JSON.parse rejects.
    return JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (err) {
    throw new ConfigError([`config file ${path} is not valid JSON: ${(err as Error).message}`])
  }
}

/** A JSON-safe copy with every secret, token, apiKey and password replaced by '[redacted]'. */
export function redactedConfig (config: HermesConfig): unknown {
  const hide = (value: string | null): string | null => value === null ? null : REDACTED
  const copy = {
    ...config,
    database: { ...config.database, url: config.database.url === null ? null : redactUrl(config.database.url) },
    // Keep one placeholder per secret: how many are active (rotation) is worth seeing in the log.
    channels: mapValues(config.channels, (ch) => ({
      ...ch,
      secrets: ch.secrets.map(() => REDACTED),
      authTokens: ch.authTokens.map(() => REDACTED),
      basicAuth: ch.basicAuth.map((entry) => `${entry.slice(0, entry.indexOf(':'))}:${REDACTED}`)
    })),
    providers: mapValues(config.providers, (p) => ({
      ...p,
      baseUrl: p.baseUrl === null ? null : redactUrl(p.baseUrl),
      authToken: hide(p.authToken),
      apiKey: hide(p.apiKey)
    }))
  }
  return JSON.parse(JSON.stringify(copy))
}

/** Hides a URL's password and any `password` query parameter (libpq accepts both). */
function redactUrl (text: string): string {
  let url: URL
  try { url = new URL(text) } catch { return REDACTED } // cannot tell where a password would be
  const user = url.username === '' && url.password === '' ? '' : `${url.username}${url.password === '' ? '' : `:${REDACTED}`}@`
  const search = url.search.replace(/([?&](?:ssl)?password=)[^&]*/gi, `$1${REDACTED}`)
  return `${url.protocol}//${user}${url.host}${url.pathname}${search}${url.hash}`
}

function mapValues<T, U> (record: Readonly<Record<string, T>>, fn: (value: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, fn(value)]))
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

function isObject (value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isChannelType (name: string): name is ChannelType {
  return (channelTypes as readonly string[]).includes(name)
}

function parsesWith (text: string, protocols: readonly string[]): boolean {
  try {
    const url = new URL(text)
    // libpq allows an empty host (a Unix socket named in ?host=), http(s) does not.
    return protocols.includes(url.protocol) && (url.host !== '' || !url.protocol.startsWith('http'))
  } catch {
    return false
  }
}

function at (label: string, key: string): string {
  return label === '' ? key : `${label}.${key}`
}

function describeRange ({ min, max }: IntRange): string {
  if (max !== undefined) return `an integer from ${min} to ${max}`
  if (min === 1) return 'a positive integer'
  if (min === 0) return 'a non-negative integer'
  return `an integer >= ${min}`
}

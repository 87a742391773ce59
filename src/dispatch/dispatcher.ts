/**
 * The dispatch stage's shell: claims due messages from PostgreSQL per
 * provider, sends them through that provider's client and writes outcomes
 * back in batches. What to do when is decided by each provider's LaneCore
 * (src/dispatch/lane-core.ts, a pure state machine: bucket, cap, claim
 * sizing, pre-claim credit, retries' timing); this file only does the I/O
 * those decisions ask for, with the real clock and timers, and counts
 * metrics. It runs in its own thread (workers/dispatch.ts)
 * with two database connections: one for claims and one for write-backs,
 * so that a batch of outcomes never waits behind a claim (or the reverse).
 * A send holds its provider's concurrency slot until its outcome is stored,
 * so against a fast provider the write-back's latency is the throughput.
 *
 * Work is found four ways: messages the writer inserted already claimed for
 * this dispatcher (pre-claims, src/preclaim-credit.ts: while a provider has
 * no older work due, its new messages need no claim at all), a `wake` (the
 * writer committed rows it did not pre-claim), a poll every pollMs (other
 * instances' work, expired leases, redispatch), and a timer at the next
 * retry this instance scheduled. Claims carry a lease, so work held by a
 * crashed instance comes due again when it runs out.
 */
import type { ChannelConfig, ChannelType, ProviderConfig } from '../config.js'
import { HermesError } from '../errors.js'
import { createLogger, type Logger } from '../log.js'
import type { DispatchData, Preclaimed, PreclaimedRow, ProviderLimits } from '../messages.js'
import type { SharedMetrics } from '../metrics/shared-metrics.js'
import { creditSlotOf, CreditLedger } from '../preclaim-credit.js'
import { claimedFromRow, type Claimed } from './claimed.js'
import { type DbSession, openClaimSession, openWriteSession } from './db-session.js'
import { reportDispatchGauges } from './dispatch-gauges.js'
import { channelIdsSql, claimSql, type ClaimedRow } from './dispatch-sql.js'
import { LaneCore, laneLeaseMs, type LaneDecision, type LaneEvent } from './lane-core.js'
import { failureFromError } from './providers/classify.js'
import { loadProviderClients, type ProviderClient, type ProviderClientFactory } from './providers/index.js'
import { StatusWriter, type Entry } from './status-writer.js'
import { checkBucketLimits } from './token-bucket.js'

export interface DispatcherOptions {
  readonly databaseUrl: string
  readonly providers: readonly ProviderConfig[]
  readonly channels: readonly ChannelConfig[]
  readonly log: Logger
  readonly pollMs?: number
  readonly leaseMs?: number
  readonly stopTimeoutMs?: number
  readonly metrics?: SharedMetrics
  /** Pre-claim credit shared with the writer, one slot per provider in `providers` order; absent: no pre-claims. */
  readonly preclaimCredit?: SharedArrayBuffer
  /** How much nicer the server processes of the two sessions run (src/thread-priority.ts, lowerBackendPriority); 0 or absent: not touched. */
  readonly backendNice?: number
}

export const kDefaultTuning = {
  pollMs: 500,
  leaseMs: 60_000,
  /** How long stop() waits for sends in flight before giving their claims back. */
  stopTimeoutMs: 5000
} as const

/** How long an outcome waits for others to share its write when no lane waits for its slot (status-writer.ts). */
const kOutcomeLingerMs = 50

/** retryAfterMs: the Retry-After of the newest 429 (null: none yet, or it carried none). */
export interface LaneStats { queued: number; sending: number; sent: number; retried: number; failed: number; rateLimited: number; retryAfterMs: number | null }

/** updateProviderLimits was given limits a lane cannot run with. */
export class ProviderLimitsError extends HermesError {
  constructor (provider: string, reason: string) {
    super('HERMES_ERR_PROVIDER_LIMITS', `provider ${JSON.stringify(provider)}: ${reason}`, 400)
    this.name = 'ProviderLimitsError'
  }
}

/** updateProviderLimits named a provider the configuration does not have. */
export class UnknownProviderLimitsError extends HermesError {
  constructor (provider: string) {
    super('HERMES_ERR_UNKNOWN_PROVIDER', `no provider named ${JSON.stringify(provider)} is configured`, 400)
    this.name = 'UnknownProviderLimitsError'
  }
}

/**
 * Throws a ProviderLimitsError naming the first limit a lane cannot run with.
 * `hold`: concurrency 0 is allowed, holding the provider's sends (a fleet
 * instance whose share is nothing for now, src/fleet/).
 */
export function checkProviderLimits (provider: string, limits: ProviderLimits, hold = false): void {
  try {
    checkBucketLimits(limits?.rateLimit?.perSecond, limits?.rateLimit?.burst)
  } catch (error) {
    throw new ProviderLimitsError(provider, `rateLimit.${(error as Error).message}`)
  }
  if (!(Number.isInteger(limits.concurrency) && (limits.concurrency > 0 || (hold && limits.concurrency === 0)))) {
    throw new ProviderLimitsError(provider, hold ? 'concurrency must be an integer >= 0' : 'concurrency must be a positive integer')
  }
}

/** One provider: its core and the I/O around it. */
interface Lane {
  readonly name: string
  readonly kind: string
  readonly core: LaneCore
  /** Replaced when a reload brings new credentials. */
  client: ProviderClient
  readonly channelIds: readonly number[]
  readonly leaseMs: number
  readonly stats: LaneStats
  tickTimer: NodeJS.Timeout | null
  dueTimer: NodeJS.Timeout | null
}

const now = (): number => performance.now()

export class Dispatcher {
  private readonly log: Logger
  private readonly claimSession: DbSession
  private readonly writeSession: DbSession
  private readonly writer: StatusWriter
  private readonly tuning: { pollMs: number; leaseMs: number; stopTimeoutMs: number }
  private lanes: Lane[] = []
  /** Builds a provider's client; set in open(), once the configured kinds' client modules are loaded. */
  private createClient: ProviderClientFactory = () => { throw new Error('Dispatcher: provider clients are not loaded before start()') }
  private channelById = new Map<number, { name: string; type: ChannelType }>()
  private readonly laneByChannel = new Map<number, Lane>()
  private readonly laneByName = new Map<string, Lane>()
  private readonly credit: CreditLedger | null
  /** Limits changed before the lanes exist (start() not done): applied when they are made. */
  private readonly limits = new Map<string, ProviderLimits>()
  private readonly held = new Map<string, Claimed>() // by message id: claimed, not yet stored
  /** By message id: the latest claim's row for a message that was still held when that claim returned it (adopt). */
  private readonly claimedWhileHeld = new Map<string, { row: ClaimedRow, claimedAt: number }>()
  private claiming: Promise<void> | null = null
  private claimAgain = false
  private pollTimer: NodeJS.Timeout | null = null
  private stopGauges: () => void = () => {}
  private started: Promise<void> | null = null
  private stopping: Promise<void> | null = null

  constructor (private readonly options: DispatcherOptions) {
    this.log = options.log
    this.tuning = {
      pollMs: options.pollMs ?? kDefaultTuning.pollMs,
      leaseMs: options.leaseMs ?? kDefaultTuning.leaseMs,
      stopTimeoutMs: options.stopTimeoutMs ?? kDefaultTuning.stopTimeoutMs
    }
    for (const [name, value] of Object.entries(this.tuning)) {
      if (!(Number.isInteger(value) && value > 0)) throw new RangeError(`${name} must be a positive integer`)
    }
    this.credit = options.preclaimCredit === undefined ? null : new CreditLedger(options.preclaimCredit)
    this.claimSession = openClaimSession(options.databaseUrl, this.log, options.backendNice)
    this.writeSession = openWriteSession(options.databaseUrl, this.log, options.backendNice)
    this.writer = new StatusWriter(this.writeSession, this.log, (entries, claimedAgain) => this.stored(entries, claimedAgain), async () => { await this.claiming }, kOutcomeLingerMs)
  }

  /** Connects, maps channels to providers and starts claiming. Rejects if the database cannot be reached. */
  async start (): Promise<void> {
    this.started ??= this.open()
    await this.started
  }

  /**
   * The writer's report on credit it took (src/preclaim-credit.ts): the
   * messages it inserted claimed for us join their lanes like claimed ones.
   */
  preclaimed (report: Preclaimed): void {
    this.credit?.settle(report)
    if (report.rows !== null) {
      const claimedAt = now() - Math.max(0, Date.now() - report.startedAtMs)
      const byLane = new Map<Lane, ClaimedRow[]>()
      for (const row of JSON.parse(report.rows) as PreclaimedRow[]) {
        const lane = this.laneByChannel.get(row.channel_id)
        if (lane === undefined) continue // not granted by us; its lease runs out and it is claimed then
        const rows = byLane.get(lane) ?? []
        rows.push(claimedRowFrom(row))
        byLane.set(lane, rows)
      }
      for (const [lane, rows] of byLane) {
        this.options.metrics?.inc('hermes_dispatch_preclaimed_total', [lane.name], rows.length)
        this.handle(lane, { type: 'preclaimed', items: this.adopt(rows, claimedAt) })
      }
    }
    if (this.stopping === null && this.lanes.some((lane) => lane.core.hungry())) this.requestClaims()
  }

  /** New work was committed: claim now instead of at the next poll. */
  wake (): void {
    if (this.stopping !== null || this.lanes.length === 0) return
    for (const lane of this.lanes) this.handle(lane, { type: 'wake' })
    this.requestClaims()
  }

  /**
   * New limits for a provider, from now on, without a restart: tokens
   * already spent stay spent, and sends in flight over a lowered cap finish
   * (none starts until the lane is below it). Throws a HermesError
   * (HERMES_ERR_UNKNOWN_PROVIDER, HERMES_ERR_PROVIDER_LIMITS) and changes
   * nothing if the provider is not configured or the limits are invalid.
   */
  updateProviderLimits (name: string, limits: ProviderLimits): void {
    this.setLimits(name, limits, false)
    this.log.info({ provider: name, ...limits }, 'dispatch: provider limits changed')
  }

  /**
   * This instance's share of a provider's fleet-wide limits (src/fleet/coordinator.ts),
   * as updateProviderLimits, except that concurrency 0 holds the provider's sends.
   */
  applyFleetShare (name: string, limits: ProviderLimits): void {
    this.setLimits(name, limits, true)
  }

  private setLimits (name: string, limits: ProviderLimits, hold: boolean): void {
    if (!this.options.providers.some((p) => p.name === name)) throw new UnknownProviderLimitsError(name)
    checkProviderLimits(name, limits, hold)
    const copy: ProviderLimits = { rateLimit: { perSecond: limits.rateLimit.perSecond, burst: limits.rateLimit.burst }, concurrency: limits.concurrency }
    this.limits.set(name, copy)
    const lane = this.laneByName.get(name)
    if (lane !== undefined) this.applyLimits(lane, copy)
  }

  /** The limits a provider runs with now (undefined: not configured). */
  providerLimits (name: string): ProviderLimits | undefined {
    const lane = this.laneByName.get(name)
    if (lane !== undefined) return lane.core.limits
    const provider = this.options.providers.find((p) => p.name === name)
    if (provider === undefined) return undefined
    return this.limits.get(name) ?? { rateLimit: provider.rateLimit, concurrency: provider.concurrency }
  }

  /**
   * Stops claiming, lets sends in flight finish (at most stopTimeoutMs), gives
   * every unsent claim back ('pending'), stores all outcomes and disconnects.
   */
  async stop (): Promise<void> {
    this.stopping ??= this.close()
    await this.stopping
  }

  /**
   * A reloaded provider's credentials (SIGHUP): sends from now on go through
   * a client built from them; the old client closes once its sends can have ended.
   */
  updateProviderCredentials (config: ProviderConfig): void {
    const lane = this.laneByName.get(config.name)
    if (lane === undefined) return
    const old = lane.client
    lane.client = this.createClient({ ...config, concurrency: lane.core.limits.concurrency })
    setTimeout(() => old.close(), config.timeoutMs + 1000).unref()
    this.log.info({ provider: config.name }, 'dispatch: provider credentials updated')
  }

  /** Counts per provider since start (for metrics and logs). */
  snapshot (): Record<string, LaneStats> {
    const out: Record<string, LaneStats> = {}
    for (const lane of this.lanes) out[lane.name] = { ...lane.stats, queued: lane.core.queued, sending: lane.core.sending }
    return out
  }

  private async open (): Promise<void> {
    const { providers, channels } = this.options
    this.createClient = await loadProviderClients(providers.map((p) => p.kind))
    const { rows } = await this.claimSession.query<{ id: number; name: string }>(channelIdsSql, [channels.map((c) => c.name)])
    const idOf = new Map(rows.map((r) => [r.name, r.id]))
    for (const channel of channels) {
      const id = idOf.get(channel.name)
      if (id === undefined) this.log.warn({ channel: channel.name }, 'dispatch: channel is not in the database; its messages cannot be dispatched')
      else this.channelById.set(id, { name: channel.name, type: channel.type })
    }
    for (const provider of providers) {
      const channelIds = channels.filter((c) => c.provider === provider.name && idOf.has(c.name)).map((c) => idOf.get(c.name)!)
      if (channelIds.length === 0) continue
      // A lane stops starting sends well before the lease ends (see LaneCore.staleAfterMs), which needs room for a whole request.
      const leaseMs = laneLeaseMs(provider, this.tuning.leaseMs)
      const slot = creditSlotOf(providers, provider.name)
      const core = new LaneCore({
        provider,
        leaseMs,
        pollMs: this.tuning.pollMs,
        now,
        ...(this.credit === null ? {} : { credit: { ledger: this.credit, slot } })
      })
      const lane: Lane = {
        name: provider.name,
        kind: provider.kind,
        core,
        client: this.createClient(provider),
        channelIds,
        leaseMs,
        stats: { queued: 0, sending: 0, sent: 0, retried: 0, failed: 0, rateLimited: 0, retryAfterMs: null },
        tickTimer: null,
        dueTimer: null
      }
      this.lanes.push(lane)
      this.laneByName.set(lane.name, lane)
      for (const id of channelIds) this.laneByChannel.set(id, lane)
      const limits = this.limits.get(lane.name)
      if (limits !== undefined) this.applyLimits(lane, limits)
    }
    for (const channel of channels) {
      if (!providers.some((p) => p.name === channel.provider)) this.log.warn({ channel: channel.name, provider: channel.provider }, 'dispatch: channel has no configured provider')
    }
    this.log.info({ providers: this.lanes.map((l) => ({ name: l.name, kind: l.kind, channels: l.channelIds.length, leaseMs: l.leaseMs })) }, 'dispatch started')
    this.schedulePoll()
    if (this.options.metrics !== undefined) this.stopGauges = reportDispatchGauges(this.options.metrics, this.options.databaseUrl, this.lanes.map((l) => ({ name: l.name, get sending () { return l.core.sending } })), this.log)
    this.wake()
  }

  private async close (): Promise<void> {
    await this.started?.catch(() => {})
    if (this.pollTimer !== null) clearTimeout(this.pollTimer)
    this.stopGauges()
    await this.claiming
    const deadline = Date.now() + this.tuning.stopTimeoutMs
    for (const lane of this.lanes) this.handle(lane, { type: 'stop' })
    // Pre-claims the writer took credit for before the revoke are given back as their reports arrive.
    while (this.lanes.some((l) => l.core.busy) && Date.now() < deadline) await sleep(10)
    for (const lane of this.lanes) {
      const abandoned = lane.core.sending
      if (abandoned > 0) this.log.warn({ provider: lane.name, messages: abandoned }, 'dispatch: sends still in flight at stop; their claims are given back and they may be sent again')
      this.handle(lane, { type: 'abandon' })
      lane.client.close()
    }
    // Outcomes get their own grace period: a send that finished is worth storing.
    const stored = await this.writer.drain(Math.max(deadline, Date.now() + 2000))
    this.writer.close()
    if (!stored) this.log.error({ code: 'HERMES_ERR_DISPATCH_WRITE', messages: this.writer.size }, 'dispatch: outcomes not stored at stop; those messages will be sent again after their lease')
    await Promise.all([this.claimSession.close(), this.writeSession.close()])
    this.log.info({ stats: this.snapshot() }, 'dispatch stopped')
  }

  private applyLimits (lane: Lane, limits: ProviderLimits): void {
    // The pool first: sends the core starts at once need its connections.
    if (limits.concurrency > 0 && limits.concurrency !== lane.core.limits.concurrency) lane.client.resize?.(limits.concurrency)
    this.handle(lane, { type: 'limits', limits })
  }

  /** Feeds an event to a lane's core and carries out what it decides. */
  private handle (lane: Lane, event: LaneEvent): void {
    this.apply(lane, lane.core.handle(event))
  }

  private apply (lane: Lane, decisions: readonly LaneDecision[]): void {
    for (const d of decisions) {
      switch (d.type) {
        case 'send': this.send(lane, d.item); break
        case 'release': this.writer.add({ item: d.item, decision: null, provider: lane.name }); break
        case 'store': this.store(lane, d); break
        case 'claim': this.requestClaims(); break
        case 'flush': this.writer.flush(); break
        case 'grant': break // already in the ledger
        case 'sleepUntil': {
          if (lane.tickTimer !== null) clearTimeout(lane.tickTimer)
          lane.tickTimer = setTimeout(() => { lane.tickTimer = null; this.handle(lane, { type: 'tick' }) }, Math.max(0, Math.ceil(d.at - now())))
          break
        }
        case 'claimAt': {
          if (this.stopping !== null) break
          if (lane.dueTimer !== null) clearTimeout(lane.dueTimer)
          lane.dueTimer = setTimeout(() => {
            lane.dueTimer = null
            if (this.stopping === null) this.handle(lane, { type: 'due' })
          }, Math.max(0, Math.ceil(d.at - now())))
          break
        }
        case 'rateLimitWait': this.options.metrics?.inc('hermes_dispatch_rate_limit_wait_seconds_total', [lane.name], d.ms / 1000); break
      }
    }
    if (lane.core.mode === 'stopping' || lane.core.mode === 'stopped') this.clearTimers(lane)
  }

  private clearTimers (lane: Lane): void {
    if (lane.tickTimer !== null) clearTimeout(lane.tickTimer)
    if (lane.dueTimer !== null) clearTimeout(lane.dueTimer)
    lane.tickTimer = null
    lane.dueTimer = null
  }

  private send (lane: Lane, item: Claimed): void {
    lane.client.send(item).catch(failureFromError).then((result) => {
      if (!item.abandoned) this.handle(lane, { type: 'sent', item, result })
    })
  }

  private store (lane: Lane, { item, decision, rateLimited, retryAfterMs }: Extract<LaneDecision, { type: 'store' }>): void {
    const stats = lane.stats
    if (decision.status === 'sent') stats.sent++
    else if (decision.status === 'failed') stats.failed++
    else stats.retried++
    if (rateLimited) {
      stats.rateLimited++
      stats.retryAfterMs = retryAfterMs ?? null
    }
    const metrics = this.options.metrics
    if (metrics !== undefined) {
      metrics.inc('hermes_dispatch_sends_total', [lane.name, decision.status === 'pending' ? 'retry' : decision.status])
      if (rateLimited) metrics.inc('hermes_dispatch_rate_limited_total', [lane.name])
      if (decision.status === 'sent') metrics.observe('hermes_dispatch_end_to_end_seconds', [], (Date.now() - item.receivedAtMs) / 1000)
    }
    if (decision.status === 'failed') {
      this.log.warn({ code: 'HERMES_ERR_DISPATCH_FAILED', provider: lane.name, message: item.id, reason: decision.lastError }, 'dispatch: message failed')
    } else if (decision.status === 'pending') {
      this.log.debug({ provider: lane.name, message: item.id, reason: decision.lastError, delayMs: decision.delayMs }, 'dispatch: send failed; will retry')
    }
    this.writer.add({ item, decision, provider: lane.name })
  }

  /**
   * Outcomes are in the database: forget the claims, and come back for retries when they are due.
   * A message claimed again after its outcome was stored (`claimedAgain`, status-writer.ts) is new
   * work: the row that claim returned joins its lane as a claim of its own.
   */
  private stored (entries: readonly Entry[], claimedAgain: readonly Entry[] = []): void {
    for (const { item, decision, provider } of entries) {
      if (this.held.get(item.id) === item) this.held.delete(item.id)
      const lane = this.laneByName.get(provider)
      if (lane !== undefined && decision !== null) this.handle(lane, { type: 'stored', item, decision })
    }
    for (const { item, provider } of claimedAgain) {
      const again = this.claimedWhileHeld.get(item.id)
      const lane = this.laneByName.get(provider)
      if (again === undefined || again.row.lease !== item.lease || lane === undefined || this.held.has(item.id)) continue
      const [fresh] = this.adopt([again.row], again.claimedAt)
      this.handle(lane, { type: 'claimedAgain', items: [fresh!] })
    }
    if (this.claimedWhileHeld.size > 0) for (const { item } of entries) this.claimedWhileHeld.delete(item.id)
  }

  private requestClaims (): void {
    if (this.stopping !== null) return
    if (this.claiming !== null) { this.claimAgain = true; return }
    this.claiming = this.claimPass().finally(() => { this.claiming = null })
  }

  /** One claim per lane that wants work, in turn, until none does. */
  private async claimPass (): Promise<void> {
    do {
      this.claimAgain = false
      for (const lane of this.lanes) {
        if (this.stopping !== null) return
        // Only a lane missing at least half its target claims (LaneCore.hungry). Wakes come with every
        // commit of the writer; claiming whatever the lane lacks at each one made a rate-limited lane
        // (10/s, a queue topped up one send at a time) run a 1-2 row claim per commit: its session was
        // busy in 47% of samples, for 10 messages a second.
        const plan = lane.core.planClaim()
        if (plan?.type !== 'claim') continue
        let rows: ClaimedRow[]
        try {
          rows = (await this.claimSession.query<ClaimedRow>(claimSql, [lane.channelIds, plan.n, lane.leaseMs], 'hermes_claim')).rows
          this.claimSession.backoff.reset()
        } catch (error) {
          this.log.debug({ err: (error as Error).message }, 'dispatch: claim failed')
          this.retryClaimsLater()
          return
        }
        this.options.metrics?.inc('hermes_dispatch_claims_total', [lane.name])
        this.options.metrics?.inc('hermes_dispatch_claimed_total', [lane.name], rows.length)
        this.handle(lane, { type: 'claimed', got: rows.length, items: this.adopt(rows, now()) })
      }
    } while (this.claimAgain && this.stopping === null)
  }

  /** Turns claimed rows into lane items; a message this instance still holds (its outcome unstored) only gets its new lease. */
  private adopt (rows: readonly ClaimedRow[], claimedAt: number): Claimed[] {
    const fresh: Claimed[] = []
    for (const row of rows) {
      const mine = this.held.get(row.id)
      if (mine !== undefined) {
        // Most likely its lease ran out while the outcome waited, and the outcome is written with the new one;
        // but if that outcome was stored just before this claim, this is new work (stored() decides).
        mine.lease = row.lease
        this.claimedWhileHeld.set(row.id, { row, claimedAt })
        continue
      }
      const item = claimedFromRow(row, this.channelById.get(row.channel_id)!, claimedAt)
      this.held.set(item.id, item)
      fresh.push(item)
    }
    return fresh
  }

  private retryClaimsLater (): void {
    const ms = this.claimSession.backoff.next()
    for (const lane of this.lanes) this.handle(lane, { type: 'dueIn', ms })
  }

  private schedulePoll (): void {
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null
      if (this.stopping !== null) return
      this.wake()
      this.schedulePoll()
    }, this.tuning.pollMs)
    this.pollTimer.unref?.()
  }
}

/** What workers/dispatch.ts runs: a dispatcher built from the thread's workerData. */
export function createDispatcher (data: DispatchData, log: Logger = createLogger(data.logLevel).child({ thread: 'dispatch' }), metrics?: SharedMetrics): Dispatcher {
  return new Dispatcher({
    databaseUrl: data.databaseUrl,
    providers: data.providers,
    channels: data.channels,
    log,
    ...(data.pollMs === undefined ? {} : { pollMs: data.pollMs }),
    ...(data.leaseMs === undefined ? {} : { leaseMs: data.leaseMs }),
    ...(data.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: data.stopTimeoutMs }),
    ...(metrics === undefined ? {} : { metrics }),
    ...(data.preclaimCredit === undefined ? {} : { preclaimCredit: data.preclaimCredit }),
    ...(data.backendNice === undefined ? {} : { backendNice: data.backendNice })
  })
}

/** A pre-claimed message (src/messages.ts, PreclaimedRow) as the row a claim returns: no attempts yet. */
function claimedRowFrom (row: PreclaimedRow): ClaimedRow {
  return {
    id: row.id,
    channel_id: row.channel_id,
    external_id: row.external_id,
    sender: row.sender,
    recipient: row.recipient,
    body: row.body,
    sent_at_ms: row.sent_at === null ? null : Date.parse(row.sent_at),
    received_at_ms: Date.parse(row.received_at),
    attempts: 0,
    lease: row.lease,
    attachments: row.attachments
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

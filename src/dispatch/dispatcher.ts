/**
 * The dispatch stage: claims due messages from PostgreSQL per provider,
 * sends them through that provider's lane (bucket, cap, client) and writes
 * outcomes back in batches. It runs in its own thread (workers/dispatch.ts)
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
import { createLogger, type Logger } from '../log.js'
import { claimedFromRow, type Claimed } from './claimed.js'
import { DbSession, openClaimSession } from './db-session.js'
import type { DispatchData } from './dispatch-data.js'
import { channelIdsSql, claimSql, type ClaimedRow } from './dispatch-sql.js'
import type { SharedMetrics } from '../metrics/shared-metrics.js'
import { reportDispatchGauges } from './dispatch-gauges.js'
import { decide } from './outcome.js'
import { laneLeaseMs, ProviderLane } from './provider-lane.js'
import { creditSlotOf, PreclaimCredit } from '../preclaim-credit.js'
import type { Preclaimed } from '../messages.js'
import { createProviderClient, type SendResult } from './providers/index.js'
import { StatusWriter, type Entry } from './status-writer.js'

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

const kMinClaimRetryMs = 50
const kMaxClaimRetryMs = 2000

export interface LaneStats { queued: number; sending: number; sent: number; retried: number; failed: number; rateLimited: number }

export class Dispatcher {
  private readonly log: Logger
  private readonly claimSession: DbSession
  private readonly writeSession: DbSession
  private readonly writer: StatusWriter
  private readonly tuning: { pollMs: number; leaseMs: number; stopTimeoutMs: number }
  private lanes: ProviderLane[] = []
  private channelById = new Map<number, { name: string; type: ChannelType }>()
  private readonly laneByChannel = new Map<number, ProviderLane>()
  private readonly laneBySlot = new Map<number, ProviderLane>()
  private readonly credit: PreclaimCredit | null
  private readonly stats = new Map<string, LaneStats>()
  private readonly held = new Map<string, Claimed>() // by message id: claimed, not yet stored
  private claiming: Promise<void> | null = null
  private claimAgain = false
  private claimRetryMs = kMinClaimRetryMs
  private pollTimer: NodeJS.Timeout | null = null
  private stopGauges: () => void = () => {}
  private readonly dueTimers = new Map<ProviderLane, { timer: NodeJS.Timeout; at: number }>()
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
    this.credit = options.preclaimCredit === undefined ? null : new PreclaimCredit(options.preclaimCredit)
    this.claimSession = openClaimSession(options.databaseUrl, this.log, options.backendNice)
    this.writeSession = new DbSession(options.databaseUrl, this.log, 'hermes-dispatch-write', options.backendNice)
    this.writer = new StatusWriter(this.writeSession, this.log, (entries) => this.stored(entries), async () => { await this.claiming }, kOutcomeLingerMs)
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
    for (const [slot, count] of report.taken) {
      const lane = this.laneBySlot.get(slot)
      if (lane !== undefined) lane.granted -= count
    }
    if (report.rows !== null) {
      const claimedAt = performance.now() - Math.max(0, Date.now() - report.startedAtMs)
      const byLane = new Map<ProviderLane, ClaimedRow[]>()
      for (const row of JSON.parse(report.rows) as PreclaimedRow[]) {
        const lane = this.laneByChannel.get(row[1])
        if (lane === undefined) continue // not granted by us; its lease runs out and it is claimed then
        const rows = byLane.get(lane) ?? []
        rows.push(claimedRowFrom(row))
        byLane.set(lane, rows)
      }
      for (const [lane, rows] of byLane) {
        this.options.metrics?.inc('hermes_dispatch_preclaimed_total', [lane.name], rows.length)
        const items = this.adopt(rows, claimedAt)
        if (this.stopping !== null) for (const item of items) this.writer.add({ item, decision: null, provider: lane.name })
        else lane.enqueue(items)
      }
    }
    if (this.stopping === null && this.lanes.some((lane) => lane.hungry())) this.requestClaims()
  }

  /** New work was committed: claim now instead of at the next poll. */
  wake (): void {
    if (this.stopping !== null || this.lanes.length === 0) return
    for (const lane of this.lanes) lane.undrain()
    this.requestClaims()
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
   * Sets a provider's rate limit and concurrency cap while running (this
   * instance's share of a fleet-wide limit, src/fleet/coordinator.ts).
   * Concurrency 0 holds the provider's sends. Unknown providers are ignored.
   */
  updateProviderLimits (name: string, limits: { rateLimit: { perSecond: number; burst: number }; concurrency: number }): void {
    const lane = this.lanes.find((l) => l.name === name)
    if (lane === undefined) return
    if (!(Number.isInteger(limits.concurrency) && limits.concurrency >= 0)) throw new RangeError('concurrency must be an integer >= 0')
    lane.setLimits(limits.rateLimit.perSecond, limits.rateLimit.burst, limits.concurrency)
  }

  /** Counts per provider since start (for metrics and logs). */
  snapshot (): Record<string, LaneStats> {
    const out: Record<string, LaneStats> = {}
    for (const lane of this.lanes) out[lane.name] = { ...this.stats.get(lane.name)!, queued: lane.queued, sending: lane.sending }
    return out
  }

  private async open (): Promise<void> {
    const { providers, channels } = this.options
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
      // A lane stops starting sends well before the lease ends (see ProviderLane), which needs room for a whole request.
      const leaseMs = laneLeaseMs(provider, this.tuning.leaseMs)
      const slot = creditSlotOf(providers, provider.name)
      const lane = new ProviderLane(provider, channelIds, leaseMs, createProviderClient(provider), {
        onResult: (l, item, result) => this.onResult(l, item, result),
        onRateLimitWait: (l, ms) => this.options.metrics?.inc('hermes_dispatch_rate_limit_wait_seconds_total', [l.name], ms / 1000),
        onRelease: (l, item) => this.writer.add({ item, decision: null, provider: l.name }),
        onHungry: () => this.requestClaims(),
        onSlotsHeld: () => this.writer.flush()
      }, this.credit === null ? null : slot)
      this.lanes.push(lane)
      this.laneBySlot.set(slot, lane)
      for (const id of channelIds) this.laneByChannel.set(id, lane)
      this.stats.set(provider.name, { queued: 0, sending: 0, sent: 0, retried: 0, failed: 0, rateLimited: 0 })
    }
    for (const channel of channels) {
      if (!providers.some((p) => p.name === channel.provider)) this.log.warn({ channel: channel.name, provider: channel.provider }, 'dispatch: channel has no configured provider')
    }
    this.log.info({ providers: this.lanes.map((l) => ({ name: l.name, kind: l.config.kind, channels: l.channelIds.length, leaseMs: l.leaseMs })) }, 'dispatch started')
    this.schedulePoll()
    if (this.options.metrics !== undefined) this.stopGauges = reportDispatchGauges(this.options.metrics, this.options.databaseUrl, this.lanes, this.log)
    this.wake()
  }

  private async close (): Promise<void> {
    await this.started?.catch(() => {})
    if (this.pollTimer !== null) clearTimeout(this.pollTimer)
    this.stopGauges()
    for (const { timer } of this.dueTimers.values()) clearTimeout(timer)
    this.dueTimers.clear()
    await this.claiming
    const deadline = Date.now() + this.tuning.stopTimeoutMs
    for (const lane of this.lanes) {
      this.revoke(lane)
      for (const item of lane.stop()) this.writer.add({ item, decision: null, provider: lane.name })
    }
    // Pre-claims the writer took credit for before the revoke are given back as their reports arrive.
    while (this.lanes.some((l) => l.sending > 0 || l.granted > 0) && Date.now() < deadline) await sleep(10)
    for (const lane of this.lanes) {
      const abandoned = lane.abandon()
      if (abandoned.length > 0) this.log.warn({ provider: lane.name, messages: abandoned.length }, 'dispatch: sends still in flight at stop; their claims are given back and they may be sent again')
      for (const item of abandoned) this.writer.add({ item, decision: null, provider: lane.name })
    }
    // Outcomes get their own grace period: a send that finished is worth storing.
    const stored = await this.writer.drain(Math.max(deadline, Date.now() + 2000))
    this.writer.close()
    if (!stored) this.log.error({ code: 'HERMES_ERR_DISPATCH_WRITE', messages: this.writer.size }, 'dispatch: outcomes not stored at stop; those messages will be sent again after their lease')
    await Promise.all([this.claimSession.close(), this.writeSession.close()])
    this.log.info({ stats: this.snapshot() }, 'dispatch stopped')
  }

  private onResult (lane: ProviderLane, item: Claimed, result: SendResult): void {
    const decision = decide(result, item.attempts, lane.config.retry)
    const stats = this.stats.get(lane.name)!
    if (decision.status === 'sent') stats.sent++
    else if (decision.status === 'failed') stats.failed++
    else stats.retried++
    if (!result.ok && result.rateLimited === true) stats.rateLimited++
    const metrics = this.options.metrics
    if (metrics !== undefined) {
      metrics.inc('hermes_dispatch_sends_total', [lane.name, decision.status === 'pending' ? 'retry' : decision.status])
      if (!result.ok && result.rateLimited === true) metrics.inc('hermes_dispatch_rate_limited_total', [lane.name])
      if (decision.status === 'sent') metrics.observe('hermes_dispatch_end_to_end_seconds', [], (Date.now() - item.receivedAtMs) / 1000)
    }
    if (decision.status === 'failed') {
      this.log.warn({ code: 'HERMES_ERR_DISPATCH_FAILED', provider: lane.name, message: item.id, reason: decision.lastError }, 'dispatch: message failed')
    } else if (decision.status === 'pending') {
      this.log.debug({ provider: lane.name, message: item.id, reason: decision.lastError, delayMs: decision.delayMs }, 'dispatch: send failed; will retry')
    }
    this.writer.add({ item, decision, provider: lane.name })
  }

  /** Outcomes are in the database: forget the claims, and come back for retries when they are due. */
  private stored (entries: readonly Entry[]): void {
    for (const { item, decision, provider } of entries) {
      if (this.held.get(item.id) === item) this.held.delete(item.id)
      const lane = this.lanes.find((l) => l.name === provider)
      if (lane === undefined) continue
      if (decision !== null) lane.settled(item)
      if (decision?.status === 'pending') this.scheduleDue(lane, decision.delayMs)
    }
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
        if (lane.drained) { this.grant(lane); continue }
        // Only a lane missing at least half its target claims. Wakes come with every commit of the
        // writer; claiming whatever the lane lacks at each one made a rate-limited lane (10/s, a
        // queue topped up one send at a time) run a 1-2 row claim per commit: its session was
        // busy in 47% of samples, for 10 messages a second.
        if (!lane.hungry()) continue
        const want = lane.wanted()
        const wakes = lane.wakeCount
        let rows: ClaimedRow[]
        try {
          rows = (await this.claimSession.query<ClaimedRow>(claimSql, [lane.channelIds, want, lane.leaseMs], 'hermes_claim')).rows
          this.claimRetryMs = kMinClaimRetryMs
        } catch (error) {
          this.log.debug({ err: (error as Error).message }, 'dispatch: claim failed')
          this.retryClaimsLater()
          return
        }
        lane.claimed(want, rows.length, wakes)
        this.options.metrics?.inc('hermes_dispatch_claims_total', [lane.name])
        this.options.metrics?.inc('hermes_dispatch_claimed_total', [lane.name], rows.length)
        // A full claim means older work is waiting in the database: new messages stop jumping it
        // (the writer's credit is taken back) until a claim comes back short.
        if (rows.length === want) this.revoke(lane)
        else if (lane.drained) this.grant(lane)
        const items = this.adopt(rows, performance.now())
        // stop() began while this claim ran: hand the rows straight back.
        if (this.stopping !== null) for (const item of items) this.writer.add({ item, decision: null, provider: lane.name })
        else if (items.length > 0) lane.enqueue(items)
      }
    } while (this.claimAgain && this.stopping === null)
  }

  /** Turns claimed rows into lane items; a message this instance still holds (its outcome unstored) only gets its new lease. */
  private adopt (rows: readonly ClaimedRow[], claimedAt: number): Claimed[] {
    const fresh: Claimed[] = []
    for (const row of rows) {
      const mine = this.held.get(row.id)
      if (mine !== undefined) { mine.lease = row.lease; continue }
      const item = claimedFromRow(row, this.channelById.get(row.channel_id)!, claimedAt)
      this.held.set(item.id, item)
      fresh.push(item)
    }
    return fresh
  }

  /** Nothing older is due for this lane: the writer may pre-claim what it can start soon. */
  private grant (lane: ProviderLane): void {
    if (this.credit === null || lane.preclaimSlot === null || this.stopping !== null) return
    const count = lane.grantable()
    if (count <= 0) return
    this.credit.grant(lane.preclaimSlot, count)
    lane.granted += count
  }

  /** Takes back the credit the writer has not taken yet. */
  private revoke (lane: ProviderLane): void {
    if (this.credit === null || lane.preclaimSlot === null) return
    lane.granted -= this.credit.revoke(lane.preclaimSlot)
  }

  private retryClaimsLater (): void {
    const ms = this.claimRetryMs
    this.claimRetryMs = Math.min(this.claimRetryMs * 2, kMaxClaimRetryMs)
    this.dueAll(ms)
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

  private dueAll (ms: number): void {
    for (const lane of this.lanes) this.scheduleDue(lane, ms)
  }

  /** Claims for `lane` once `ms` have passed (a retry's delay), unless the poll comes first. */
  private scheduleDue (lane: ProviderLane, ms: number): void {
    if (this.stopping !== null || ms >= this.tuning.pollMs) return
    // The row's next_attempt_at is the database's now() at write time + ms; a little slack keeps the claim from arriving early.
    const at = performance.now() + ms + 2
    const current = this.dueTimers.get(lane)
    if (current !== undefined && current.at <= at) return
    if (current !== undefined) clearTimeout(current.timer)
    const timer = setTimeout(() => {
      this.dueTimers.delete(lane)
      lane.undrain()
      this.requestClaims()
    }, Math.ceil(at - performance.now()))
    this.dueTimers.set(lane, { timer, at })
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

/** A pre-claimed message as the writer's merge returns it (src/store/merge-sql.ts, insertMessages). */
type PreclaimedRow = [id: string, channelId: number, externalId: string, sender: string, recipient: string, body: string,
  sentAt: string | null, receivedAt: string, attachments: string[], lease: string]

function claimedRowFrom ([id, channelId, externalId, sender, recipient, body, sentAt, receivedAt, attachments, lease]: PreclaimedRow): ClaimedRow {
  return {
    id,
    channel_id: channelId,
    external_id: externalId,
    sender,
    recipient,
    body,
    sent_at: sentAt === null ? null : new Date(sentAt),
    received_at: new Date(receivedAt),
    attempts: 0,
    lease,
    attachments
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

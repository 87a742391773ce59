/**
 * Holds each provider's rateLimit and concurrency across every instance on
 * one database. Every heartbeatMs this instance writes its heartbeat (and
 * which providers it has work queued for), reads the other live instances
 * and the fleet-wide pauses, computes its share of each provider's limits
 * (shares.ts) and hands it to the dispatcher through applyFleetShare.
 * Nothing here runs per message.
 *
 * Shares that shrink apply at once; a share that grows applies only after
 * it has been computed for growDelayMs (two heartbeats), by which time every
 * other live instance has read the same rows and shrunk its own. So a new
 * instance starts with nothing, unless it finds itself alone; and the share
 * of an instance that died comes back to the others deadAfterMs + two
 * heartbeats after its last beat.
 *
 * An instance that cannot write its heartbeat for deadAfterMs − heartbeatMs
 * holds its sends: the others are about to count it dead and take its share.
 * A 429 seen here is written to fleet_provider_pause for as long as its
 * Retry-After asks (pauseMs when it gives none; never more than
 * maxPauseMs); the other instances hold that provider until the pause ends
 * (this one's lane already waits the provider's own Retry-After).
 */
import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import { sessionProfiles } from '../store/session.js'
import { DatabaseSession } from '../store/database-session.js'
import type { ProviderConfig } from '../config.js'
import type { Logger } from '../log.js'
import type { SharedMetrics } from '../metrics/shared-metrics.js'
import { heartbeatSql, leaveSql, liveSql, pauseSql } from './fleet-sql.js'
import { lesserShare, shareOf, type Limits, type LiveInstance } from './shares.js'

/** The limits the dispatcher applies to one provider (the dispatcher's applyFleetShare shape). */
export interface ProviderLimits {
  readonly rateLimit: { readonly perSecond: number; readonly burst: number }
  readonly concurrency: number
}

/** What the coordinator needs of the dispatcher: its counters and the one method that sets a provider's limits. */
export interface FleetDispatcher {
  snapshot (): Record<string, { queued: number; sending: number; sent: number; retried: number; failed: number; rateLimited: number; retryAfterMs?: number | null }>
  applyFleetShare (name: string, limits: ProviderLimits): void
}

export interface FleetOptions {
  readonly databaseUrl: string
  readonly providers: readonly ProviderConfig[]
  readonly heartbeatMs: number
  readonly deadAfterMs: number
  /** The fleet-wide pause after a 429 without a Retry-After. */
  readonly pauseMs: number
  /** The longest fleet-wide pause a Retry-After can ask for (a bad header must not stop the fleet for a day). */
  readonly maxPauseMs: number
  readonly log: Logger
  readonly metrics?: SharedMetrics
  readonly instanceId?: string
}

/** How often the counters are read for queued work and a 429 to share (no database work unless one came). */
const kRateLimitCheckMs = 100
/** The rate a held lane keeps (a token bucket needs one above 0); with concurrency 0 it starts nothing anyway. */
const kHeldPerSecond = 0.001

interface ProviderState {
  readonly config: ProviderConfig
  /** The configured (fleet-wide) limits; a reload replaces them. */
  limits: Limits
  history: Array<{ at: number; share: Limits }>
  applied: string
  heldUntil: number
  sent: number
  rateLimited: number
  /** Work was queued here at some check since the last heartbeat (one empty moment does not make an instance idle). */
  queuedSeen: boolean
  share: Limits
}

export class FleetCoordinator {
  readonly id: string
  private readonly session: DatabaseSession
  /** What the last heartbeat read of the others (instances and pauses). */
  private lastRows: readonly LiveRow[] = []
  private readonly providers = new Map<string, ProviderState>()
  private timer: NodeJS.Timeout | null = null
  private checkTimer: NodeJS.Timeout | null = null
  private lastBeatOk = performance.now()
  private lastTick = performance.now()
  private live = 1
  /** Providers this instance reported busy in its last heartbeat. */
  private busy: string[] = []
  private stopped = false
  private ticking: Promise<void> | null = null
  private readonly growDelayMs: number

  constructor (private readonly options: FleetOptions, private readonly dispatcher: FleetDispatcher | null = null) {
    this.id = options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
    this.growDelayMs = 2 * options.heartbeatMs
    this.session = new DatabaseSession(options.databaseUrl, { profile: sessionProfiles.fleet })
    for (const config of options.providers) {
      const limits = { perSecond: config.rateLimit.perSecond, burst: config.rateLimit.burst, concurrency: config.concurrency }
      this.providers.set(config.name, { config, limits, history: [], applied: '', heldUntil: 0, sent: 0, rateLimited: 0, queuedSeen: false, share: limits })
    }
  }

  /** Live instances as this one last saw them (itself included). */
  get instances (): number { return this.live }

  /** This instance's current share of a provider's limits (what was last applied, before any pause). */
  shareOf (provider: string): Limits | undefined { return this.providers.get(provider)?.share }

  /**
   * Registers this instance and computes its first shares, before the
   * dispatcher starts: alone, it takes the whole limits; beside others,
   * nothing until they have shrunk theirs.
   */
  async join (): Promise<void> {
    const others = await this.beat()
    const now = performance.now()
    const alone = others.length === 0
    for (const state of this.providers.values()) {
      if (!alone) state.history.push({ at: now, share: { perSecond: 0, burst: 0, concurrency: 0 } })
    }
    this.update(others, now)
    this.options.log.info({ instance: this.id, others: others.length }, 'fleet: joined')
  }

  /**
   * New fleet-wide limits for a provider (a SIGHUP reload): this instance's
   * share is computed from them at once against the fleet last seen; like
   * any share, a smaller one applies now and a larger one after two heartbeats.
   */
  setConfiguredLimits (name: string, limits: ProviderLimits): void {
    const state = this.providers.get(name)
    if (state === undefined) return
    state.limits = { perSecond: limits.rateLimit.perSecond, burst: limits.rateLimit.burst, concurrency: limits.concurrency }
    this.update(this.lastRows, performance.now())
  }

  /** Applies the current shares and starts the heartbeat (after the dispatcher has started). */
  start (): void {
    // join() computed the shares before the dispatcher had lanes to take them: hand them over now, all of them.
    for (const state of this.providers.values()) state.applied = ''
    this.applyAll(performance.now())
    this.schedule()
    this.checkTimer = setInterval(() => this.checkRateLimited(), kRateLimitCheckMs)
    this.checkTimer.unref()
  }

  /** Stops beating and deletes this instance's row: the others take its share within three heartbeats. */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.checkTimer !== null) clearInterval(this.checkTimer)
    await this.ticking?.catch(() => {})
    try {
      await this.session.query(leaveSql, [this.id])
    } catch (error) {
      this.options.log.warn({ err: (error as Error).message }, 'fleet: could not remove this instance; the others count it dead after fleet.deadAfterMs')
    }
    await this.session.close()
  }

  private schedule (): void {
    if (this.stopped) return
    this.timer = setTimeout(() => {
      this.ticking = this.tick().finally(() => { this.ticking = null; this.schedule() })
    }, this.options.heartbeatMs)
  }

  private async tick (): Promise<void> {
    let others: LiveRow[]
    try {
      others = await this.beat()
    } catch (error) {
      this.options.log.warn({ code: 'HERMES_ERR_FLEET', err: (error as Error).message }, 'fleet: heartbeat failed')
      // The others count this instance dead soon and take its share: hold every provider until a beat gets through.
      if (performance.now() - this.lastBeatOk > this.options.deadAfterMs - this.options.heartbeatMs) {
        for (const state of this.providers.values()) state.history = [{ at: performance.now(), share: { perSecond: 0, burst: 0, concurrency: 0 } }]
        this.applyAll(performance.now())
      }
      return
    }
    this.update(others, performance.now())
  }

  /** Writes the heartbeat, then reads the other live instances and the running pauses. */
  private async beat (): Promise<LiveRow[]> {
    this.busy = this.busyProviders()
    await this.session.query(heartbeatSql, [this.id, hostname(), process.pid, this.busy])
    const { rows } = await this.session.query<LiveRow>(liveSql, [this.id, this.options.deadAfterMs])
    this.lastBeatOk = performance.now()
    return rows
  }

  /** Providers with work waiting here: messages queued in the lane, or a send rate near the share. */
  private busyProviders (): string[] {
    if (this.dispatcher === null) return []
    const snapshot = this.dispatcher.snapshot()
    const now = performance.now()
    const seconds = Math.max(0.001, (now - this.lastTick) / 1000)
    this.lastTick = now
    const busy: string[] = []
    for (const [name, state] of this.providers) {
      const stats = snapshot[name]
      if (stats === undefined) continue
      const done = stats.sent + stats.retried + stats.failed
      const rate = (done - state.sent) / seconds
      state.sent = done
      // A held instance (no share) sends nothing and so is not busy by its rate; else it would claim a share every other beat.
      if (state.queuedSeen || stats.queued > 0 || (state.share.perSecond > 0 && rate >= 0.5 * state.share.perSecond)) busy.push(name)
      state.queuedSeen = false
    }
    return busy
  }

  private update (rows: readonly LiveRow[], now: number): void {
    this.lastRows = rows
    const busyHere = new Set(this.busy)
    for (const row of rows) if (row.kind === 'pause') {
      const state = this.providers.get(row.name)
      if (state !== undefined && now + row.ms > state.heldUntil) {
        if (state.heldUntil <= now) this.options.log.info({ provider: row.name, ms: Math.round(row.ms) }, 'fleet: provider paused by another instance after a 429')
        state.heldUntil = now + row.ms
        setTimeout(() => { if (!this.stopped) this.applyAll(performance.now()) }, Math.ceil(row.ms) + 1).unref()
      }
    }
    const instances = rows.filter((r) => r.kind === 'instance')
    if (instances.length + 1 !== this.live) this.options.log.info({ instances: instances.length + 1 }, 'fleet: live instances changed')
    this.live = instances.length + 1
    this.options.metrics?.set('hermes_fleet_instances', [], this.live)
    for (const [name, state] of this.providers) {
      const fleet: LiveInstance[] = [{ id: this.id, busy: busyHere.has(name) }, ...instances.map((r) => ({ id: r.name, busy: r.busy.includes(name) }))]
      state.history.push({ at: now, share: shareOf(state.limits, fleet, this.id) })
      // Keep the computations of the last growDelayMs, and the newest older one (it still holds the share down at the window's start).
      while (state.history.length > 1 && state.history[1]!.at <= now - this.growDelayMs) state.history.shift()
    }
    this.applyAll(now)
  }

  /** Applies each provider's effective share (the least computed within growDelayMs), held while a fleet pause runs. */
  private applyAll (now: number): void {
    for (const [name, state] of this.providers) {
      let share = state.history.at(-1)?.share ?? state.limits
      for (const entry of state.history) share = lesserShare(share, entry.share)
      state.share = share
      const held = state.heldUntil > now || share.concurrency === 0 || share.perSecond === 0
      const limits: ProviderLimits = held
        ? { rateLimit: { perSecond: Math.max(kHeldPerSecond, share.perSecond), burst: 1 }, concurrency: 0 }
        : { rateLimit: { perSecond: share.perSecond, burst: Math.max(1, share.burst) }, concurrency: share.concurrency }
      const key = JSON.stringify(limits)
      if (key !== state.applied) {
        state.applied = key
        this.dispatcher?.applyFleetShare(name, limits)
        this.options.log.debug({ provider: name, ...limits, held }, 'fleet: provider limits applied')
      }
      const metrics = this.options.metrics
      if (metrics !== undefined) {
        metrics.set('hermes_fleet_share_per_second', [name], held ? 0 : limits.rateLimit.perSecond)
        metrics.set('hermes_fleet_share_burst', [name], held ? 0 : limits.rateLimit.burst)
        metrics.set('hermes_fleet_share_concurrency', [name], limits.concurrency)
        metrics.set('hermes_fleet_paused', [name], state.heldUntil > now ? 1 : 0)
      }
    }
  }

  /** Notes queued work, and shares a new 429 from a provider: a pause for the whole fleet. */
  private checkRateLimited (): void {
    if (this.dispatcher === null || this.stopped) return
    const snapshot = this.dispatcher.snapshot()
    for (const [name, state] of this.providers) {
      if ((snapshot[name]?.queued ?? 0) > 0) state.queuedSeen = true
      const count = snapshot[name]?.rateLimited ?? 0
      if (count <= state.rateLimited) continue
      state.rateLimited = count
      const pauseMs = Math.min(snapshot[name]?.retryAfterMs ?? this.options.pauseMs, this.options.maxPauseMs)
      if (pauseMs <= 0) continue
      this.session.query(pauseSql, [name, pauseMs, this.id])
        .catch((error: unknown) => this.options.log.warn({ provider: name, err: (error as Error).message }, 'fleet: could not share a 429 pause'))
    }
  }
}

interface LiveRow { kind: 'instance' | 'pause'; name: string; busy: string[]; ms: number }

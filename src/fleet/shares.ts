/**
 * How a provider's limits are split between the live instances of a fleet:
 * a pure function of the limits, the live instances (each saying whether it
 * has work queued for the provider) and which instance is asking. Every
 * instance computes it from the same rows, so the shares add up to at most
 * the limit.
 *
 * Busy instances split the limit evenly; an idle one keeps a small floor
 * (kIdleWeight of a busy one's weight, and one unit of burst and
 * concurrency when there is room) so that it can start sending the moment
 * work reaches it and report itself busy at its next heartbeat. With nobody
 * busy, everyone gets an even share.
 *
 * A token bucket needs a whole token, so with a burst below the number of
 * instances only floor(burst) of them take part (the busy ones first, then
 * by id) and the others get nothing: the fleet never starts more than burst
 * at once, and the work those others would have sent stays in the database
 * for the ones that can send it.
 */

export interface Limits {
  readonly perSecond: number
  readonly burst: number
  readonly concurrency: number
}

export interface LiveInstance {
  readonly id: string
  readonly busy: boolean
}

/** An idle instance's rate weight next to a busy one's 1: with one busy and one idle, the busy one gets 95%. */
export const kIdleWeight = 0.05

const byId = (a: LiveInstance, b: LiveInstance): number => a.id < b.id ? -1 : a.id > b.id ? 1 : 0

export function shareOf (limits: Limits, live: readonly LiveInstance[], self: string): Limits {
  const sorted = [...live].sort(byId)
  const instances = limits.burst < sorted.length
    ? [...sorted.filter((i) => i.busy), ...sorted.filter((i) => !i.busy)].slice(0, Math.max(1, Math.floor(limits.burst))).sort(byId)
    : sorted
  const me = instances.findIndex((i) => i.id === self)
  if (me < 0) return { perSecond: 0, burst: 0, concurrency: 0 }
  const n = instances.length
  const anyBusy = instances.some((i) => i.busy)
  const counts = (i: LiveInstance): boolean => !anyBusy || i.busy // splits like a busy one
  const weightOf = (i: LiveInstance): number => counts(i) ? 1 : kIdleWeight
  const total = instances.reduce((sum, i) => sum + weightOf(i), 0)
  const mine = instances[me]!
  const perSecond = limits.perSecond * weightOf(mine) / total

  const busy = instances.filter(counts).length
  const idle = n - busy
  // Burst: one token for each idle instance, the rest split between the busy ones (n <= burst here, so each gets at least 1).
  const burst = counts(mine) ? (limits.burst - idle) / busy : 1

  return { perSecond, burst, concurrency: concurrencyShare(limits.concurrency, instances, me, counts) }
}

/**
 * Whole slots: each idle instance 1 when the busy ones still get at least 1
 * each; the busy ones split the rest, the remainder going to the first ones
 * in id order. Below one slot per busy instance, the first ones in id
 * order get one each and the others none.
 */
function concurrencyShare (concurrency: number, instances: readonly LiveInstance[], me: number, counts: (i: LiveInstance) => boolean): number {
  const busyIndexes = instances.map((inst, i) => counts(inst) ? i : -1).filter((i) => i >= 0)
  const idle = instances.length - busyIndexes.length
  const idleGetOne = concurrency - idle >= busyIndexes.length
  if (!counts(instances[me]!)) return idleGetOne ? 1 : 0
  const forBusy = idleGetOne ? concurrency - idle : concurrency
  const rank = busyIndexes.indexOf(me)
  const base = Math.floor(forBusy / busyIndexes.length)
  return base + (rank < forBusy % busyIndexes.length ? 1 : 0)
}

/** The smaller of two shares, field by field (a share that grows waits; one that shrinks applies at once). */
export function lesserShare (a: Limits, b: Limits): Limits {
  return { perSecond: Math.min(a.perSecond, b.perSecond), burst: Math.min(a.burst, b.burst), concurrency: Math.min(a.concurrency, b.concurrency) }
}

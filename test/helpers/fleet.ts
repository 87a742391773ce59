/**
 * Several real Hermes processes on one database (a fleet), for the fleet
 * tests: each is spawned with the same config file, as operators run them.
 */
import { send } from './hermes.js'
import { spawnHermes, type RunningHermes } from './process.js'

interface Teardown { teardown (fn: () => unknown): void }

export interface FleetMember {
  readonly run: RunningHermes
  readonly port: number
  readonly base: string
  /** One series' value from this instance's /metrics (`name{labels}`), 0 when absent. */
  metric (series: string): Promise<number>
}

/** Spawns `count` instances at once with `configFile` and waits until each has started. */
export async function startFleet (t: Teardown, configFile: string, count: number): Promise<FleetMember[]> {
  const runs = Array.from({ length: count }, () => spawnHermes(t, ['--config', configFile]))
  return await Promise.all(runs.map(async (run) => {
    const started = await run.waitForLog((e) => e['msg'] === 'hermes started')
    const port = started['port'] as number
    const base = `http://127.0.0.1:${port}`
    return {
      run,
      port,
      base,
      metric: async (series: string) => {
        const text = (await send('GET', `${base}/metrics`)).text
        const line = text.split('\n').find((l) => l.startsWith(`${series} `))
        return line === undefined ? 0 : Number(line.slice(series.length + 1))
      }
    }
  }))
}

/** Waits until every member sees `count` live instances (hermes_fleet_instances). */
export async function waitForInstances (members: readonly FleetMember[], count: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const seen = await Promise.all(members.map(async (m) => await m.metric('hermes_fleet_instances')))
    if (seen.every((n) => n === count)) return
    if (Date.now() > deadline) throw new Error(`instances never all saw ${count} live: ${seen.join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Waits until each member's share of `provider`'s rate is perSecond / n (all idle: an even split). */
export async function waitForEvenShares (members: readonly FleetMember[], provider: string, perSecond: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const shares = await Promise.all(members.map(async (m) => await m.metric(`hermes_fleet_share_per_second{provider="${provider}"}`)))
    if (shares.every((s) => Math.abs(s - perSecond / members.length) < 0.01)) return
    if (Date.now() > deadline) throw new Error(`shares never settled: ${shares.join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Stops every member with SIGTERM and waits for each to exit. */
export async function stopAll (members: readonly FleetMember[]): Promise<void> {
  for (const m of members) m.run.child.kill('SIGTERM')
  await Promise.all(members.map(async (m) => await m.run.exited))
}

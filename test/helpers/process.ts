import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { onFatalSignal } from '../../src/harness/fatal-signal.js'

/**
 * Writes a config file for a spawned Hermes into `dir`: loopback, any free
 * port, two workers, info logs (waitForLog needs 'hermes started'), then `config`.
 */
export function writeConfigFile (dir: string, config: Record<string, unknown>): string {
  const file = join(dir, 'hermes.json')
  writeFileSync(file, JSON.stringify({ port: 0, host: '127.0.0.1', workers: 2, logLevel: 'info', ...config }))
  return file
}

export const mainScript = fileURLToPath(new URL('../../src/main.js', import.meta.url))

export interface RunningHermes {
  readonly child: ChildProcess
  readonly lines: string[]
  /** Resolves with the first log line (parsed) for which `match` is true. */
  waitForLog (match: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  stderr (): string
}

/** Runs `node dist/src/main.js ARGS` as a real process; it is killed in teardown if still alive. */
export function spawnHermes (t: { teardown (fn: () => unknown): void }, args: string[], env: NodeJS.ProcessEnv = {}): RunningHermes {
  // A test's config file names its database; a DATABASE_URL inherited from the developer's shell would override it.
  const child = spawn(process.execPath, [mainScript, ...args], { env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let err = ''
  const waiters: Array<() => void> = []
  let partial = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString()
    const parts = partial.split('\n')
    partial = parts.pop()!
    lines.push(...parts.filter((l) => l !== ''))
    for (const w of waiters.splice(0)) w()
  })
  child.stderr!.on('data', (chunk: Buffer) => { err += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { for (const w of waiters.splice(0)) w(); resolve({ code, signal }) })
  })
  // If the test process itself ends early (a timeout, a crash), take the child with it.
  const killOnExit = (): void => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }
  process.once('exit', killOnExit)
  onFatalSignal()
  t.teardown(async () => {
    process.off('exit', killOnExit)
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const waitForLog = async (match: (entry: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs
    for (let seen = 0; ;) {
      for (; seen < lines.length; seen++) {
        try {
          const entry = JSON.parse(lines[seen]!) as Record<string, unknown>
          if (match(entry)) return entry
        } catch {}
      }
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`hermes exited (${child.exitCode ?? child.signalCode}): ${err}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching log line within ${timeoutMs} ms; stderr: ${err}`)
      await new Promise<void>((resolve) => { const timer = setTimeout(resolve, left); waiters.push(() => { clearTimeout(timer); resolve() }) })
    }
  }
  return { child, lines, waitForLog, exited, stderr: () => err }
}

/** Child processes of the bench: started, waited for, measured (CPU, RSS) and always stopped. */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export interface Server {
  readonly child: ChildProcess
  readonly port: number
  readonly lines: string[]
}

const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** Spawns `node [nodeArgs] script args` and resolves once a JSON stdout line yields a port. */
export async function startServer (script: string, args: string[], env: NodeJS.ProcessEnv, portOf: (line: Record<string, unknown>) => number | undefined, nodeArgs: readonly string[] = []): Promise<Server> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], { env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    running.add(child)
    const lines: string[] = []
    let buffer = ''
    let resolved = false
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        if (lines.length < 10_000) lines.push(line)
        if (resolved) continue
        try {
          const port = portOf(JSON.parse(line) as Record<string, unknown>)
          if (port !== undefined) { resolved = true; resolve({ child, port, lines }) }
        } catch {}
      }
    })
    child.once('exit', (code) => {
      running.delete(child)
      if (!resolved) reject(new Error(`${script} exited (${code}) before listening`))
    })
  })
}

/** The port of a server that prints {"msg":"listening","port":N} (the bench's own servers). */
export const listeningPort = (line: Record<string, unknown>): number | undefined => line['msg'] === 'listening' ? line['port'] as number : undefined

/** The fast loopback Twilio (bench/fast-provider.ts) in its own process. */
export async function startFastProvider (): Promise<Server> {
  return await startServer(fileURLToPath(new URL('./fast-provider.js', import.meta.url)), [], {}, listeningPort)
}

export async function stopServer (server: Server): Promise<void> {
  const { child } = server
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  await exited
  clearTimeout(timer)
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

/** CPU seconds used so far by every process named `name` (e.g. all PostgreSQL backends), from /proc. */
export function cpuSecondsOf (name: string): number {
  let total = 0
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) total += cpuSeconds(Number(entry))
    } catch {}
  }
  return total
}

export { rssBytes } from '../src/harness/rss.js'

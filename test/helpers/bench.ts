import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

interface Teardown { teardown (fn: () => unknown): void }

const runScript = fileURLToPath(new URL('../../bench/run.js', import.meta.url))

/** Runs `npm run bench` (its built script) with these arguments to its end; killed if the test ends first. */
export async function runBench (t: Teardown, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [runScript, ...args], { env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, stdout, stderr }
}

/**
 * CPU per test file: runs each file alone under tap against a PostgreSQL
 * server of this script's own, and reads the CPU of tap's process tree
 * (getrusage of reaped children, through /usr/bin/time) plus the server's
 * (its postmaster's own and reaped children's counters, and its live
 * backends'). Process-tree counters, not wall time, because the machine is shared.
 *
 *   node dist/bench/test-cpu.js [--lanes 2] [--server embedded] [FILE…]
 *
 * Prints one JSON line per file and a table sorted by CPU.
 */
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { parseArgs } from 'node:util'
import { isServerKind, startPostgresServer, type PostgresServer } from '../src/harness/postgres-server.js'

const tick = 100 // USER_HZ on Linux

interface FileCpu { file: string, tapCpu: number, pgCpu: number, wall: number, ok: boolean }

/** The CPU seconds a server has used so far: its postmaster, the children it reaped, and those alive. */
function serverCpu (server: PostgresServer): number {
  const pid = Number(readFileSync(join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  let ticks = 0
  const self = stat(pid)
  if (self !== null) ticks += self.utime + self.stime + self.cutime + self.cstime
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const s = stat(Number(entry))
    if (s !== null && s.ppid === pid) ticks += s.utime + s.stime
  }
  return ticks / tick
}

function stat (pid: number): { ppid: number, utime: number, stime: number, cutime: number, cstime: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) }
  } catch { return null }
}

async function runOne (file: string, server: PostgresServer, kind: string): Promise<FileCpu> {
  const before = serverCpu(server)
  const started = Date.now()
  const tap = new URL('../../node_modules/tap/dist/esm/run.mjs', import.meta.url).pathname
  const env: NodeJS.ProcessEnv = { ...process.env, HERMES_TEST_ADMIN_URL: server.adminUrl, HERMES_TEST_SERVER: kind }
  delete env['DATABASE_URL']
  const child = spawn('/usr/bin/time', ['-f', 'CPU %U %S', process.execPath, tap, '--jobs=1', `--test-arg=${kind}`, `dist/test/${file}.test.js`], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  child.stdout.resume()
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)))
  const m = /CPU ([\d.]+) ([\d.]+)/.exec(err)
  const tapCpu = m === null ? NaN : Number(m[1]) + Number(m[2])
  // Backends end a moment after their clients: wait for them to be reaped before reading the server again.
  await new Promise((resolve) => setTimeout(resolve, 300))
  return { file, tapCpu, pgCpu: serverCpu(server) - before, wall: (Date.now() - started) / 1000, ok: code === 0 }
}

const { values, positionals } = parseArgs({ options: { lanes: { type: 'string' }, server: { type: 'string' } }, allowPositionals: true })
const kind = values.server ?? 'embedded'
if (!isServerKind(kind)) throw new Error(`not a server kind: ${kind}`)
const files = positionals.length > 0 ? positionals : readdirSync(new URL('../test/', import.meta.url)).filter((f) => f.endsWith('.test.js')).map((f) => f.slice(0, -'.test.js'.length))
// As test/run.ts does: servers of a test's own start from a copy of one initialised data directory.
const templates = await mkdtemp(join(tmpdir(), 'hermes-templates-'))
await chmod(templates, 0o777)
process.env['HERMES_TEST_TEMPLATES'] = templates
const queue = [...files]
const results: FileCpu[] = []
await Promise.all(Array.from({ length: Number(values.lanes ?? 1) }, async () => {
  const server = await startPostgresServer(kind, { settings: { max_connections: '300' } })
  try {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const r = await runOne(file, server, kind)
      results.push(r)
      console.log(JSON.stringify(r))
    }
  } finally { await server.destroy() }
}))
await rm(templates, { recursive: true, force: true })
results.sort((a, b) => (b.tapCpu + b.pgCpu) - (a.tapCpu + a.pgCpu))
let tapSum = 0
let pgSum = 0
for (const r of results) {
  tapSum += r.tapCpu
  pgSum += r.pgCpu
  console.log(`${(r.tapCpu + r.pgCpu).toFixed(1).padStart(6)} ${r.tapCpu.toFixed(1).padStart(6)} ${r.pgCpu.toFixed(1).padStart(6)} ${r.wall.toFixed(1).padStart(6)} ${r.ok ? 'ok  ' : 'FAIL'} ${r.file}`)
}
console.log(`total CPU ${(tapSum + pgSum).toFixed(1)} s (tap tree ${tapSum.toFixed(1)}, server ${pgSum.toFixed(1)}) over ${results.length} files`)

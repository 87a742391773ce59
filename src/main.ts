#!/usr/bin/env node
/**
 * The `hermes` command line: `serve` (the default) runs Hermes until
 * SIGTERM/SIGINT, re-reading its configuration on SIGHUP; `redispatch`
 * re-queues dead letters. Options may come before or after the command.
 */
import { parseArgs } from 'node:util'
import { loadConfig, type HermesConfig } from './config.js'
import { ConfigError } from './errors.js'
import { startHermes } from './hermes.js'
import { createLogger } from './log.js'
import { redispatchCommand, redispatchHelp, redispatchOptions } from './cli/redispatch-command.js'

const usage = `Usage: hermes [--config FILE] [serve]
       hermes [--config FILE] redispatch --status failed [--provider NAME]

Commands:
  serve        run Hermes (the default): HTTP on the configured port, until SIGTERM
               or SIGINT; SIGHUP re-reads the configuration file
  redispatch   put dead letters back in the dispatch queue (redispatch --help)

Options:
  -c, --config FILE   the JSON configuration (else HERMES_CONFIG; else the
                      development default)
  -h, --help          this help

Environment: PORT, DATABASE_URL, HERMES_ACK, HERMES_WORKERS, LOG_LEVEL override
the file; HERMES_CONFIG names it.
`

const commonOptions = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' }
} as const

/** Exit codes: 0 done, 1 failed while running, 2 bad command line or configuration. */
async function main (): Promise<number> {
  const argv = process.argv.slice(2)
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: { ...commonOptions, ...redispatchOptions }, allowPositionals: true, strict: true })
  } catch (error) {
    return usageError(error instanceof Error ? error.message : String(error))
  }
  const { values, positionals } = parsed
  const command = positionals[0] ?? 'serve'
  if (positionals.length > 1) return usageError(`unexpected argument "${positionals[1]}"`)
  if (command !== 'serve' && command !== 'redispatch') return usageError(`unknown command "${command}"`)
  if (values.help === true) {
    process.stdout.write(command === 'redispatch' ? redispatchHelp : usage)
    return 0
  }
  if (command === 'serve' && (values.status !== undefined || values.provider !== undefined)) {
    return usageError('--status and --provider belong to the redispatch command')
  }

  const load = (): HermesConfig => loadConfig({ argv: values.config === undefined ? [] : ['--config', values.config], env: process.env, cwd: process.cwd() })
  let config: HermesConfig
  try {
    config = load()
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`hermes: ${error.message}\n`)
      return 2
    }
    throw error
  }
  const log = createLogger(config.logLevel)

  if (command === 'redispatch') {
    try {
      await redispatchCommand({ status: values.status, provider: values.provider }, config, log)
      return 0
    } catch (error) {
      process.stderr.write(`hermes redispatch: ${describe(error)}\n`)
      return error instanceof TypeError ? 2 : 1
    }
  }

  let hermes: Awaited<ReturnType<typeof startHermes>> | undefined
  let draining = false
  let lostWhileStarting = false
  // Until Hermes runs there is nothing to reload; SIGHUP must not kill the process meanwhile.
  process.on('SIGHUP', () => {
    if (hermes === undefined) log.warn({ code: 'HERMES_ERR_RELOAD' }, 'SIGHUP during start-up ignored; send it again once "hermes started" is logged')
    else hermes.reload(load).catch(() => {}) // hermes.reload logs what changed, or why nothing did
  })
  try {
    hermes = await startHermes(config, {
      log,
      onThreadLost: () => { if (hermes === undefined) lostWhileStarting = true; else shutdown('thread lost', 1) }
    })
  } catch (error) {
    process.stderr.write(`hermes: failed to start: ${describe(error)}\n`)
    return 1
  }
  const running = hermes
  function shutdown (reason: NodeJS.Signals | 'thread lost', exitCode: number): void {
    if (draining) {
      // A second Ctrl-C means "now"; a repeated SIGTERM (supervisors often send two) changes nothing.
      if (reason === 'SIGINT') {
        log.warn({ signal: reason }, 'second interrupt: exiting without draining')
        process.exit(1)
      }
      return
    }
    draining = true
    log.info({ reason }, 'draining')
    running.stop().then(() => process.exit(exitCode), (error: unknown) => {
      log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM', 0))
  process.on('SIGINT', () => shutdown('SIGINT', 0))
  if (lostWhileStarting) shutdown('thread lost', 1)
  return -1 // keep running
}

function usageError (message: string): number {
  process.stderr.write(`hermes: ${message}\n\n${usage}`)
  return 2
}

function describe (error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: unknown }).code
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ''
  return `${typeof code === 'string' ? `${code}: ` : ''}${error.message}${cause}`
}

main().then((code) => {
  if (code >= 0) process.exit(code)
}, (error: unknown) => {
  process.stderr.write(`hermes: ${describe(error)}\n`)
  process.exit(1)
})

#!/usr/bin/env node
/**
 * `npm start` / `node dist/src/main.js [--config file.json]`: loads and
 * validates the configuration, starts Hermes, and drains on SIGTERM/SIGINT.
 * `node dist/src/main.js redispatch --status failed [--provider NAME]`
 * re-queues dead letters (`npm run hermes -- redispatch …`).
 */
import { loadConfig } from './config.js'
import { ConfigError } from './errors.js'
import { startHermes } from './hermes.js'
import { createLogger } from './log.js'
import { redispatchCommand } from './cli/redispatch-command.js'

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const command = args[0] !== undefined && !args[0].startsWith('-') ? args[0] : 'serve'
  let config
  try {
    config = loadConfig({ argv: args, env: process.env, cwd: process.cwd() })
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`hermes: ${error.message}\n`)
      process.exit(2)
    }
    throw error
  }
  const log = createLogger(config.logLevel)
  if (command === 'redispatch') {
    await redispatchCommand(args.slice(1), config, log)
    return
  }
  if (command !== 'serve') {
    process.stderr.write(`hermes: unknown command "${command}"; commands: serve (default), redispatch --status failed [--provider NAME]\n`)
    process.exit(2)
  }
  const hermes = await startHermes(config, { log })
  let draining = false
  const shutdown = (signal: NodeJS.Signals): void => {
    if (draining) {
      // A second Ctrl-C means "now"; a repeated SIGTERM (supervisors often send two) changes nothing.
      if (signal === 'SIGINT') {
        log.warn({ signal }, 'second interrupt: exiting without draining')
        process.exit(1)
      }
      return
    }
    draining = true
    log.info({ signal }, 'draining')
    hermes.stop().then(() => process.exit(0), (error: unknown) => {
      log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

function describe (error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: unknown }).code
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ''
  return `${typeof code === 'string' ? `${code}: ` : ''}${error.message}${cause}`
}

main().catch((error: unknown) => {
  process.stderr.write(`hermes: failed to start: ${describe(error)}\n`)
  process.exit(1)
})

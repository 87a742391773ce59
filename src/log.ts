import pino, { type Logger } from 'pino'

export type { Logger }

/**
 * One JSON line per event. Secrets and bodies are redacted by path so that a
 * careless `log.info({ config })` or `{ req }` cannot leak them.
 */
export function createLogger (level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'hermes' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: [
        'secret', 'secrets', '*.secret', '*.secrets', '*.*.secrets',
        'authToken', 'apiKey', '*.authToken', '*.apiKey', '*.*.authToken', '*.*.apiKey',
        'password', '*.password', 'body', '*.body', 'headers.authorization'
      ],
      censor: '[redacted]'
    }
  }
  return destination === undefined ? pino(options) : pino(options, destination)
}

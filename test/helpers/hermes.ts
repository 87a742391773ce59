import { request } from 'node:http'
import { resolveConfig, type HermesConfig } from '../../src/config.js'
import { startHermes, type Hermes, type StartOptions } from '../../src/hermes.js'
import { createLogger } from '../../src/log.js'
import { until } from '../../src/harness/wait.js'
import { seedSignature } from '../../src/harness/sign.js'
import { testDatabase, type TestDatabase } from '../../src/harness/database.js'
import { threadExecArgv } from '../../src/harness/thread-exec-argv.js'

export const SECRET = 'test-secret'

interface TestContext { teardown (fn: () => unknown): void }

export interface TestHermes {
  readonly hermes: Hermes
  readonly db: TestDatabase
  readonly config: HermesConfig
  readonly base: string
  post (channel: string, payload: unknown, headers?: Record<string, string>): Promise<HttpAnswer>
  postSigned (channel: string, payload: unknown, headers?: Record<string, string>): Promise<HttpAnswer>
}

export interface HttpAnswer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly text: string
  readonly json: any
}

/** The config a test runs with: the three default channels signed with SECRET, port 0, quiet logs. */
export function testConfig (databaseUrl: string, overrides: Record<string, unknown> = {}): HermesConfig {
  return resolveConfig({
    port: 0,
    host: '127.0.0.1',
    workers: 2,
    logLevel: process.env['HERMES_TEST_LOG'] ?? 'silent',
    database: { url: databaseUrl },
    channels: {
      sms: { provider: 'mock', secrets: [SECRET] },
      mms: { provider: 'mock', secrets: [SECRET] },
      email: { provider: 'mock', secrets: [SECRET, 'second-secret'] }
    },
    providers: { mock: { kind: 'mock' } },
    ...overrides
  }, {})
}

export { threadExecArgv }

/** Starts Hermes on a fresh database; everything is stopped in teardown (its threads without tap's module hooks, unless options say otherwise). */
export async function startTestHermes (t: TestContext, overrides: Record<string, unknown> = {}, db?: TestDatabase, options: StartOptions = {}): Promise<TestHermes> {
  const database = db ?? await testDatabase(t)
  const config = testConfig(database.url, overrides)
  const hermes = await startHermes(config, { log: createLogger(config.logLevel), threadExecArgv, ...options })
  t.teardown(() => hermes.stop())
  const base = `http://127.0.0.1:${hermes.port}`
  const post = async (channel: string, payload: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> =>
    await send('POST', `${base}/webhooks/${channel}`, typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload), headers)
  return {
    hermes,
    db: database,
    config,
    base,
    post,
    postSigned: async (channel, payload, headers = {}) => {
      const body = typeof payload === 'string' ? payload : JSON.stringify(payload)
      return await post(channel, body, { ...seedSignature(SECRET, body), ...headers })
    }
  }
}

/** One HTTP request over loopback with node:http (a fresh connection each time, so no keep-alive state leaks between tests). */
export async function send (method: string, url: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try { json = JSON.parse(text) } catch { json = undefined }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body !== undefined) req.end(body)
    else req.end()
  })
}

let counter = 0
/** A valid sms payload with a unique id. */
export function smsPayload (extra: Record<string, unknown> = {}): Record<string, unknown> {
  counter++
  return { id: `t-${process.pid}-${counter}`, from: '+14155552671', to: '+12125551234', body: `hello ${counter}`, ...extra }
}

/** One series' value from Hermes' /metrics (`name{labels}` exactly as exposed), 0 when absent. */
export async function metric (base: string, series: string): Promise<number> {
  const text = (await send('GET', `${base}/metrics`)).text
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

/** Waits (up to deadlineMs) until `count` messages in the database behind `query` are sent. */
export async function untilSent (query: (sql: string) => Promise<{ rows: any[] }>, count: number, deadlineMs = 20_000): Promise<void> {
  await until(`${count} messages to be sent`, deadlineMs, async () => {
    const { rows } = await query("SELECT count(*)::int AS n FROM message WHERE dispatch_status = 'sent'")
    return rows[0]['n'] === count ? true : undefined
  })
}

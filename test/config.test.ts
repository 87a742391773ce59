import t from 'tap'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { ConfigError } from '../src/errors.js'
import { DEVELOPMENT_SECRET, loadConfig, redactedConfig, resolveConfig } from '../src/config.js'

const cwd = '/srv/hermes'

/** The file shape from design.md. */
function designExample (): Record<string, unknown> {
  return {
    ack: 'durable',
    maxBodyBytes: 65536,
    buffer: { maxMessages: 100000 },
    channels: {
      sms: { provider: 'twilio', secrets: ['current-secret', 'previous-secret'] },
      mms: { provider: 'twilio', secrets: ['current-secret'] },
      email: { provider: 'sendgrid', secrets: ['email-secret'] }
    },
    providers: {
      twilio: {
        kind: 'twilio',
        baseUrl: 'https://api.twilio.com',
        accountSid: 'AC123',
        authToken: 'token',
        rateLimit: { perSecond: 100, burst: 100 },
        concurrency: 32,
        retry: { maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 600000 }
      },
      sendgrid: {
        kind: 'sendgrid',
        baseUrl: 'https://api.sendgrid.com',
        apiKey: 'key',
        rateLimit: { perSecond: 600, burst: 600 },
        concurrency: 32
      }
    }
  }
}

function problemsOf (fn: () => unknown): readonly string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

t.test('a file with only channels and providers gets every default', async (t) => {
  const config = resolveConfig({
    channels: { sms: { provider: 'mock', secrets: ['s'] } },
    providers: { mock: { kind: 'mock' } }
  }, {}, cwd)
  t.strictSame(config, {
    port: 8080,
    host: '0.0.0.0',
    publicUrl: null,
    ack: 'durable',
    ackTimeoutMs: 10000,
    maxBodyBytes: 65536,
    buffer: { maxMessages: 100000, maxBytes: 64 * 1024 * 1024 },
    workers: availableParallelism(),
    taskRecords: 256,
    backgroundNice: 10,
    writer: { maxBatchRows: 5000, maxBatchDelayMs: 2, maxQueuedRows: 50000 },
    signature: { toleranceSeconds: 300 },
    dispatch: { leaseMs: 60000, pollMs: 500, nice: 10 },
    retention: { days: null, intervalMs: 600000, firstSweepMs: 30000, batchRows: 5000 },
    fleet: { heartbeatMs: 1000, deadAfterMs: 3000, pauseMs: 1000, maxPauseMs: 60000 },
    database: { url: null, embeddedDir: join(cwd, '.hermes', 'postgres'), embeddedPort: 54320 },
    channels: { sms: { name: 'sms', type: 'sms', provider: 'mock', secrets: ['s'], format: 'hermes', authTokens: [], basicAuth: [], publicKeys: [], maxBodyBytes: 65536 } },
    providers: {
      mock: {
        name: 'mock',
        kind: 'mock',
        baseUrl: null,
        accountSid: null,
        authToken: null,
        apiKey: null,
        from: null,
        rateLimit: { perSecond: 100, burst: 100 },
        concurrency: 32,
        retry: { maxAttempts: 12, baseDelayMs: 500, maxDelayMs: 600000 },
        timeoutMs: 10000,
        eventWebhookPublicKeys: [],
        callbackUrl: null
      }
    },
    logLevel: 'info',
    shutdownTimeoutMs: 15000,
    tls: null,
    developmentSecret: false
  })
})

t.test('no config at all runs the development default on the mock provider', async (t) => {
  const config = resolveConfig(undefined, {}, cwd)
  t.equal(config.developmentSecret, true)
  t.equal(DEVELOPMENT_SECRET, 'hermes-development-secret')
  t.strictSame(Object.keys(config.channels), ['sms', 'mms', 'email'])
  for (const name of ['sms', 'mms', 'email']) {
    t.strictSame(config.channels[name], { name, type: name, provider: 'mock', secrets: [DEVELOPMENT_SECRET], format: 'hermes', authTokens: [], basicAuth: [], publicKeys: [], maxBodyBytes: 65536 })
  }
  t.strictSame(Object.keys(config.providers), ['mock'])
  t.equal(config.providers.mock.kind, 'mock')
  t.equal(config.database.url, null, 'an embedded database')
  t.equal(config.port, 8080)
})

t.test('the design.md example is accepted as written', async (t) => {
  const config = resolveConfig(designExample(), {}, cwd)
  t.equal(config.developmentSecret, false)
  t.strictSame(config.channels.sms, { name: 'sms', type: 'sms', provider: 'twilio', secrets: ['current-secret', 'previous-secret'], format: 'hermes', authTokens: [], basicAuth: [], publicKeys: [], maxBodyBytes: 65536 })
  t.equal(config.channels.email.type, 'email', 'the type defaults to the channel name')
  t.match(config.providers.twilio, { kind: 'twilio', baseUrl: 'https://api.twilio.com', accountSid: 'AC123', authToken: 'token', apiKey: null })
  t.strictSame(config.providers.sendgrid.rateLimit, { perSecond: 600, burst: 600 })
  t.strictSame(config.providers.sendgrid.retry, { maxAttempts: 12, baseDelayMs: 500, maxDelayMs: 600000 }, 'retry defaults')
})

t.test('every field can be set in the file', async (t) => {
  const config = resolveConfig({
    $comment: 'comments are allowed at the top level and inside objects',
    port: 0,
    host: '127.0.0.1',
    ack: 'enqueued',
    ackTimeoutMs: 2500,
    maxBodyBytes: 1024,
    buffer: { maxMessages: 10, maxBytes: 10240 },
    workers: 3,
    taskRecords: 64,
    backgroundNice: 0,
    writer: { maxBatchRows: 100, maxBatchDelayMs: 0, maxQueuedRows: 1000 },
    signature: { toleranceSeconds: 60 },
    database: { url: 'postgres://hermes@db:5432/hermes', embeddedDir: 'data/pg', embeddedPort: 55000 },
    logLevel: 'debug',
    shutdownTimeoutMs: 1000,
    channels: { $comment: 'x', alerts: { type: 'email', provider: 'web', secrets: ['a', 'b'] } },
    providers: {
      web: {
        $comment: 'the seed generic client',
        kind: 'http',
        baseUrl: 'http://127.0.0.1:9999/base/',
        apiKey: 'k',
        from: 'hermes@example.com',
        rateLimit: { perSecond: 0.5 },
        concurrency: 1,
        retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
        timeoutMs: 50
      }
    }
  }, {}, cwd)
  t.match(config, {
    port: 0,
    host: '127.0.0.1',
    ack: 'enqueued',
    ackTimeoutMs: 2500,
    maxBodyBytes: 1024,
    buffer: { maxMessages: 10, maxBytes: 10240 },
    workers: 3,
    taskRecords: 64,
    backgroundNice: 0,
    writer: { maxBatchRows: 100, maxBatchDelayMs: 0, maxQueuedRows: 1000 },
    signature: { toleranceSeconds: 60 },
    database: { url: 'postgres://hermes@db:5432/hermes', embeddedDir: join(cwd, 'data/pg'), embeddedPort: 55000 },
    logLevel: 'debug',
    shutdownTimeoutMs: 1000
  })
  t.strictSame(config.channels, { alerts: { name: 'alerts', type: 'email', provider: 'web', secrets: ['a', 'b'], format: 'hermes', authTokens: [], basicAuth: [], publicKeys: [], maxBodyBytes: 1024 } })
  t.match(config.providers.web, {
    kind: 'http',
    baseUrl: 'http://127.0.0.1:9999/base',
    apiKey: 'k',
    from: 'hermes@example.com',
    concurrency: 1,
    retry: { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 },
    timeoutMs: 50
  })
  t.equal(config.providers.web.baseUrl, 'http://127.0.0.1:9999/base', 'a trailing slash is dropped so clients can append paths')
  t.strictSame(config.providers.web.rateLimit, { perSecond: 0.5, burst: 1 }, 'a slow rate still gets a burst of one token')
})

t.test('environment variables override the file', async (t) => {
  const env = { PORT: '9090', DATABASE_URL: 'postgresql://u:p@h/db', HERMES_ACK: 'enqueued', HERMES_WORKERS: '2', LOG_LEVEL: 'warn' }
  const config = resolveConfig({ ...designExample(), port: 1234, ack: 'durable', workers: 7, logLevel: 'trace', database: { url: 'postgres://file/db' } }, env, cwd)
  t.match(config, { port: 9090, ack: 'enqueued', workers: 2, logLevel: 'warn', database: { url: 'postgresql://u:p@h/db' } })
})

t.test('environment variables override the development default too', async (t) => {
  const config = resolveConfig(undefined, { PORT: '0', HERMES_WORKERS: '1' }, cwd)
  t.equal(config.port, 0)
  t.equal(config.workers, 1)
  t.equal(config.developmentSecret, true)
})

t.test('empty or unrelated environment variables change nothing', async (t) => {
  const config = resolveConfig(designExample(), { PORT: '', DATABASE_URL: '', HERMES_ACK: '  ', HOME: '/root' }, cwd)
  t.match(config, { port: 8080, ack: 'durable', database: { url: null } })
})

t.test('a file that lists the development secret is flagged too', async (t) => {
  const file = designExample()
  file.channels = { sms: { provider: 'twilio', secrets: ['real', DEVELOPMENT_SECRET] } }
  t.equal(resolveConfig(file, {}, cwd).developmentSecret, true)
})

t.test('the result is deeply frozen', async (t) => {
  const config = resolveConfig(designExample(), {}, cwd)
  for (const part of [config, config.buffer, config.writer, config.signature, config.database, config.channels,
    config.channels.sms, config.channels.sms.secrets, config.providers, config.providers.twilio,
    config.providers.twilio.rateLimit, config.providers.twilio.retry]) {
    t.ok(Object.isFrozen(part))
  }
  t.throws(() => { (config as { port: number }).port = 1 }, TypeError)
  t.throws(() => { (config.channels.sms.secrets as string[]).push('x') }, TypeError)
})

t.test('the input object is not frozen or changed', async (t) => {
  const file = designExample()
  const before = JSON.stringify(file)
  resolveConfig(file, {}, cwd)
  t.equal(JSON.stringify(file), before)
  t.notOk(Object.isFrozen(file))
})

t.test('redactedConfig hides every secret and keeps the rest', async (t) => {
  const file = designExample()
  file.database = { url: 'postgres://hermes:s3cret@db:5432/hermes?sslmode=require&password=other' }
  const config = resolveConfig(file, {}, cwd)
  const redacted = redactedConfig(config)
  const text = JSON.stringify(redacted)
  for (const secret of ['current-secret', 'previous-secret', 'email-secret', 'token', '"key"', 's3cret', 'other']) {
    t.notOk(text.includes(secret), `${secret} is hidden`)
  }
  t.strictSame(JSON.parse(text), redacted, 'JSON-safe')
  t.match(redacted, {
    port: 8080,
    database: { url: 'postgres://hermes:[redacted]@db:5432/hermes?sslmode=require&password=[redacted]' },
    channels: { sms: { provider: 'twilio', secrets: ['[redacted]', '[redacted]'] }, email: { secrets: ['[redacted]'] } },
    providers: {
      twilio: { accountSid: 'AC123', authToken: '[redacted]', apiKey: null, baseUrl: 'https://api.twilio.com' },
      sendgrid: { apiKey: '[redacted]', authToken: null }
    }
  })
  t.equal(config.providers.twilio.authToken, 'token', 'the config itself is untouched')
})

t.test('redactedConfig leaves a database URL without a password readable', async (t) => {
  const config = resolveConfig(undefined, { DATABASE_URL: 'postgres://hermes@localhost/hermes' }, cwd)
  t.match(redactedConfig(config), { database: { url: 'postgres://hermes@localhost/hermes' }, developmentSecret: true })
})

t.test('loadConfig', async (t) => {
  const file = JSON.stringify({ ...designExample(), port: 7000 })
  const dir = t.testdir({
    'hermes.json': file,
    'bom.json': '\uFEFF' + file,
    'other.json': JSON.stringify({ ...designExample(), port: 7001 }),
    'broken.json': '{ "port": 80, }',
    'bad-field.json': JSON.stringify({ ...designExample(), ack: 'fast' })
  })

  t.test('reads --config <file>, relative to cwd', async (t) => {
    t.equal(loadConfig({ argv: ['--config', 'hermes.json'], env: {}, cwd: dir }).port, 7000)
  })
  t.test('reads --config=<file>', async (t) => {
    t.equal(loadConfig({ argv: [`--config=${join(dir, 'hermes.json')}`], env: {}, cwd: '/' }).port, 7000)
  })
  t.test('reads HERMES_CONFIG when there is no --config', async (t) => {
    t.equal(loadConfig({ argv: [], env: { HERMES_CONFIG: 'other.json' }, cwd: dir }).port, 7001)
  })
  t.test('--config wins over HERMES_CONFIG', async (t) => {
    t.equal(loadConfig({ argv: ['--config', 'hermes.json'], env: { HERMES_CONFIG: 'other.json' }, cwd: dir }).port, 7000)
  })
  t.test('applies environment overrides to the file', async (t) => {
    t.equal(loadConfig({ argv: ['--config', 'hermes.json'], env: { PORT: '0' }, cwd: dir }).port, 0)
  })
  t.test('accepts a byte-order mark', async (t) => {
    t.equal(loadConfig({ argv: ['--config', 'bom.json'], env: {}, cwd: dir }).port, 7000)
  })
  t.test('without a file runs the development default', async (t) => {
    const config = loadConfig({ argv: ['--port', '1'], env: {}, cwd: dir })
    t.equal(config.developmentSecret, true)
    t.equal(config.database.embeddedDir, join(dir, '.hermes', 'postgres'))
  })
  t.test('a missing file is a ConfigError naming it', async (t) => {
    t.strictSame(problemsOf(() => loadConfig({ argv: ['--config', 'nope.json'], env: {}, cwd: dir })),
      [`config file ${join(dir, 'nope.json')} cannot be read: no such file`])
  })
  t.test('invalid JSON is a ConfigError naming the file and the problem', async (t) => {
    const problems = problemsOf(() => loadConfig({ argv: [], env: { HERMES_CONFIG: 'broken.json' }, cwd: dir }))
    t.equal(problems.length, 1)
    t.match(problems[0], new RegExp(`^config file ${join(dir, 'broken.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON: .+`))
  })
  t.test('a directory is a ConfigError naming it', async (t) => {
    t.match(problemsOf(() => loadConfig({ argv: ['--config', '.'], env: {}, cwd: dir })), [`config file ${dir} cannot be read: EISDIR`])
  })
  t.test('a bad field in the file is reported like any other', async (t) => {
    t.strictSame(problemsOf(() => loadConfig({ argv: ['--config', 'bad-field.json'], env: {}, cwd: dir })), ['ack must be "durable" or "enqueued"'])
  })
  t.test('--config without a path is a ConfigError', async (t) => {
    for (const argv of [['--config'], ['--config='], ['--config', '--verbose']]) {
      t.strictSame(problemsOf(() => loadConfig({ argv, env: {}, cwd: dir })), ['--config needs a file path'], argv.join(' '))
    }
  })
})

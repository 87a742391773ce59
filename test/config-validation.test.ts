// Pins the exact message of every configuration rule (the operator reads these at start-up).
import t, { type Test } from 'tap'
import { ConfigError } from '../src/errors.js'
import { resolveConfig } from '../src/config.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Json = Record<string, unknown>

const twilio = (): Json => ({ kind: 'twilio', baseUrl: 'https://api.twilio.com', accountSid: 'AC123', authToken: 'token' })
const sendgrid = (): Json => ({ kind: 'sendgrid', baseUrl: 'https://api.sendgrid.com', apiKey: 'key' })
const sms = (): Json => ({ provider: 'twilio', secrets: ['secret'] })

function valid (): Json {
  return { channels: { sms: sms(), email: { provider: 'sendgrid', secrets: ['e'] } }, providers: { twilio: twilio(), sendgrid: sendgrid() } }
}
function withTop (fields: Json): Json { return { ...valid(), ...fields } }
function withProvider (name: string, provider: unknown): Json {
  return { ...valid(), providers: { twilio: twilio(), sendgrid: sendgrid(), [name]: provider } }
}
function withTwilio (fields: Json): Json { return withProvider('twilio', { ...twilio(), ...fields }) }
function withChannel (name: string, channel: unknown): Json {
  return { ...valid(), channels: { email: { provider: 'sendgrid', secrets: ['e'] }, [name]: channel } }
}
function withSms (fields: Json): Json { return withChannel('sms', { ...sms(), ...fields }) }

function problemsOf (raw: unknown, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    resolveConfig(raw, env, '/srv/hermes')
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

/** Each case: [what, raw config, env, the exact problems]. */
type Case = [string, unknown, NodeJS.ProcessEnv, string[]]

function check (t: Test, cases: Case[]): void {
  for (const [what, raw, env, expected] of cases) t.strictSame(problemsOf(raw, env), expected, what)
}

const topLevelKeys = 'port, host, publicUrl, ack, ackTimeoutMs, maxBodyBytes, buffer, workers, taskRecords, backgroundNice, writer, signature, dispatch, retention, fleet, database, channels, providers, logLevel, shutdownTimeoutMs, tls'
const timerRange = 'an integer from 1 to 2147483647'

t.test('the valid baseline has no problems', async (t) => {
  t.strictSame(problemsOf(valid()), [])
})

t.test('the configuration must be an object', async (t) => {
  check(t, [
    ['null', null, {}, ['the configuration must be a JSON object']],
    ['array', [], {}, ['the configuration must be a JSON object']],
    ['string', 'port: 80', {}, ['the configuration must be a JSON object']],
    ['number', 42, {}, ['the configuration must be a JSON object']]
  ])
})

t.test('unknown keys are typos', async (t) => {
  check(t, [
    ['top level', withTop({ prot: 80 }), {}, [`prot is not a known key (expected one of: ${topLevelKeys})`]],
    ['$comment is allowed', withTop({ $comment: 'fine' }), {}, []],
    ['in buffer', withTop({ buffer: { maxMesages: 1 } }), {}, ['buffer.maxMesages is not a known key (expected one of: maxMessages, maxBytes)']],
    ['in writer', withTop({ writer: { batchRows: 1 } }), {}, ['writer.batchRows is not a known key (expected one of: maxBatchRows, maxBatchDelayMs, maxQueuedRows)']],
    ['in a channel', withSms({ secret: 'x' }), {}, ['channels.sms.secret is not a known key (expected one of: type, provider, format, secrets, authTokens, basicAuth, publicKeys, maxBodyBytes)']],
    ['in a provider', withTwilio({ authtoken: 'x' }), {}, ['providers.twilio.authtoken is not a known key (expected one of: kind, baseUrl, accountSid, authToken, apiKey, from, rateLimit, concurrency, retry, timeoutMs, eventWebhookPublicKeys)']],
    ['in a rate limit', withTwilio({ rateLimit: { perSecnd: 5 } }), {}, ['providers.twilio.rateLimit.perSecnd is not a known key (expected one of: perSecond, burst)']],
    ['in a retry policy', withTwilio({ retry: { attempts: 5 } }), {}, ['providers.twilio.retry.attempts is not a known key (expected one of: maxAttempts, baseDelayMs, maxDelayMs)']]
  ])
})

t.test('server fields', async (t) => {
  check(t, [
    ['port 0 (ephemeral)', withTop({ port: 0 }), {}, []],
    ['port 65535', withTop({ port: 65535 }), {}, []],
    ['port -1', withTop({ port: -1 }), {}, ['port must be an integer from 0 to 65535']],
    ['port 65536', withTop({ port: 65536 }), {}, ['port must be an integer from 0 to 65535']],
    ['port 80.5', withTop({ port: 80.5 }), {}, ['port must be an integer from 0 to 65535']],
    ['port as a string', withTop({ port: '8080' }), {}, ['port must be an integer from 0 to 65535']],
    ['port null', withTop({ port: null }), {}, ['port must be an integer from 0 to 65535']],
    ['host empty', withTop({ host: '' }), {}, ['host must be a non-empty string']],
    ['host number', withTop({ host: 1 }), {}, ['host must be a non-empty string']],
    ['ack', withTop({ ack: 'fast' }), {}, ['ack must be "durable" or "enqueued"']],
    ['ackTimeoutMs 0', withTop({ ackTimeoutMs: 0 }), {}, [`ackTimeoutMs must be ${timerRange}`]],
    ['ackTimeoutMs past the timer limit', withTop({ ackTimeoutMs: 2 ** 31 }), {}, [`ackTimeoutMs must be ${timerRange}`]],
    ['shutdownTimeoutMs', withTop({ shutdownTimeoutMs: -5 }), {}, [`shutdownTimeoutMs must be ${timerRange}`]],
    ['logLevel', withTop({ logLevel: 'verbose' }), {}, ['logLevel must be one of fatal, error, warn, info, debug, trace, silent']],
    ['logLevel silent', withTop({ logLevel: 'silent' }), {}, []]
  ])
})

t.test('body and buffer sizes', async (t) => {
  const MiB = 1024 * 1024
  check(t, [
    ['maxBodyBytes 1024', withTop({ maxBodyBytes: 1024 }), {}, []],
    ['maxBodyBytes 16 MiB', withTop({ maxBodyBytes: 16 * MiB }), {}, []],
    ['maxBodyBytes 1023', withTop({ maxBodyBytes: 1023 }), {}, ['maxBodyBytes must be an integer from 1024 to 16777216']],
    ['maxBodyBytes over 16 MiB', withTop({ maxBodyBytes: 16 * MiB + 1 }), {}, ['maxBodyBytes must be an integer from 1024 to 16777216']],
    ['buffer not an object', withTop({ buffer: 5 }), {}, ['buffer must be an object']],
    ['buffer.maxMessages 0', withTop({ buffer: { maxMessages: 0 } }), {}, ['buffer.maxMessages must be a positive integer']],
    ['buffer.maxBytes 0', withTop({ buffer: { maxBytes: 0 } }), {}, ['buffer.maxBytes must be an integer from 1 to 1073741824']],
    ['buffer.maxBytes over 1 GiB', withTop({ buffer: { maxBytes: 1024 * MiB + 1 } }), {}, ['buffer.maxBytes must be an integer from 1 to 1073741824']],
    ['buffer.maxBytes exactly 2 × (maxBodyBytes + 4096)', withTop({ maxBodyBytes: 2048, buffer: { maxBytes: 12288 } }), {}, []],
    ['buffer.maxBytes below 2 × (maxBodyBytes + 4096)', withTop({ maxBodyBytes: 2048, buffer: { maxBytes: 12287 } }), {},
      ['buffer.maxBytes must be at least 2 × (maxBodyBytes + 4096) (12288) so the largest body always fits in the ring']],
    ['the default buffer is checked against a large maxBodyBytes', withTop({ maxBodyBytes: 16 * MiB, buffer: { maxBytes: 16 * MiB } }), {},
      [`buffer.maxBytes must be at least 2 × (maxBodyBytes + 4096) (${2 * (16 * MiB + 4096)}) so the largest body always fits in the ring`]],
    ['an invalid maxBodyBytes is not compared', withTop({ maxBodyBytes: 1, buffer: { maxBytes: 2048 } }), {},
      ['maxBodyBytes must be an integer from 1024 to 16777216']]
  ])
})

t.test('threads, writer and signature', async (t) => {
  check(t, [
    ['workers 0', withTop({ workers: 0 }), {}, ['workers must be a positive integer']],
    ['workers 1.5', withTop({ workers: 1.5 }), {}, ['workers must be a positive integer']],
    ['taskRecords 0', withTop({ taskRecords: 0 }), {}, ['taskRecords must be a positive integer']],
    ['backgroundNice 0 is allowed', withTop({ backgroundNice: 0 }), {}, []],
    ['backgroundNice -1', withTop({ backgroundNice: -1 }), {}, ['backgroundNice must be an integer from 0 to 19']],
    ['backgroundNice 20', withTop({ backgroundNice: 20 }), {}, ['backgroundNice must be an integer from 0 to 19']],
    ['backgroundNice "low"', withTop({ backgroundNice: 'low' }), {}, ['backgroundNice must be an integer from 0 to 19']],
    ['writer not an object', withTop({ writer: [] }), {}, ['writer must be an object']],
    ['writer.maxBatchRows 0', withTop({ writer: { maxBatchRows: 0 } }), {}, ['writer.maxBatchRows must be a positive integer']],
    ['writer.maxBatchDelayMs 0 is allowed', withTop({ writer: { maxBatchDelayMs: 0 } }), {}, []],
    ['writer.maxBatchDelayMs -1', withTop({ writer: { maxBatchDelayMs: -1 } }), {}, ['writer.maxBatchDelayMs must be an integer from 0 to 2147483647']],
    ['writer.maxQueuedRows 0', withTop({ writer: { maxQueuedRows: 0 } }), {}, ['writer.maxQueuedRows must be a positive integer']],
    ['signature.toleranceSeconds 0', withTop({ signature: { toleranceSeconds: 0 } }), {}, ['signature.toleranceSeconds must be a positive integer']]
  ])
})

t.test('database', async (t) => {
  check(t, [
    ['url null', withTop({ database: { url: null } }), {}, []],
    ['url postgresql://', withTop({ database: { url: 'postgresql://u:p@db:5432/hermes' } }), {}, []],
    ['url over a Unix socket', withTop({ database: { url: 'postgres:///hermes?host=/var/run/postgresql' } }), {}, []],
    ['url mysql://', withTop({ database: { url: 'mysql://db/hermes' } }), {}, ['database.url must be a postgres:// or postgresql:// URL']],
    ['url not a URL', withTop({ database: { url: 'db:5432' } }), {}, ['database.url must be a postgres:// or postgresql:// URL']],
    ['embeddedDir empty', withTop({ database: { embeddedDir: '' } }), {}, ['database.embeddedDir must be a non-empty string']],
    ['embeddedPort 0', withTop({ database: { embeddedPort: 0 } }), {}, ['database.embeddedPort must be an integer from 1 to 65535']]
  ])
})

t.test('channels', async (t) => {
  check(t, [
    ['missing channels and providers', {}, {}, ['providers is required', 'channels is required']],
    ['channels an array', withTop({ channels: [] }), {}, ['channels must be an object mapping channel names to channels']],
    ['channels empty', withTop({ channels: {} }), {}, ['channels must define at least one channel']],
    ['a channel name that is not a path segment', withChannel('sms/x', sms()), {},
      ['channel name "sms/x" must be 1-64 letters, digits, "_" or "-", starting with a letter or digit']],
    ['a channel that is not an object', withChannel('sms', 'twilio'), {}, ['channels.sms must be an object']],
    ['a custom name needs a type', withChannel('alerts', sms()), {},
      ['channels.alerts.type is required (one of sms, mms, email) when the channel name is not one of them']],
    ['a custom name with a type', withChannel('alerts', { ...sms(), type: 'mms' }), {}, []],
    ['a bad type', withSms({ type: 'fax' }), {}, ['channels.sms.type must be one of sms, mms, email']],
    ['an unknown provider', withSms({ provider: 'twillio' }), {}, ['channels.sms.provider "twillio" is not a configured provider']],
    ['provider missing', withChannel('sms', { secrets: ['s'] }), {}, ['channels.sms.provider is required']],
    ['provider not a string', withSms({ provider: 7 }), {}, ['channels.sms.provider must be a non-empty string']],
    ['a provider name inherited from Object.prototype', withSms({ provider: 'toString' }), {}, ['channels.sms.provider "toString" is not a configured provider']],
    ['secrets missing', withChannel('sms', { provider: 'twilio' }), {}, ['channels.sms.secrets must be a non-empty array of non-empty strings']],
    ['secrets empty', withSms({ secrets: [] }), {}, ['channels.sms.secrets must be a non-empty array of non-empty strings']],
    ['secrets a string', withSms({ secrets: 'secret' }), {}, ['channels.sms.secrets must be a non-empty array of non-empty strings']],
    ['an empty secret', withSms({ secrets: ['a', ''] }), {}, ['channels.sms.secrets must be a non-empty array of non-empty strings']],
    ['a number secret', withSms({ secrets: [1] }), {}, ['channels.sms.secrets must be a non-empty array of non-empty strings']]
  ])
})

t.test('at most 256 channels fit the ring record channel index', async (t) => {
  const channels = (n: number): Json => Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, { ...sms(), type: 'sms' }]))
  t.strictSame(problemsOf(withTop({ channels: channels(256) })), [])
  t.strictSame(problemsOf(withTop({ channels: channels(257) })), ['channels must define at most 256 channels (a ring record stores a one-byte channel index)'])
})

t.test('providers', async (t) => {
  check(t, [
    ['providers an array', withTop({ providers: [] }), {}, ['providers must be an object mapping provider names to providers']],
    ['providers empty, so channels are not checked against them', withTop({ providers: {} }), {},
      ['providers must define at least one provider', 'channels.sms.provider "twilio" is not a configured provider', 'channels.email.provider "sendgrid" is not a configured provider']],
    ['a provider name with a space', withProvider('my provider', { kind: 'mock' }), {},
      ['provider name "my provider" must be 1-64 letters, digits, "_" or "-", starting with a letter or digit']],
    ['a provider that is not an object', withProvider('x', true), {}, ['providers.x must be an object']],
    ['kind missing', withProvider('x', {}), {}, ['providers.x.kind must be one of twilio, sendgrid, http, mock']],
    ['kind unknown', withProvider('x', { kind: 'smtp' }), {}, ['providers.x.kind must be one of twilio, sendgrid, http, mock']],
    ['mock needs nothing else', withProvider('x', { kind: 'mock' }), {}, []],
    ['twilio credentials', withProvider('twilio', { kind: 'twilio' }), {}, [
      'providers.twilio.baseUrl is required for kind twilio',
      'providers.twilio.accountSid is required for kind twilio',
      'providers.twilio.authToken is required for kind twilio'
    ]],
    ['a null credential is missing', withTwilio({ authToken: null }), {}, ['providers.twilio.authToken is required for kind twilio']],
    ['sendgrid credentials', withProvider('sendgrid', { kind: 'sendgrid' }), {}, [
      'providers.sendgrid.baseUrl is required for kind sendgrid',
      'providers.sendgrid.apiKey is required for kind sendgrid'
    ]],
    ['http credentials', withProvider('web', { kind: 'http', baseUrl: 'http://localhost:4000' }), {}, ['providers.web.apiKey is required for kind http']],
    ['an empty credential', withTwilio({ accountSid: '' }), {}, ['providers.twilio.accountSid must be a non-empty string']],
    ['a credential of the wrong type', withTwilio({ authToken: 123 }), {}, ['providers.twilio.authToken must be a non-empty string']],
    ['from empty', withTwilio({ from: '' }), {}, ['providers.twilio.from must be a non-empty string']],
    ['baseUrl relative', withTwilio({ baseUrl: 'api.twilio.com' }), {}, ['providers.twilio.baseUrl must be an absolute http(s) URL']],
    ['baseUrl ftp', withTwilio({ baseUrl: 'ftp://api.twilio.com' }), {}, ['providers.twilio.baseUrl must be an absolute http(s) URL']],
    ['baseUrl without slashes', withTwilio({ baseUrl: 'https:api.twilio.com' }), {}, ['providers.twilio.baseUrl must be an absolute http(s) URL']],
    ['baseUrl not a string', withTwilio({ baseUrl: 42 }), {}, ['providers.twilio.baseUrl must be an absolute http(s) URL']]
  ])
})

t.test('provider limits', async (t) => {
  check(t, [
    ['rateLimit not an object', withTwilio({ rateLimit: 100 }), {}, ['providers.twilio.rateLimit must be an object']],
    ['perSecond 0', withTwilio({ rateLimit: { perSecond: 0 } }), {}, ['providers.twilio.rateLimit.perSecond must be a positive number']],
    ['perSecond negative', withTwilio({ rateLimit: { perSecond: -1 } }), {}, ['providers.twilio.rateLimit.perSecond must be a positive number']],
    ['perSecond a string', withTwilio({ rateLimit: { perSecond: '100' } }), {}, ['providers.twilio.rateLimit.perSecond must be a positive number']],
    ['perSecond fractional is fine', withTwilio({ rateLimit: { perSecond: 0.25 } }), {}, []],
    ['burst below one', withTwilio({ rateLimit: { perSecond: 10, burst: 0.5 } }), {}, ['providers.twilio.rateLimit.burst must be a number >= 1']],
    ['concurrency 0', withTwilio({ concurrency: 0 }), {}, ['providers.twilio.concurrency must be a positive integer']],
    ['timeoutMs 0', withTwilio({ timeoutMs: 0 }), {}, [`providers.twilio.timeoutMs must be ${timerRange}`]],
    ['retry not an object', withTwilio({ retry: 'always' }), {}, ['providers.twilio.retry must be an object']],
    ['retry.maxAttempts 0', withTwilio({ retry: { maxAttempts: 0 } }), {}, ['providers.twilio.retry.maxAttempts must be a positive integer']],
    ['retry.baseDelayMs negative', withTwilio({ retry: { baseDelayMs: -1 } }), {}, ['providers.twilio.retry.baseDelayMs must be an integer from 0 to 2147483647']],
    ['retry.maxDelayMs below baseDelayMs', withTwilio({ retry: { baseDelayMs: 1000, maxDelayMs: 999 } }), {},
      ['providers.twilio.retry.maxDelayMs must be at least retry.baseDelayMs (1000)']],
    ['retry.maxDelayMs below the default baseDelayMs', withTwilio({ retry: { maxDelayMs: 100 } }), {},
      ['providers.twilio.retry.maxDelayMs must be at least retry.baseDelayMs (500)']]
  ])
})

t.test('environment overrides are validated and named by their variable', async (t) => {
  const file = valid()
  check(t, [
    ['PORT not a number', file, { PORT: 'http' }, ['PORT must be an integer from 0 to 65535']],
    ['PORT too large', file, { PORT: '70000' }, ['PORT must be an integer from 0 to 65535']],
    ['PORT negative', file, { PORT: '-1' }, ['PORT must be an integer from 0 to 65535']],
    ['PORT with spaces around is fine', file, { PORT: ' 8081 ' }, []],
    ['DATABASE_URL', file, { DATABASE_URL: 'localhost:5432' }, ['DATABASE_URL must be a postgres:// or postgresql:// URL']],
    ['HERMES_ACK', file, { HERMES_ACK: 'DURABLE' }, ['HERMES_ACK must be "durable" or "enqueued"']],
    ['HERMES_WORKERS 0', file, { HERMES_WORKERS: '0' }, ['HERMES_WORKERS must be a positive integer']],
    ['HERMES_WORKERS 2.5', file, { HERMES_WORKERS: '2.5' }, ['HERMES_WORKERS must be a positive integer']],
    ['LOG_LEVEL', file, { LOG_LEVEL: 'loud' }, ['LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent']],
    ['on the development default too', undefined, { HERMES_WORKERS: 'many' }, ['HERMES_WORKERS must be a positive integer']],
    ['a bad file field is still reported when the env overrides it', withTop({ port: 'x' }), { PORT: '80' }, ['port must be an integer from 0 to 65535']]
  ])
})

t.test('every problem is collected into one ConfigError', async (t) => {
  const raw = {
    port: -1,
    ack: 'sometimes',
    buffer: { maxMessages: 0 },
    channels: { sms: { provider: 'twillio', secrets: [] } },
    providers: { twilio: { kind: 'twilio', baseUrl: 'https://api.twilio.com', rateLimit: { perSecond: 0 } } }
  }
  let err: unknown
  try { resolveConfig(raw, { LOG_LEVEL: 'loud' }, '/srv/hermes') } catch (e) { err = e }
  t.ok(err instanceof ConfigError)
  const expected = [
    'port must be an integer from 0 to 65535',
    'ack must be "durable" or "enqueued"',
    'buffer.maxMessages must be a positive integer',
    'providers.twilio.accountSid is required for kind twilio',
    'providers.twilio.authToken is required for kind twilio',
    'providers.twilio.rateLimit.perSecond must be a positive number',
    'channels.sms.provider "twillio" is not a configured provider',
    'channels.sms.secrets must be a non-empty array of non-empty strings',
    'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent'
  ]
  t.match(err, { name: 'ConfigError', code: 'HERMES_ERR_CONFIG', problems: expected })
  t.equal((err as ConfigError).message, `invalid configuration:\n  - ${expected.join('\n  - ')}`)
  t.strictSame((err as ConfigError).problems, expected)
})

t.test('dispatch lease, poll and nice are validated', async (t) => {
  t.throws(() => resolveConfig({ dispatch: { leaseMs: 5 } }, {}), { message: /dispatch\.leaseMs must be an integer from 100 to 2147483647/ })
  t.throws(() => resolveConfig({ dispatch: { pollMs: 'often' } }, {}), { message: /dispatch\.pollMs must be an integer from 10 to 2147483647/ })
  t.throws(() => resolveConfig({ dispatch: { nice: 20 } }, {}), { message: /dispatch\.nice must be an integer from 0 to 19/ })
  t.throws(() => resolveConfig({ dispatch: { nice: -1 } }, {}), { message: /dispatch\.nice must be an integer from 0 to 19/ })
  t.throws(() => resolveConfig({ dispatch: { nice: 'low' } }, {}), { message: /dispatch\.nice must be an integer from 0 to 19/ })
  const ok = resolveConfig({ dispatch: { leaseMs: 1000, pollMs: 50, nice: 0 }, channels: { sms: { provider: 'mock', secrets: ['s'] } }, providers: { mock: { kind: 'mock' } } }, {})
  t.same(ok.dispatch, { leaseMs: 1000, pollMs: 50, nice: 0 })
})

t.test('tls', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hermes-tls-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'cert.pem'), 'certificate')
  writeFileSync(join(dir, 'key.pem'), 'key')
  const base = { channels: { sms: { provider: 'mock', secrets: ['s'] } }, providers: { mock: { kind: 'mock' } } }
  t.same(resolveConfig({ ...base, tls: { certFile: 'cert.pem', keyFile: 'key.pem' } }, {}, dir).tls, { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }, 'paths resolve against the working directory')
  t.equal(resolveConfig(base, {}, dir).tls, null, 'no tls: plain HTTP')
  const problems = (tls: unknown): readonly string[] => {
    try { resolveConfig({ ...base, tls }, {}, dir); return [] } catch (error) { return (error as ConfigError).problems }
  }
  t.same(problems({ certFile: 'cert.pem' }), ['tls.keyFile is required'])
  t.match(problems({ certFile: 'missing.pem', keyFile: 'key.pem' }), [/^tls\.certFile .*missing\.pem cannot be read: ENOENT/])
  t.same(problems({ certFile: 'cert.pem', keyFile: 'key.pem', ca: 'x' }), ['tls.ca is not a known key (expected one of: certFile, keyFile)'])
})

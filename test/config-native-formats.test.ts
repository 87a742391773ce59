// Pins the exact messages of the provider-native settings: channel format, publicUrl, authTokens,
// basicAuth, publicKeys, per-channel maxBodyBytes and a provider's eventWebhookPublicKeys.
import t, { type Test } from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { ConfigError } from '../src/errors.js'
import { redactedConfig, resolveConfig } from '../src/config.js'

type Json = Record<string, unknown>

// SendGrid's published verification key (provider-webhooks.md).
const SENDGRID_KEY = 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=='
const PEM_KEY = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
const RSA_KEY = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' }).toString('base64')
const twilio = (): Json => ({ kind: 'twilio', baseUrl: 'https://api.twilio.com', accountSid: 'AC123', authToken: 'token' })
const sendgrid = (): Json => ({ kind: 'sendgrid', baseUrl: 'https://api.sendgrid.com', apiKey: 'key' })
const MiB = 1024 * 1024

function config (channels: Json, top: Json = {}, providers: Json = {}): Json {
  return { channels, providers: { twilio: twilio(), sendgrid: sendgrid(), mock: { kind: 'mock' }, ...providers }, ...top }
}

function problemsOf (raw: unknown): readonly string[] {
  try {
    resolveConfig(raw, {}, '/srv/hermes')
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

type Case = [string, unknown, string[]]
function check (t: Test, cases: Case[]): void {
  for (const [what, raw, expected] of cases) t.strictSame(problemsOf(raw), expected, what)
}

t.test('format defaults to hermes and accepts the two provider formats', async (t) => {
  const resolved = resolveConfig(config({
    sms: { provider: 'twilio', secrets: ['s'] },
    inbound: { type: 'sms', provider: 'twilio', format: 'twilio' },
    mail: { type: 'email', provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['parse:pw'], maxBodyBytes: 32 * MiB }
  }, { publicUrl: 'https://hermes.example.com/' }), {}, '/srv/hermes')
  t.equal(resolved.channels['sms']!.format, 'hermes')
  t.equal(resolved.channels['inbound']!.format, 'twilio')
  t.strictSame(resolved.channels['inbound']!.secrets, [], 'a provider format needs no secrets')
  t.equal(resolved.channels['mail']!.maxBodyBytes, 32 * MiB)
  t.equal(resolved.channels['sms']!.maxBodyBytes, resolved.maxBodyBytes, 'a channel limit defaults to the top-level one')
  t.equal(resolved.publicUrl, 'https://hermes.example.com', 'the trailing slash is dropped')
  t.equal(resolved.providers['twilio']!.callbackUrl, 'https://hermes.example.com/callbacks/twilio')
  t.equal(resolved.providers['sendgrid']!.callbackUrl, 'https://hermes.example.com/callbacks/sendgrid')
  t.equal(resolved.providers['mock']!.callbackUrl, null, 'only twilio and sendgrid providers take receipts')
})

t.test('without publicUrl no provider asks for receipts', async (t) => {
  const resolved = resolveConfig(config({ sms: { provider: 'twilio', secrets: ['s'] } }), {}, '/srv/hermes')
  t.equal(resolved.publicUrl, null)
  t.equal(resolved.providers['twilio']!.callbackUrl, null)
})

t.test('format and publicUrl', async (t) => {
  check(t, [
    ['unknown format', config({ sms: { provider: 'twilio', secrets: ['s'], format: 'json' } }), ['channels.sms.format must be one of hermes, twilio, sendgrid-parse']],
    ['publicUrl not a URL', config({ sms: { provider: 'twilio', secrets: ['s'] } }, { publicUrl: 'hermes.example.com' }),
      ['publicUrl must be an absolute http(s) URL without query or fragment, e.g. https://hermes.example.com']],
    ['publicUrl with a query', config({ sms: { provider: 'twilio', secrets: ['s'] } }, { publicUrl: 'https://h.example.com/?a=1' }),
      ['publicUrl must be an absolute http(s) URL without query or fragment, e.g. https://hermes.example.com']],
    ['publicUrl of another scheme', config({ sms: { provider: 'twilio', secrets: ['s'] } }, { publicUrl: 'ftp://h.example.com' }),
      ['publicUrl must be an absolute http(s) URL without query or fragment, e.g. https://hermes.example.com']],
    ['the hermes format still needs secrets', config({ sms: { provider: 'twilio' } }), ['channels.sms.secrets must be a non-empty array of non-empty strings']]
  ])
})

t.test('twilio format', async (t) => {
  check(t, [
    ['tokens from a twilio provider', config({ sms: { provider: 'twilio', format: 'twilio' } }), []],
    ['its own tokens on another provider', config({ sms: { provider: 'mock', format: 'twilio', authTokens: ['primary', 'secondary'] } }), []],
    ['no tokens anywhere', config({ sms: { provider: 'mock', format: 'twilio' } }),
      ['channels.sms.authTokens is required for format "twilio" unless the channel\'s provider is of kind twilio']],
    ['empty token list', config({ sms: { provider: 'twilio', format: 'twilio', authTokens: [] } }),
      ['channels.sms.authTokens must be a non-empty array of non-empty strings']],
    ['a token not a string', config({ sms: { provider: 'twilio', format: 'twilio', authTokens: [5] } }),
      ['channels.sms.authTokens must be a non-empty array of non-empty strings']],
    ['an email channel', config({ email: { provider: 'twilio', format: 'twilio' } }), ['channels.email.format "twilio" needs a channel of type sms or mms']],
    ['authTokens on a hermes channel', config({ sms: { provider: 'twilio', secrets: ['s'], authTokens: ['t'] } }),
      ['channels.sms.authTokens is only for format "twilio"']],
    ['secrets given but broken', config({ sms: { provider: 'twilio', format: 'twilio', secrets: [] } }),
      ['channels.sms.secrets must be a non-empty array of non-empty strings']]
  ])
})

t.test('sendgrid-parse format', async (t) => {
  check(t, [
    ['basic auth', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['user:pass'] } }), []],
    ['a base64 key', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', publicKeys: [SENDGRID_KEY] } }), []],
    ['a PEM key and basic auth', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', publicKeys: [PEM_KEY], basicAuth: ['u:p'] } }), []],
    ['neither', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse' } }),
      ['channels.email of format "sendgrid-parse" needs basicAuth or publicKeys (or both)']],
    ['basic auth without a colon', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['userpass'] } }),
      ['channels.email.basicAuth must be a non-empty array of "user:password" strings']],
    ['not a key', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', publicKeys: ['bm90IGEga2V5'] } }),
      ['channels.email.publicKeys must be a non-empty array of ECDSA P-256 public keys (base64 SPKI DER or PEM)']],
    ['an RSA key', config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', publicKeys: [RSA_KEY] } }),
      ['channels.email.publicKeys must be a non-empty array of ECDSA P-256 public keys (base64 SPKI DER or PEM)']],
    ['an sms channel', config({ sms: { provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['u:p'] } }),
      ['channels.sms.format "sendgrid-parse" needs a channel of type email']],
    ['basicAuth on a twilio channel', config({ sms: { provider: 'twilio', format: 'twilio', basicAuth: ['u:p'] } }),
      ['channels.sms.basicAuth is only for format "sendgrid-parse"']]
  ])
})

t.test('per-channel body limits', async (t) => {
  const ch = (maxBodyBytes: unknown): Json => config({ email: { provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['u:p'], maxBodyBytes } })
  check(t, [
    ['32 MiB', ch(32 * MiB), []],
    ['over 32 MiB', ch(32 * MiB + 1), ['channels.email.maxBodyBytes must be an integer from 1024 to 33554432']],
    ['too small', ch(100), ['channels.email.maxBodyBytes must be an integer from 1024 to 33554432']],
    ['not a number', ch('30MB'), ['channels.email.maxBodyBytes must be an integer from 1024 to 33554432']]
  ])
})

t.test('event webhook keys', async (t) => {
  check(t, [
    ['on a sendgrid provider', config({ sms: { provider: 'twilio', secrets: ['s'] } }, {}, { sendgrid: { ...sendgrid(), eventWebhookPublicKeys: [SENDGRID_KEY] } }), []],
    ['on a twilio provider', config({ sms: { provider: 'twilio', secrets: ['s'] } }, {}, { twilio: { ...twilio(), eventWebhookPublicKeys: [SENDGRID_KEY] } }),
      ['providers.twilio.eventWebhookPublicKeys is only for kind sendgrid']],
    ['not keys', config({ sms: { provider: 'twilio', secrets: ['s'] } }, {}, { sendgrid: { ...sendgrid(), eventWebhookPublicKeys: 'key' } }),
      ['providers.sendgrid.eventWebhookPublicKeys must be a non-empty array of ECDSA P-256 public keys (base64 SPKI DER or PEM)']]
  ])
})

t.test('the logged configuration hides tokens and passwords', async (t) => {
  const resolved = resolveConfig(config({
    sms: { provider: 'mock', format: 'twilio', authTokens: ['tok-a'] },
    email: { provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['parse:pw-1'] }
  }), {}, '/srv/hermes')
  const text = JSON.stringify(redactedConfig(resolved))
  t.notMatch(text, /tok-a|pw-1/)
  t.match(text, /parse:\[redacted\]/, 'the user name stays visible')
})

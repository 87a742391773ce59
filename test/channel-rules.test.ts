// What the workers are told about each channel's format and each receipt provider's credentials.
import t from 'tap'
import { resolveConfig } from '../src/config.js'
import { channelRules, providerRules } from '../src/process/channel-rules.js'

const config = resolveConfig({
  channels: {
    sms: { provider: 'twilio', format: 'twilio' },
    mms: { provider: 'twilio', format: 'twilio', authTokens: ['tok-new', 'tok-old'] },
    email: { provider: 'sendgrid', format: 'sendgrid-parse', basicAuth: ['u:p'] },
    json: { type: 'sms', provider: 'mock', secrets: ['s'] }
  },
  providers: {
    twilio: { kind: 'twilio', baseUrl: 'https://api.twilio.com', accountSid: 'AC1', authToken: 'tok-old' },
    sendgrid: { kind: 'sendgrid', baseUrl: 'https://api.sendgrid.com', apiKey: 'k' },
    mock: { kind: 'mock' }
  }
}, {})

t.test("a twilio channel's tokens are its own authTokens, else its provider's authToken", async (t) => {
  const rules = channelRules(config)
  t.same(rules.map((r) => [r.name, r.format, r.authTokens]), [['sms', 'twilio', ['tok-old']], ['mms', 'twilio', ['tok-new', 'tok-old']], ['email', 'sendgrid-parse', []], ['json', 'hermes', []]])
})

t.test('receipt providers are those of kind twilio and sendgrid; status callbacks accept every token of a rotation', async (t) => {
  t.same(providerRules(config).map((p) => [p.name, p.kind, p.authTokens]), [['twilio', 'twilio', ['tok-old', 'tok-new']], ['sendgrid', 'sendgrid', []]])
})

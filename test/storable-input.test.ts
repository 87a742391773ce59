// Property: whatever validation accepts, PostgreSQL stores. Generated webhooks (ids of every kind,
// E.164 numbers, email addresses with Unicode local parts and internationalized domains, attachment
// URLs with any scheme case, any text body, timestamps across the whole range) that validateWebhook
// accepts are posted to a real Hermes, through the workers and the writer's COPY and merge, and each
// must be answered 202 and stored, never 500 HERMES_ERR_STORE_REFUSED. Validation and schema.sql
// cannot drift apart unnoticed again. A second property: normalizing twice changes nothing, so one
// mailbox or URL has one stored spelling.
import t from 'tap'
import fc from 'fast-check'
import { Agent, request } from 'node:http'
import type { ChannelRule, RawWebhook } from '../src/process/types.js'
import { validateWebhook, type NormalizedMessage } from '../src/process/validate.js'
import { SECRET, startTestHermes } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'

const sms: ChannelRule = { name: 'sms', addressKind: 'phone', maxAttachments: 10, secrets: [SECRET] }
const email: ChannelRule = { name: 'email', addressKind: 'email', maxAttachments: 25, secrets: [SECRET] }

// Characters where JavaScript and PostgreSQL (libc, ICU) case mapping, NFC and IDNA are known to be subtle.
const tricky = ['é', 'É', 'e\u0301', 'İ', 'ı', 'ß', 'ẞ', 'Σ', 'ς', 'ǅ', 'ﬃ', '\u212a', '\u2126', 'Ⅻ', 'Ꭰ', 'ꭰ', 'Ａ', 'ａ', 'ǰ', 'ŉ', 'ΐ', '\u0345', 'Ω', 'ﾊ', '한', '\u{1f600}', '\u{10400}', '\u{1e900}']
const asciiLocal = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-!#$%&\'*/=?^`{|}~'.split('')
const localChar = fc.oneof(fc.constantFrom(...asciiLocal), fc.constantFrom(...tricky), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
const labelChar = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom('ü', 'Ü', 'ö', 'ß', 'д', 'Д', 'Σ', '例', 'ｅ', 'Ｅ', 'é', 'e\u0301', 'ı', 'İ') })
const label = fc.string({ unit: labelChar, minLength: 1, maxLength: 12 })
const domain = fc.tuple(fc.array(label, { minLength: 1, maxLength: 3 }), fc.constantFrom('com', 'ORG', 'example', 'xn--p1ai', 'рф', 'DE', 'museum'))
  .map(([labels, tld]) => `${labels.join('.')}.${tld}`)
const emailAddress = fc.tuple(fc.string({ unit: localChar, minLength: 1, maxLength: 20 }), domain, fc.constantFrom('', ' ', '\t'))
  .map(([local, host, pad]) => `${pad}${local}@${host}${pad}`)
const phone = fc.tuple(fc.integer({ min: 1, max: 9 }), fc.string({ unit: fc.constantFrom(...'0123456789'.split('')), minLength: 1, maxLength: 14 }), fc.constantFrom('', ' '))
  .map(([first, rest, pad]) => `${pad}+${first}${rest}${pad}`)

const anyCase = (s: string): fc.Arbitrary<string> => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })
  .map((upper) => [...s].map((c, i) => upper[i] === true ? c.toUpperCase() : c).join(''))
const pathChar = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@%/?#[]'.split('')) },
  { weight: 1, arbitrary: fc.constantFrom('ü', '\u00a0', '\u2007', '\u202f', '\ufeff', '\u180e', '\u200b', '\u0085', '\u3000', '\u{1f600}', '\\', '"', '{', '}', '\t') })
const url = fc.tuple(fc.oneof(anyCase('http'), anyCase('https'), anyCase('s3')), domain, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), fc.string({ unit: pathChar, maxLength: 40 }))
  .map(([scheme, host, port, path]) => `${scheme}://${host}${port === undefined ? '' : `:${port}`}/${path}`)

const id = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...tricky), minLength: 1, maxLength: 5 }),
  fc.maxSafeInteger(),
  fc.integer({ min: -1e6, max: 1e6 }).map((n) => n * 1000) // 1.5e3-style spellings reach JSON.stringify as integers
)
const body = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: fc.constantFrom('\\', '\t', '\n', '\r', '\\N', '.', '\u2028', '"', ...tricky), maxLength: 30 }))
const timestamp = fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .chain((d) => fc.constantFrom(d.toISOString(), d.toISOString().replace('Z', '+00:00'), d.toISOString().replace('.', ',')))

interface Generated { readonly channel: ChannelRule, readonly payload: Record<string, unknown> }

const webhook: fc.Arbitrary<Generated> = fc.oneof(
  fc.record({ id, from: phone, to: phone, body, attachments: fc.array(url, { maxLength: 10 }), timestamp: fc.option(timestamp, { nil: undefined }) }, { requiredKeys: ['from', 'to'] })
    .map((payload) => ({ channel: sms, payload })),
  fc.record({ id, from: emailAddress, to: emailAddress, body, attachments: fc.array(url, { maxLength: 5 }) }, { requiredKeys: ['from', 'to'] })
    .map((payload) => ({ channel: email, payload })),
  fc.record({ id: fc.constant(null), xillio_id: id, from: phone, to: phone, body }).map((payload) => ({ channel: sms, payload }))
)

function raw (channel: ChannelRule, text: string): RawWebhook {
  return { channel, body: Buffer.from(text, 'utf8'), providerSignature: '', webhookId: '', webhookTimestamp: '', webhookSignature: '', receivedAtMs: 0 }
}

/** The normalized message validation makes of `generated`, or null when it is refused. */
function accepted (generated: Generated): NormalizedMessage | null {
  const verdict = validateWebhook(raw(generated.channel, JSON.stringify(generated.payload)))
  return verdict.ok ? verdict.message : null
}

t.test('normalizing what validation accepts again changes nothing (one stored spelling per address, URL and id)', async (t) => {
  let acceptedCount = 0
  fc.assert(fc.property(webhook, (generated) => {
    const first = accepted(generated)
    if (first === null) return
    acceptedCount++
    const again = accepted({ channel: generated.channel, payload: { id: first.externalId, from: first.from, to: first.to, body: first.body, attachments: first.attachments } })
    if (again === null) throw new Error(`the normalized form is refused: ${JSON.stringify(first)}`)
    for (const key of ['externalId', 'from', 'to', 'body', 'attachments'] as const) {
      if (JSON.stringify(again[key]) !== JSON.stringify(first[key])) throw new Error(`${key} changes when normalized twice: ${JSON.stringify(first[key])} -> ${JSON.stringify(again[key])}`)
    }
  }), { numRuns: 3000, seed: 20261203 })
  t.ok(acceptedCount > 1000, `${acceptedCount} of 3000 generated webhooks were accepted (the generators aim at validity)`)
})

t.test('PostgreSQL stores every webhook validation accepts', async (t) => {
  const h = await startTestHermes(t)
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  t.teardown(() => agent.destroy())
  const post = async (channel: string, text: string): Promise<{ status: number, text: string }> => await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: h.hermes.port, method: 'POST', path: `/webhooks/${channel}`, agent, headers: { 'content-type': 'application/json', ...seedSignature(SECRET, text) } }, (res) => {
      let answer = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { answer += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: answer }))
    })
    req.on('error', reject)
    req.end(text)
  })
  let stored = 0
  await fc.assert(fc.asyncProperty(fc.array(webhook, { minLength: 10, maxLength: 25 }), async (batch) => {
    const valid = batch.map((g) => ({ g, message: accepted(g) })).filter((x): x is { g: Generated, message: NormalizedMessage } => x.message !== null)
    // Posted together so the writer merges them as one batch, as it does under load.
    const answers = await Promise.all(valid.map(async ({ g }) => await post(g.channel.name, JSON.stringify(g.payload))))
    answers.forEach((answer, i) => {
      if (answer.status !== 202) throw new Error(`accepted by validation, answered ${answer.status} ${answer.text}: ${JSON.stringify(valid[i]!.g.payload)}`)
    })
    for (const { g, message } of valid) {
      const row = await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM message m JOIN channel c ON c.id = m.channel_id WHERE c.name = $1 AND m.external_id = $2', [g.channel.name, message.externalId])
      if (row.rows[0]?.n !== 1) throw new Error(`answered 202 but not stored: ${JSON.stringify(g.payload)}`)
      stored++
    }
  }), { numRuns: 40, seed: 20261203 })
  const parties = await h.db.query<{ n: number }>("SELECT count(*)::int AS n FROM party WHERE email IS NOT NULL AND email !~ '^[ -~]*$'")
  t.ok(stored > 200, `${stored} generated webhooks stored, ${parties.rows[0]!.n} of them with non-ASCII email parties`)
})

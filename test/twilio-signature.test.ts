// X-Twilio-Signature as Twilio computes it: the published docs vector, the form decoding rules,
// and agreement with the official library on arbitrary forms.
import t from 'tap'
import fc from 'fast-check'
// The signature function of the official library, from its webhooks module: the package's root pulls in the types of
// its whole REST client (757 declaration files), which were most of the type-check of `npm test`'s build.
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js'
import { parseForm } from '../src/process/form.js'
import { twilioParamString, twilioSignature, urlCandidates, verifyTwilioSignature } from '../src/process/twilio-signature.js'
import { formBody } from './helpers/twilio.js'

const vectorUrl = 'https://mycompany.com/myapp.php?foo=1&bar=2'
const vectorParams = { CallSid: 'CA1234567890ABCDE', Caller: '+12349013030', Digits: '1234', From: '+12349013030', To: '+18005551212' }

t.test("Twilio's documented vector signs to 0/KCTR6DLpKmkAf8muzZqo1nDgQ=", async (t) => {
  const form = parseForm(Buffer.from(formBody(vectorParams)))
  t.ok(form.ok)
  if (!form.ok) return
  t.equal(twilioSignature('12345', vectorUrl, twilioParamString(form.params)), '0/KCTR6DLpKmkAf8muzZqo1nDgQ=')
  t.ok(verifyTwilioSignature(['12345'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', vectorUrl, form.params))
  t.ok(verifyTwilioSignature(['other', '12345'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', vectorUrl, form.params), 'any token of the list may match')
  t.notOk(verifyTwilioSignature(['12346'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', vectorUrl, form.params), 'another token does not')
  t.notOk(verifyTwilioSignature(['12345'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', `${vectorUrl}&baz=3`, form.params), 'a changed query does not')
  t.notOk(verifyTwilioSignature(['12345'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', 'https://mycompany.com/myapp.php/?foo=1&bar=2', form.params), 'a trailing slash does not')
})

t.test('the URL is accepted with and without the default port, like validateRequest', async (t) => {
  t.same(urlCandidates('https://h.example.com/p?q=1'), ['https://h.example.com/p?q=1', 'https://h.example.com:443/p?q=1'])
  t.same(urlCandidates('http://h.example.com:80/p'), ['http://h.example.com/p', 'http://h.example.com:80/p'])
  t.same(urlCandidates('https://h.example.com:8443/p'), ['https://h.example.com/p', 'https://h.example.com:8443/p'])
  const form = parseForm(Buffer.from(formBody(vectorParams)))
  if (!form.ok) return
  const withPort = 'https://mycompany.com:443/myapp.php?foo=1&bar=2'
  t.ok(verifyTwilioSignature(['12345'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', withPort, form.params), 'signed without the port, called with it')
  const signedWithPort = getExpectedTwilioSignature('12345', withPort, vectorParams)
  t.ok(verifyTwilioSignature(['12345'], signedWithPort, vectorUrl, form.params), 'signed with the port, called without it')
  t.notOk(verifyTwilioSignature(['12345'], '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', 'http://mycompany.com/myapp.php?foo=1&bar=2', form.params), 'another scheme fails')
})

t.test('form decoding: + is a space, %2B is +, empty fields count, names sort by UTF-16 code unit', async (t) => {
  const form = parseForm(Buffer.from('Body=a+b%2Bc&ToCity=&a=1&B=2&MediaUrl10=x&MediaUrl2=y&Emoji=%F0%9F%98%80'))
  t.ok(form.ok)
  if (!form.ok) return
  t.same(form.params, [['Body', 'a b+c'], ['ToCity', ''], ['a', '1'], ['B', '2'], ['MediaUrl10', 'x'], ['MediaUrl2', 'y'], ['Emoji', '😀']])
  t.equal(twilioParamString(form.params), 'B2Bodya b+cEmoji😀MediaUrl10xMediaUrl2yToCitya1')
})

t.test('characters sent unescaped beside escapes are kept whole, an emoji included', async (t) => {
  // A sender that escapes only some characters: the unescaped ones are already text and stay as they are.
  const form = parseForm(Buffer.from('Body=%F0%9F%98%80+😀+%C3%A9é&To=%2B1😀'))
  t.ok(form.ok)
  if (!form.ok) return
  t.same(form.params, [['Body', '😀 😀 éé'], ['To', '+1😀']])
  t.equal(parseForm(Buffer.from('Body=%F0%9F😀')).ok, false, 'an escaped sequence cut short by an unescaped character is refused')
})

t.test('repeated names contribute each distinct value, sorted, as the library does', async (t) => {
  const params = { Tag: ['b', 'a', 'b'], X: '1' }
  const form = parseForm(Buffer.from(formBody(params)))
  if (!form.ok) return t.fail('not parsed')
  t.equal(twilioSignature('tok', 'https://h/x', twilioParamString(form.params)), getExpectedTwilioSignature('tok', 'https://h/x', params))
})

t.test('a form of hundreds of fields, in reverse order and with repeated names, signs as the library signs it', async (t) => {
  const params: Record<string, string | string[]> = {}
  for (let i = 300; i > 0; i--) params[`Field${String(i).padStart(3, '0')}`] = i % 7 === 0 ? [`v${i % 3}`, 'a', `v${i % 3}`] : `v${i}`
  const form = parseForm(Buffer.from(formBody(params)))
  if (!form.ok) return t.fail('not parsed')
  t.equal(twilioSignature('tok', 'https://h/x', twilioParamString(form.params)), getExpectedTwilioSignature('tok', 'https://h/x', params))
})

t.test('broken percent-encoding and non-UTF-8 bytes are refused, not repaired', async (t) => {
  for (const body of ['Body=%G1', 'Body=%', 'Body=abc%2', 'Bo%zzdy=1', 'Body=%FF%FE']) {
    const form = parseForm(Buffer.from(body))
    t.equal(form.ok, false, body)
  }
  t.equal(parseForm(Buffer.from([0x42, 0x3d, 0xff])).ok, false, 'raw non-UTF-8 bytes')
})

t.test('Hermes and the official library agree on arbitrary forms', async (t) => {
  const name = fc.string({ minLength: 1, maxLength: 8, unit: 'grapheme' })
  const value = fc.string({ maxLength: 16, unit: 'grapheme' })
  fc.assert(fc.property(fc.dictionary(name, value, { maxKeys: 8 }), fc.string({ minLength: 1, maxLength: 12 }), (params, token) => {
    const form = parseForm(Buffer.from(formBody(params)))
    if (!form.ok) return false
    const url = 'https://hermes.example.com/webhooks/sms?x=1'
    const expected = getExpectedTwilioSignature(token, url, params)
    return twilioSignature(token, url, twilioParamString(form.params)) === expected &&
      verifyTwilioSignature([token], expected, url, form.params)
  }), { numRuns: 300 })
  t.pass('300 random forms')
})

t.test('form decoding refuses and keeps exactly what decodeURIComponent over the body read as UTF-8 does', async (t) => {
  // The reference reading: the body as strict UTF-8 text (a leading byte order mark dropped), split on '&',
  // each side of the first '=' with '+' as a space and then decodeURIComponent, a throw meaning refused.
  const strict = new TextDecoder('utf-8', { fatal: true })
  const reference = (body: Uint8Array): Array<[string, string]> | null => {
    let text: string
    try { text = strict.decode(body) } catch { return null }
    const params: Array<[string, string]> = []
    for (const pair of text.split('&')) {
      if (pair === '') continue
      const eq = pair.indexOf('=')
      try {
        const decode = (s: string): string => decodeURIComponent(s.replaceAll('+', ' '))
        params.push([decode(eq < 0 ? pair : pair.slice(0, eq)), eq < 0 ? '' : decode(pair.slice(eq + 1))])
      } catch { return null }
    }
    return params
  }
  const pieces = ['a', 'B', '=', '&', '+', '%', '%2', '%2B', '%20', '%C3', '%A9', '%c3%a9', '%F0%9F%98%80', '%F0%9F', '😀', 'é',
    '%ED%A0%80', '%EF%BB%BF', '\uFEFF', '%G1', '%ff', '%00', '%C0%80', '%E0%80%80', '€']
  const body = fc.tuple(fc.array(fc.constantFrom(...pieces), { maxLength: 12 }), fc.option(fc.integer({ min: 0, max: 255 })))
    .map(([parts, byte]) => Buffer.concat([Buffer.from(parts.join('')), Buffer.from(byte === null ? [] : [byte])]))
  fc.assert(fc.property(body, (bytes) => {
    const form = parseForm(bytes)
    const expected = reference(bytes)
    return expected === null ? !form.ok : form.ok && JSON.stringify(form.params) === JSON.stringify(expected)
  }), { numRuns: 3000 })
  t.pass('3000 generated bodies')
  const inRing = Buffer.from('xxBody=a+b%2Bc&To=%2B1yy').subarray(2, -2)
  t.same(parseForm(inRing), { ok: true, params: [['Body', 'a b+c'], ['To', '+1']] }, 'a body that is a view into a larger buffer')
})

// Secret rotation: both secrets work during the overlap; after a restart without the old one it stops working at once,
// and no secret ever appears in an answer or in /metrics.
import t from 'tap'
import { createLogger } from '../src/log.js'
import { startHermes } from '../src/hermes.js'
import { send, smsPayload, testConfig } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'
import { testDatabase } from '../src/harness/database.js'

async function post (port: number, secret: string): Promise<number> {
  const body = JSON.stringify(smsPayload())
  return (await send('POST', `http://127.0.0.1:${port}/webhooks/sms`, body, seedSignature(secret, body))).status
}

t.test('a secret rotated out stops working after the restart that removes it', async (t) => {
  const db = await testDatabase(t)
  const channels = (secrets: string[]): Record<string, unknown> => ({ channels: { sms: { provider: 'mock', secrets } }, providers: { mock: { kind: 'mock' } } })
  const during = await startHermes(testConfig(db.url, channels(['new-secret-1', 'old-secret-0'])), { log: createLogger('silent') })
  t.equal(await post(during.port, 'old-secret-0'), 202, 'the old secret works during the overlap')
  t.equal(await post(during.port, 'new-secret-1'), 202, 'and so does the new one')
  const scrape = (await send('GET', `http://127.0.0.1:${during.port}/metrics`)).text
  t.notMatch(scrape, /secret-[01]/, 'no secret in /metrics')
  await during.stop()

  const after = await startHermes(testConfig(db.url, channels(['new-secret-1'])), { log: createLogger('silent') })
  t.teardown(() => after.stop())
  const body = JSON.stringify(smsPayload())
  const refused = await send('POST', `http://127.0.0.1:${after.port}/webhooks/sms`, body, seedSignature('old-secret-0', body))
  t.equal(refused.status, 401, 'the removed secret is refused at once')
  t.notMatch(refused.text, /secret-[01]/, 'and the answer names no secret')
  t.equal(await post(after.port, 'new-secret-1'), 202)
})

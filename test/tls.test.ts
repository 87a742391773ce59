// TLS without a proxy: with tls.certFile / tls.keyFile Hermes serves HTTPS on its port, and a
// reload re-reads the files, so a renewed certificate is served to new connections without a
// restart; a certificate that does not load is refused and the old one stays in service.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { ReloadRefusedError } from '../src/errors.js'
import { SECRET, smsPayload, startTestHermes, testConfig } from './helpers/hermes.js'
import { seedSignature } from '../src/harness/sign.js'
import { testDatabase } from '../src/harness/database.js'

const dir = mkdtempSync(join(tmpdir(), 'hermes-tls-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const certFile = join(dir, 'cert.pem')
const keyFile = join(dir, 'key.pem')
/** One database for both tests (each Hermes is stopped before the next starts). */
const db = await testDatabase(t)

/** A fresh self-signed certificate for 127.0.0.1 (openssl), written over the configured files; returns its PEM. */
function issue (commonName: string): string {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${commonName}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' })
  return readFileSync(certFile, 'utf8')
}

interface HttpsAnswer { status: number, text: string, peer: string }

/** One HTTPS request on a new connection, trusting only `ca`; reports the certificate's common name. */
async function https (port: number, method: string, path: string, ca: string, body?: string, headers: Record<string, string> = {}): Promise<HttpsAnswer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca, agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const peer = String((res.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '')
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), peer }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('HTTPS on the configured port, and a renewed certificate is served after a reload without a restart', async (t) => {
  const first = issue('hermes-first')
  const h = await startTestHermes(t, { tls: { certFile, keyFile } }, db)
  const port = h.hermes.port

  const health = await https(port, 'GET', '/healthz', first)
  t.equal(health.status, 200, 'GET /healthz over HTTPS')
  t.equal(health.peer, 'hermes-first')
  const body = JSON.stringify(smsPayload())
  const stored = await https(port, 'POST', '/webhooks/sms', first, body, seedSignature(SECRET, body))
  t.equal(stored.status, 202, 'a webhook over HTTPS is stored')
  await t.rejects(https(port, 'GET', '/healthz', issue('not-yet-loaded')), 'a client that trusts only a certificate not yet loaded is refused')

  const renewed = issue('hermes-renewed')
  t.same(await h.hermes.reload(() => testConfig(db.url, { tls: { certFile, keyFile } })), [], 'same paths: nothing in the configuration changed')
  const after = await https(port, 'GET', '/healthz', renewed)
  t.equal(after.status, 200, 'new connections get the renewed certificate')
  t.equal(after.peer, 'hermes-renewed')
  await t.rejects(https(port, 'GET', '/healthz', first), 'and no longer the old one')

  writeFileSync(certFile, 'not a certificate')
  const refused = await h.hermes.reload(() => testConfig(db.url, { tls: { certFile, keyFile } })).catch((error: unknown) => error)
  t.type(refused, ReloadRefusedError, 'a certificate that does not load refuses the reload')
  const still = await https(port, 'GET', '/healthz', renewed)
  t.equal(still.peer, 'hermes-renewed', 'and the certificate in service stays')
})

t.test('turning TLS on or off needs a restart', async (t) => {
  issue('hermes-plain')
  const h = await startTestHermes(t, {}, db)
  const refused = await h.hermes.reload(() => testConfig(db.url, { tls: { certFile, keyFile } })).catch((error: unknown) => error)
  t.type(refused, ReloadRefusedError)
  t.match((refused as ReloadRefusedError).problems, [/^tls cannot change without a restart/])
})

// SendGrid's ECDSA signature over timestamp + raw body bytes: the published vector from SendGrid's
// library tests, byte-exactness, and malformed headers refused without throwing.
import t from 'tap'
import { sendgridSignatureValid, verifySendgridRequest } from '../src/process/sendgrid-signature.js'
import { decodeNativeMeta, encodeNativeMeta, type NativeMeta } from '../src/native-meta.js'
import { EventWebhook } from '@sendgrid/eventwebhook'
import { sendgridSigner } from './helpers/sendgrid.js'

const KEY = 'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=='
const TIMESTAMP = '1600112502'
const SIGNATURE = 'MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM='
const BODY = '[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'

function meta (fields: Partial<NativeMeta>): NativeMeta {
  return decodeNativeMeta(encodeNativeMeta({ path: '/callbacks/sendgrid', query: '', host: 'h', contentType: 'application/json', authorization: '', twilioSignature: '', emailSignature: '', emailTimestamp: '', ...fields }))
}

t.test("SendGrid's published vector verifies with its trailing CRLF, and not without", async (t) => {
  t.ok(sendgridSignatureValid(KEY, SIGNATURE, TIMESTAMP, Buffer.from(BODY)))
  t.notOk(sendgridSignatureValid(KEY, SIGNATURE, TIMESTAMP, Buffer.from(BODY.trimEnd())))
  t.notOk(sendgridSignatureValid(KEY, SIGNATURE, '1600112503', Buffer.from(BODY)), 'another timestamp')
  const ew = new EventWebhook()
  t.ok(ew.verifySignature(ew.convertPublicKeyToECDSA(KEY), BODY, SIGNATURE, TIMESTAMP), "and SendGrid's library agrees")
  t.equal(verifySendgridRequest([KEY], meta({ emailSignature: SIGNATURE, emailTimestamp: TIMESTAMP }), Buffer.from(BODY)), null)
})

t.test('the raw bytes are verified: a body that is not UTF-8 verifies as sent', async (t) => {
  const signer = sendgridSigner()
  const body = Buffer.concat([Buffer.from('--b\r\n'), Buffer.from([0xff, 0x00, 0xfe, 0x80]), Buffer.from('\r\n--b--')])
  const headers = signer.headers(body, 1700000000)
  const m = meta({ emailSignature: headers['x-twilio-email-event-webhook-signature'], emailTimestamp: '1700000000' })
  t.equal(verifySendgridRequest([signer.publicKey], m, body), null)
  t.match(verifySendgridRequest([signer.publicKey], m, Buffer.from(body.toString('utf8'))), { status: 401, code: 'HERMES_ERR_SIGNATURE_INVALID' }, 'a decoded-and-re-encoded body does not')
})

t.test('malformed signature headers are a 401 naming them, never an exception', async (t) => {
  const ew = new EventWebhook()
  t.throws(() => ew.verifySignature(ew.convertPublicKeyToECDSA(KEY), BODY, 'bm90IGRlcg==', TIMESTAMP), "SendGrid's own verifier throws on one")
  for (const signature of ['bm90IGRlcg==', 'not base64!', 'MEUC', 'x'.repeat(200)]) {
    t.match(verifySendgridRequest([KEY], meta({ emailSignature: signature, emailTimestamp: TIMESTAMP }), Buffer.from(BODY)), { status: 401, code: 'HERMES_ERR_SIGNATURE_MALFORMED' }, signature.slice(0, 20))
  }
  t.match(verifySendgridRequest([KEY], meta({ emailSignature: SIGNATURE, emailTimestamp: 'yesterday' }), Buffer.from(BODY)), { status: 401, code: 'HERMES_ERR_SIGNATURE_MALFORMED' })
  t.match(verifySendgridRequest([KEY], meta({}), Buffer.from(BODY)), { status: 401, code: 'HERMES_ERR_SIGNATURE_MISSING' })
  // A well-shaped DER that is not a valid signature is just invalid.
  const der = Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), Buffer.alloc(32, 1), Buffer.from([0x02, 0x20]), Buffer.alloc(32, 1)]).toString('base64')
  t.match(verifySendgridRequest([KEY], meta({ emailSignature: der, emailTimestamp: TIMESTAMP }), Buffer.from(BODY)), { status: 401, code: 'HERMES_ERR_SIGNATURE_INVALID' })
})

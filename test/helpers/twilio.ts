// The official library's webhooks module alone: the package's root pulls in the types of its whole REST client.
import { getExpectedTwilioSignature, validateRequest as twilioValidateRequest } from 'twilio/lib/webhooks/webhooks.js'

export type Params = Record<string, string | string[]>

/** A form body as Twilio encodes it: spaces as '+', everything else percent-encoded as URLSearchParams does. */
export function formBody (params: Params): string {
  const form = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) form.append(name, v)
  }
  return form.toString()
}

/** The X-Twilio-Signature header the official library computes for this URL and these parameters. */
export function twilioHeaders (token: string, url: string, params: Params): Record<string, string> {
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-twilio-signature': getExpectedTwilioSignature(token, url, params as Record<string, string>)
  }
}

export const validateRequest = twilioValidateRequest

let counter = 0
/** The fields of a real inbound SMS (provider-webhooks.md), with a fresh MessageSid. */
export function inboundSms (extra: Params = {}): Params {
  counter++
  const sid = `SM${process.pid.toString(16).padStart(8, '0')}${String(counter).padStart(24, '0')}`
  return {
    ToCountry: 'US', ToState: 'NY', SmsMessageSid: sid, NumMedia: '0', ToCity: '', FromZip: '', SmsSid: sid,
    FromState: 'CA', SmsStatus: 'received', FromCity: '', Body: `Hello + world & more ${counter}`, FromCountry: 'US',
    To: '+12125551234', MessagingServiceSid: 'MG00000000000000000000000000000000', ToZip: '', NumSegments: '1',
    MessageSid: sid, AccountSid: 'AC123', From: '+14155552671', ApiVersion: '2010-04-01',
    ...extra
  }
}

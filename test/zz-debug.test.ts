import t from 'tap'
import { SECRET } from './helpers/hermes.js'
import { dispatchFixture, startFakeProvider } from './helpers/fake-provider.js'
import { writeConfigFile } from './helpers/process.js'
import { startFleet } from './helpers/fleet.js'
const fake = await startFakeProvider(t)
const twilio = { kind: 'twilio', baseUrl: fake.url, accountSid: 'AC1', authToken: 'tok', concurrency: 6, timeoutMs: 1000, rateLimit: { perSecond: 50, burst: 10 } }
const fx = await dispatchFixture(t, { channels: { sms: { provider: 'twilio' } }, providers: { twilio } })
const file = writeConfigFile(t.testdir(), { logLevel: 'debug', database: { url: fx.db.url }, dispatch: { leaseMs: 1000, pollMs: 100 }, fleet: { heartbeatMs: 250, deadAfterMs: 1000, pauseMs: 1500 }, channels: { sms: { provider: 'twilio', secrets: [SECRET] } }, providers: { twilio } })
const members = await startFleet(t, file, 1)
await new Promise((r) => setTimeout(r, 1000))
await fx.insert('sms', 20)
await new Promise((r) => setTimeout(r, 3000))
console.log(fake.requests.length)
const text = await (await fetch(`${members[0]!.base}/metrics`)).text()
console.log(text.split('\n').filter((l) => l.startsWith('hermes_dispatch') || l.startsWith('hermes_fleet') || l.includes('dispatch')).join('\n'))
console.log(JSON.stringify([...(await fx.rows()).values()].slice(0, 2)))
for (const l of members[0]!.run.lines) if (!l.includes('"msg":"hermes started"')) console.log(l.slice(0, 400))
console.log(members[0]!.run.stderr())

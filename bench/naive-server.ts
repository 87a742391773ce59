/**
 * The naive reference: node:http + pg, verify the signature, then one
 * transaction of a few statements per request — the seed's per-message save
 * strategy. Hermes' target is ≥ 12× this on the same machine.
 * Env: PORT, DATABASE_URL, SECRET, POOL (connections, default 20).
 */
import { createServer } from 'node:http'
import { createHmac, timingSafeEqual } from 'node:crypto'
import pg from 'pg'

const secret = process.env['SECRET'] ?? 'bench-secret'
const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'], max: Number(process.env['POOL'] ?? 20) })
pool.on('error', () => {})

async function store (m: { id: string, from: string, to: string, body: string, attachments?: string[] }): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const party = async (phone: string): Promise<number> => {
      const r = await client.query('INSERT INTO party (phone) VALUES ($1) ON CONFLICT (address) DO UPDATE SET phone = EXCLUDED.phone RETURNING id', [phone])
      return r.rows[0].id as number
    }
    const from = await party(m.from)
    const to = await party(m.to)
    const conv = await client.query(
      `INSERT INTO conversation (party_a_id, party_b_id) VALUES ($1, $2)
       ON CONFLICT (party_a_id, party_b_id) DO UPDATE SET party_a_id = EXCLUDED.party_a_id RETURNING id`,
      [Math.min(from, to), Math.max(from, to)])
    const msg = await client.query(
      `INSERT INTO message (channel_id, external_id, conversation_id, sender_id, recipient_id, body, received_at)
       SELECT id, $2, $3, $4, $5, $6, now() FROM channel WHERE name = $1
       ON CONFLICT (channel_id, external_id) DO NOTHING RETURNING id`,
      ['sms', m.id, conv.rows[0].id, from, to, m.body])
    if (msg.rows.length > 0) {
      for (const [i, url] of (m.attachments ?? []).entries()) {
        await client.query('INSERT INTO attachment (message_id, position, url) VALUES ($1, $2, $3)', [msg.rows[0].id, i + 1, url])
      }
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    client.release()
  }
}

const server = createServer((req, res) => {
  const requestId = req.headers['x-request-id']
  if (typeof requestId === 'string') res.setHeader('x-request-id', requestId)
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`)
    const given = Buffer.from(String(req.headers['x-provider-signature-256'] ?? ''))
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.writeHead(401).end('{"error":"signature"}')
      return
    }
    let m
    try { m = JSON.parse(body.toString('utf8')) } catch { res.writeHead(400).end('{"error":"json"}'); return }
    store(m).then(() => res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"stored"}'),
      () => res.writeHead(503).end('{"error":"db"}'))
  })
})
server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  const address = server.address()
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`)
})
process.on('SIGTERM', () => { server.close(); void pool.end().then(() => process.exit(0)) })

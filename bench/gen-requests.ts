/**
 * Writes N pre-signed webhook requests (one per line: signature TAB body) for
 * the wrk script, so the load generator does no crypto of its own. Workload
 * `repeat`: 10k parties and up to 50k conversations reused, ~600-byte bodies,
 * 10% with attachments; `cold`: every party new. Every request has a unique id.
 */
import { createHmac } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { once } from 'node:events'

export async function generateRequests (file: string, count: number, secret: string, workload: 'repeat' | 'cold', runId: string): Promise<void> {
  const out = createWriteStream(file)
  const filler = 'lorem ipsum dolor sit amet consectetur adipiscing elit '.repeat(10).slice(0, 520)
  for (let i = 0; i < count; i++) {
    const a = workload === 'repeat' ? (i * 7919) % 10_000 : 2 * i
    const b = workload === 'repeat' ? (a + 1 + (i % 5)) % 10_000 : 2 * i + 1
    const payload: Record<string, unknown> = {
      id: `${runId}-${i}`,
      from: `+1415${String(a).padStart(7, '0')}`,
      to: `+1212${String(b).padStart(7, '0')}`,
      body: `${i} ${filler}`,
      timestamp: '2026-11-29T10:00:00Z'
    }
    if (i % 10 === 0) payload['attachments'] = [`https://cdn.example.com/${runId}/${i}.jpg`]
    const body = JSON.stringify(payload)
    const signature = createHmac('sha256', secret).update(body).digest('hex')
    if (!out.write(`sha256=${signature}\t${body}\n`)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
}

/**
 * Load for the crash tests: `lanes` clients each post signed webhooks one
 * after another until told to stop or until any request fails without an
 * answer (the process was killed). Every request's outcome is kept, so a
 * test can tell the ids answered 202 from those still in flight at a kill.
 */
import { send, SECRET } from './hermes.js'
import { seedSignature } from '../../src/harness/sign.js'

export interface Webhook {
  readonly id: string
  /** The raw JSON body (signed with SECRET when sent). */
  readonly body: string
}

export interface Outcome extends Webhook {
  /** The HTTP status, or null when the request got no answer (connection refused or reset). */
  readonly status: number | null
}

export interface LoadOptions {
  /** e.g. http://127.0.0.1:PORT/webhooks/sms */
  readonly url: string
  readonly lanes: number
  /** The next webhook to post; called once per request. */
  readonly next: () => Webhook
  /** Called after each answered request with the number answered so far. */
  readonly onAnswer?: (answered: number) => void
}

export interface Load {
  /** Requests answered so far (any status). */
  readonly answered: number
  /** Lanes finish their current request, then stop. */
  stop (): void
  /** Every request's outcome, once all lanes have stopped. */
  readonly finished: Promise<LoadResult>
}

export interface LoadResult {
  readonly outcomes: readonly Outcome[]
  /** Ids answered 202. */
  readonly acknowledged: string[]
  /** Requests that got no answer: in flight when the process died (or sent to a dead one). */
  readonly unanswered: Outcome[]
}

export function startLoad (options: LoadOptions): Load {
  const outcomes: Outcome[] = []
  let answered = 0
  let stopped = false
  const lane = async (): Promise<void> => {
    while (!stopped) {
      const webhook = options.next()
      let status: number | null = null
      try {
        status = (await send('POST', options.url, webhook.body, seedSignature(SECRET, webhook.body))).status
      } catch {
        stopped = true // no answer: the process is gone (or frozen and then killed)
      }
      outcomes.push({ ...webhook, status })
      if (status !== null) {
        answered++
        options.onAnswer?.(answered)
      }
    }
  }
  const finished = Promise.all(Array.from({ length: options.lanes }, lane)).then(() => summarize(outcomes))
  return {
    get answered () { return answered },
    stop: () => { stopped = true },
    finished
  }
}

/** Posts `webhooks` all at once (one connection each) and returns their outcomes. */
export async function postAll (url: string, webhooks: readonly Webhook[]): Promise<LoadResult> {
  const outcomes = await Promise.all(webhooks.map(async (webhook): Promise<Outcome> => {
    try {
      return { ...webhook, status: (await send('POST', url, webhook.body, seedSignature(SECRET, webhook.body))).status }
    } catch {
      return { ...webhook, status: null }
    }
  }))
  return summarize(outcomes)
}

function summarize (outcomes: Outcome[]): LoadResult {
  return {
    outcomes,
    acknowledged: outcomes.filter((o) => o.status === 202).map((o) => o.id),
    unanswered: outcomes.filter((o) => o.status === null)
  }
}

/**
 * What a SIGHUP reload may change in a running Hermes. Secrets, tokens,
 * provider credentials, rate limits, concurrency and the TLS files take
 * effect at once; every other field needs a restart, so a reload that
 * changes one is refused as a whole and the running configuration stays.
 */
import type { HermesConfig } from './config.js'

/**
 * Field paths a reload may change ('*' matches one name). A path matches
 * when one of these is a prefix of it, segment by segment. Channel and
 * provider keys not listed (kind, baseUrl, type, format, retry, ...) need
 * a restart; so does adding or removing a channel, a provider or `tls`.
 */
const reloadable: ReadonlyArray<readonly string[]> = [
  ['channels', '*', 'secrets'],
  ['channels', '*', 'authTokens'],
  ['channels', '*', 'basicAuth'],
  ['channels', '*', 'publicKeys'],
  ['providers', '*', 'accountSid'],
  ['providers', '*', 'authToken'],
  ['providers', '*', 'authTokens'],
  ['providers', '*', 'apiKey'],
  ['providers', '*', 'eventWebhookPublicKeys'],
  ['providers', '*', 'rateLimit'],
  ['providers', '*', 'concurrency'],
  ['tls', 'certFile'],
  ['tls', 'keyFile'],
  ['developmentSecret'] // derived from the secrets
]

export interface ConfigChange {
  /** Changed fields a reload applies. */
  readonly applied: readonly string[]
  /** Changed fields that need a restart. */
  readonly restart: readonly string[]
}

/** The fields that differ between the running and the new configuration, sorted into the two kinds. */
export function compareConfigs (running: HermesConfig, next: HermesConfig): ConfigChange {
  const applied: string[] = []
  const restart: string[] = []
  for (const path of differences(running, next, [])) {
    (isReloadable(path) ? applied : restart).push(path.join('.'))
  }
  return { applied, restart }
}

function isReloadable (path: readonly string[]): boolean {
  return reloadable.some((pattern) => pattern.length <= path.length && pattern.every((segment, i) => segment === '*' || segment === path[i]))
}

/** Leaf paths whose values differ; a key on one side only is reported at that key. Arrays compare whole. */
function differences (a: unknown, b: unknown, path: string[]): string[][] {
  if (isRecord(a) && isRecord(b)) {
    const out: string[][] = []
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(key in a) || !(key in b)) out.push([...path, key])
      else out.push(...differences(a[key], b[key], [...path, key]))
    }
    return out
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path]
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

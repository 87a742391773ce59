/**
 * Test processes end abruptly when tap times them out (SIGALRM) or they are
 * interrupted; the helpers that start servers clean up in 'exit' listeners,
 * which only run if the process exits rather than dies of the signal.
 */
let exitOnSignal = false
/** Turns SIGALRM (tap's timeout), SIGTERM and SIGINT into process.exit(1), so 'exit' cleanups run. */
export function onFatalSignal (): void {
  if (exitOnSignal) return
  exitOnSignal = true
  for (const signal of ['SIGALRM', 'SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(1))
}

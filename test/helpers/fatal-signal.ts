// Shared with bench/: the helper lives in harness/fatal-signal.ts.
export * from '../../harness/fatal-signal.js'

// Shared with bench/: the helper lives in harness/keep-alive.ts.
export * from '../../harness/keep-alive.js'

// Shared with bench/: the helper lives in harness/sign.ts.
export * from '../../harness/sign.js'

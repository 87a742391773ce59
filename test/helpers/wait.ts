// Shared with bench/: the helper lives in harness/wait.ts.
export * from '../../harness/wait.js'

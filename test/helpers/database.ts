// Shared with bench/: the helper lives in harness/database.ts.
export * from '../../harness/database.js'

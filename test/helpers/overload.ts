// Shared with bench/: the helper lives in harness/overload.ts.
export * from '../../harness/overload.js'

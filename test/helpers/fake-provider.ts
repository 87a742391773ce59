// Shared with bench/: the helper lives in harness/fake-provider.ts.
export * from '../../harness/fake-provider.js'

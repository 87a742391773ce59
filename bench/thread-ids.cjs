// Preloaded (node --require) into every thread of a process the bench measures: appends
// "<worker threadId> <kernel tid>" to BENCH_THREADS_FILE, so per-thread CPU read from
// /proc/<pid>/task/<tid>/stat can be charged to a named stage (every thread's comm is "node").
const file = process.env.BENCH_THREADS_FILE
if (file) {
  const fs = require('node:fs')
  const { threadId } = require('node:worker_threads')
  fs.appendFileSync(file, `${threadId} ${fs.readlinkSync('/proc/thread-self').split('/').pop()}\n`)
}

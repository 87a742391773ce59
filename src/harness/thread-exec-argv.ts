/**
 * The test process's Node options without tap's module hooks (@tapjs/processinfo; @tapjs/mock where enabled):
 * threads that inherit them route every import through a hooks thread of their own, which made
 * each Hermes start take seconds longer. Hermes' threads and the fake provider's need neither.
 */
export const threadExecArgv: readonly string[] = process.execArgv.filter((arg, i, all) =>
  !arg.includes('@tapjs/') && !(arg === '--import' && all[i + 1]?.includes('@tapjs/') === true))

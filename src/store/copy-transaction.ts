/**
 * A whole writer transaction in one round trip: one simple query
 * `BEGIN; COPY … FROM STDIN; <merge>; COMMIT`, its COPY data and CopyDone,
 * all in one write, and every statement's result back before one
 * ReadyForQuery.
 *
 * PostgreSQL runs the statements of a simple query in turn; on reaching the
 * COPY it reads the COPY data that follows the query on the socket, then
 * goes on with the rest. Sending that data before the server's
 * CopyInResponse is safe by the protocol: should anything fail first, the
 * server answers ErrorResponse, skips the rest of the query string, and
 * drops every CopyData and CopyDone that arrives outside COPY mode. The
 * transaction is then left aborted; the caller rolls it back.
 *
 * pg-copy-streams (a stream that waits for CopyInResponse before sending,
 * and sees only the COPY's own result) made this three round trips:
 * BEGIN + COPY, the COPY data, then the merge and COMMIT. On a busy machine
 * each round trip is two wake-ups of sleeping threads, and those waits are
 * most of a durable 202's latency.
 */
import pg from 'pg'

const kCopyData = 0x64 // 'd'
const kCopyDone = Buffer.from([0x63, 0, 0, 0, 4]) // 'c', length 4

/** pg's own result builder (what client.query() fills in), so values are parsed by the same type parsers. */
interface ResultBuilder extends pg.QueryResult {
  addFields: (fields: unknown[]) => void
  parseRow: (fields: unknown[]) => pg.QueryResultRow
  addRow: (row: pg.QueryResultRow) => void
  addCommandComplete: (message: unknown) => void
}
const { Result } = pg as unknown as { Result: new () => ResultBuilder }

export class CopyTransaction implements pg.Submittable {
  /** Every statement's result, in order (BEGIN and COPY included). */
  readonly done: Promise<pg.QueryResult[]>
  private readonly results: pg.QueryResult[] = []
  private current: ResultBuilder | null = null
  private failure: Error | null = null // a row pg could not parse: reported once the server is done
  private resolve!: (results: pg.QueryResult[]) => void
  private reject!: (error: Error) => void

  /**
   * @param sql statements ending the transaction; the first COPY … FROM STDIN among them reads `rows`
   * @param rows the COPY data (text format, whole lines)
   */
  constructor (private readonly sql: string, private readonly rows: readonly Uint8Array[]) {
    this.done = new Promise((resolve, reject) => { this.resolve = resolve; this.reject = reject })
  }

  /** Called by pg when the connection is ours: the query, the data and CopyDone go out as one write. */
  submit (connection: pg.Connection): void {
    const socket = connection.stream as unknown as NodeJS.WritableStream & { cork: () => void, uncork: () => void }
    socket.cork()
    connection.query(this.sql)
    for (const chunk of this.rows) {
      const header = Buffer.allocUnsafe(5)
      header[0] = kCopyData
      header.writeUInt32BE(chunk.length + 4, 1)
      socket.write(header)
      socket.write(chunk)
    }
    socket.write(kCopyDone)
    socket.uncork()
  }

  // The callbacks below are pg's interface for a submittable's messages.

  handleCopyInResponse (): void {} // the data is already on its way

  handleRowDescription (message: { fields: unknown[] }): void {
    this.current = new Result()
    this.current.addFields(message.fields)
  }

  handleDataRow (message: { fields: unknown[] }): void {
    if (this.failure !== null) return
    try {
      this.current!.addRow(this.current!.parseRow(message.fields))
    } catch (error) {
      this.failure = error instanceof Error ? error : new Error(String(error))
    }
  }

  handleCommandComplete (message: unknown): void {
    const result = this.current ?? new Result()
    result.addCommandComplete(message)
    this.results.push(result)
    this.current = null
  }

  handleEmptyQuery (): void {}

  /** An ErrorResponse (pg then forgets this query), or the connection failing. */
  handleError (error: Error): void {
    this.reject(error)
  }

  handleReadyForQuery (): void {
    if (this.failure !== null) this.reject(this.failure)
    else this.resolve(this.results)
  }
}

/** Runs a CopyTransaction on the client; resolves with every statement's result. */
export async function runCopyTransaction (client: pg.Client, sql: string, rows: readonly Uint8Array[]): Promise<pg.QueryResult[]> {
  return await client.query(new CopyTransaction(sql, rows)).done
}

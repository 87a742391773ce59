/**
 * multipart/form-data read from bytes already in memory, with
 * @fastify/busboy. Field values keep their bytes (latin1 strings are
 * byte-for-byte); the caller decodes them with the charset the sender
 * names. A body that ends mid-part, lacks its boundary or breaks the
 * syntax is an error, never a partial result.
 */
import { Busboy, type BusboyInstance } from '@fastify/busboy'

export interface Part {
  readonly name: string
  /** Set for file parts. */
  readonly filename: string | null
  readonly contentType: string
  readonly bytes: Buffer
}

const kStallMs = 10_000

export type MultipartResult = { readonly ok: true, readonly parts: Part[] } | { readonly ok: false, readonly problem: string }

export async function parseMultipart (contentType: string, body: Uint8Array, maxParts = 1000): Promise<MultipartResult> {
  return await new Promise((resolve) => {
    let bb: BusboyInstance
    try {
      bb = new Busboy({ headers: { 'content-type': contentType }, defCharset: 'latin1', limits: { fieldSize: body.byteLength, fileSize: body.byteLength, parts: maxParts, fields: maxParts, files: maxParts } })
    } catch (error) {
      resolve({ ok: false, problem: `multipart body cannot be read: ${error instanceof Error ? error.message : String(error)}` })
      return
    }
    const parts: Part[] = []
    let settled = false
    let open = 0 // file streams not yet ended
    let finished = false
    // The whole body is in memory, so the parser finishes within a few ticks; should it ever
    // neither finish nor fail, the record is refused rather than holding its ring range forever.
    const stall = setTimeout(() => fail('multipart body could not be read to its end'), kStallMs)
    const fail = (problem: string): void => {
      if (settled) return
      settled = true
      clearTimeout(stall)
      resolve({ ok: false, problem })
    }
    const done = (): void => {
      if (settled || !finished || open > 0) return
      settled = true
      clearTimeout(stall)
      resolve({ ok: true, parts })
    }
    // A mangled Content-Disposition can leave a part without a name: it is kept under ''.
    bb.on('field', (rawName: string | undefined, value: string | undefined, _nameTruncated: boolean, valueTruncated: boolean, _encoding: string, mime: string) => {
      const name = rawName ?? ''
      if (valueTruncated) fail(`multipart field ${JSON.stringify(name.slice(0, 64))} is too long`)
      parts.push({ name, filename: null, contentType: (mime as string | undefined) ?? '', bytes: Buffer.from(value ?? '', 'latin1') })
    })
    bb.on('file', (rawName: string | undefined, stream: NodeJS.ReadableStream, filename: string | undefined, _encoding: string, mime: string | undefined) => {
      const name = rawName ?? ''
      open++
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('limit', () => fail(`multipart file ${JSON.stringify(name.slice(0, 64))} is too large`))
      stream.on('error', (error: Error) => fail(`multipart file ${JSON.stringify(name.slice(0, 64))} is broken: ${error.message}`))
      stream.on('end', () => {
        open--
        parts.push({ name, filename: filename === undefined || filename === '' ? null : filename, contentType: mime ?? '', bytes: Buffer.concat(chunks) })
        done()
      })
    })
    bb.on('partsLimit', () => fail(`multipart body has more than ${maxParts} parts`))
    bb.on('filesLimit', () => fail(`multipart body has more than ${maxParts} files`))
    bb.on('fieldsLimit', () => fail(`multipart body has more than ${maxParts} fields`))
    bb.on('error', (error: unknown) => fail(`malformed multipart body: ${error instanceof Error ? error.message : String(error)}`))
    bb.on('finish', () => { finished = true; done() })
    bb.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength))
  })
}

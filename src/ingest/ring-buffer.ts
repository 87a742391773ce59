import {
  kCapacityBytes, kCapacityRecords, kControlBytes, kFieldCount, kMaxHeaderValueBytes,
  kFlagOutOfBand, kKindMask, kRecBodyLen, kRecChannel, kRecFlags, kRecHeaderBytes, kRecLength, kRecMetaLen, kRecordAlign, kRecProviderSigLen,
  kRecReceivedAt, kRecSlot, kRecWebhookIdLen, kRecWebhookSigLen, kRecWebhookTsLen,
  kReleaseOffset, kUsedBytes, kUsedRecords, kWrapMarker, kWriteOffset, kWritten
} from './ring-layout.js'

/** What the front end writes for one webhook. Header values are '' when absent. */
export interface RingRecordInput {
  readonly slot: number
  readonly receivedAtMs: number
  readonly channelIndex: number
  readonly providerSignature: string
  readonly webhookId: string
  readonly webhookTimestamp: string
  readonly webhookSignature: string
  readonly body: Uint8Array
  /** kKindWebhook (default) or kKindReceipt; channelIndex then names a provider. */
  readonly kind?: number
  /** The headers a provider-native format verifies (src/native-meta.ts), latin1; '' for Hermes' own format. */
  readonly meta?: string
  /** The body travels outside the ring (its length is still given by `body`'s owner); nothing is copied here. */
  readonly outOfBand?: boolean
}

/** One record as a consumer reads it; `body` is a private copy, safe to keep. */
export interface RingRecord {
  readonly slot: number
  readonly receivedAtMs: number
  readonly channelIndex: number
  readonly providerSignature: string
  readonly webhookId: string
  readonly webhookTimestamp: string
  readonly webhookSignature: string
  readonly body: Buffer
  readonly kind: number
  readonly meta: string
  /** The body is not in the ring (`body` is empty): the task carries it. */
  readonly outOfBand: boolean
  /** Offset of the record after this one (wrap padding already skipped past). */
  readonly nextOffset: number
}

const align = (n: number): number => (n + kRecordAlign - 1) & ~(kRecordAlign - 1)

/**
 * A wrapping ring of variable-length records in a SharedArrayBuffer
 * (format in ring-layout.ts). One producer writes and releases; any thread
 * may read records it was handed. Records are released in write order, so a
 * released offset always sits on a record boundary.
 */
export class IngressRing {
  readonly buffer: SharedArrayBuffer
  private readonly control: Int32Array
  private readonly bytes: Buffer
  private readonly view: DataView
  private readonly capacity: number

  static create (capacityBytes: number, capacityRecords: number): IngressRing {
    if (!Number.isInteger(capacityBytes) || capacityBytes < 64 || capacityBytes % kRecordAlign !== 0) {
      throw new RangeError(`ring capacityBytes must be a multiple of ${kRecordAlign} and at least 64, got ${capacityBytes}`)
    }
    if (!Number.isInteger(capacityRecords) || capacityRecords < 1) {
      throw new RangeError(`ring capacityRecords must be a positive integer, got ${capacityRecords}`)
    }
    const buffer = new SharedArrayBuffer(kControlBytes + capacityBytes)
    const control = new Int32Array(buffer, 0, kFieldCount)
    control[kCapacityBytes] = capacityBytes
    control[kCapacityRecords] = capacityRecords
    return new IngressRing(buffer)
  }

  /** Opens a ring another thread created. */
  static attach (buffer: SharedArrayBuffer): IngressRing {
    return new IngressRing(buffer)
  }

  private constructor (buffer: SharedArrayBuffer) {
    this.buffer = buffer
    this.control = new Int32Array(buffer, 0, kFieldCount)
    this.capacity = Atomics.load(this.control, kCapacityBytes)
    this.bytes = Buffer.from(buffer, kControlBytes, this.capacity)
    this.view = new DataView(buffer, kControlBytes, this.capacity)
  }

  get capacityBytes (): number { return this.capacity }
  get capacityRecords (): number { return Atomics.load(this.control, kCapacityRecords) }
  get usedBytes (): number { return Atomics.load(this.control, kUsedBytes) }
  get usedRecords (): number { return Atomics.load(this.control, kUsedRecords) }
  get writeOffset (): number { return Atomics.load(this.control, kWriteOffset) }
  get releaseOffset (): number { return Atomics.load(this.control, kReleaseOffset) }
  get written (): number { return Atomics.load(this.control, kWritten) }

  /** Bytes a record with these fields occupies (0 if a header value is too long to encode). */
  static recordBytes (input: RingRecordInput): number {
    const h = [input.providerSignature, input.webhookId, input.webhookTimestamp, input.webhookSignature, input.meta ?? '']
    let total = kRecHeaderBytes + (input.outOfBand === true ? 0 : input.body.byteLength)
    for (const value of h) {
      if (value.length > kMaxHeaderValueBytes) return 0
      total += value.length
    }
    return align(total)
  }

  /**
   * Writes one record. Returns its offset, or -1 when the ring has no room
   * (by records or by bytes) — the caller answers 503. Never overwrites
   * unreleased data.
   */
  tryWrite (input: RingRecordInput): number {
    const need = IngressRing.recordBytes(input)
    if (need === 0) throw new RangeError('a header value is longer than a ring record can carry')
    if (need > this.capacity) return -1
    const c = this.control
    const usedRecords = c[kUsedRecords]!
    let used = c[kUsedBytes]!
    if (usedRecords >= c[kCapacityRecords]! || used + need > this.capacity) return -1

    let write = c[kWriteOffset]!
    const release = c[kReleaseOffset]!
    if (write >= release && used < this.capacity) {
      const tailRoom = this.capacity - write
      if (need > tailRoom) {
        // Not enough contiguous room before the end: pad the tail and wrap,
        // provided the head of the area (before the oldest record) has room.
        if (need > release) return -1
        this.view.setUint32(write + kRecLength, kWrapMarker, true)
        used += tailRoom
        write = 0
      }
    } else if (need > release - write) {
      return -1
    }

    const offset = write
    this.encode(offset, need, input)
    let next = offset + need
    if (next === this.capacity) next = 0
    // Publish after the bytes are in place; consumers learn offsets via
    // messages, and Atomics.store orders the record before the cursor.
    Atomics.store(c, kUsedBytes, used + need)
    Atomics.store(c, kWriteOffset, next)
    Atomics.add(c, kUsedRecords, 1)
    Atomics.add(c, kWritten, 1)
    return offset
  }

  private encode (offset: number, length: number, input: RingRecordInput): void {
    const v = this.view
    v.setUint32(offset + kRecLength, length, true)
    v.setUint32(offset + kRecSlot, input.slot >>> 0, true)
    v.setFloat64(offset + kRecReceivedAt, input.receivedAtMs, true)
    v.setUint8(offset + kRecChannel, input.channelIndex)
    v.setUint8(offset + kRecFlags, ((input.kind ?? 0) & kKindMask) | (input.outOfBand === true ? kFlagOutOfBand : 0))
    v.setUint16(offset + kRecMetaLen, input.meta?.length ?? 0, true)
    v.setUint16(offset + kRecProviderSigLen, input.providerSignature.length, true)
    v.setUint16(offset + kRecWebhookIdLen, input.webhookId.length, true)
    v.setUint16(offset + kRecWebhookTsLen, input.webhookTimestamp.length, true)
    v.setUint16(offset + kRecWebhookSigLen, input.webhookSignature.length, true)
    v.setUint32(offset + kRecBodyLen, input.outOfBand === true ? 0 : input.body.byteLength, true)
    let at = offset + kRecHeaderBytes
    at += this.bytes.write(input.providerSignature, at, 'latin1')
    at += this.bytes.write(input.webhookId, at, 'latin1')
    at += this.bytes.write(input.webhookTimestamp, at, 'latin1')
    at += this.bytes.write(input.webhookSignature, at, 'latin1')
    if (input.meta !== undefined) at += this.bytes.write(input.meta, at, 'latin1')
    if (input.outOfBand !== true) this.bytes.set(input.body, at)
  }

  /** Follows a wrap marker: the offset where the record at `offset` really starts. */
  private resolve (offset: number): number {
    return this.view.getUint32(offset + kRecLength, true) === kWrapMarker ? 0 : offset
  }

  /** Reads the record at `offset` (as returned by tryWrite, or a previous record's nextOffset). */
  read (offset: number): RingRecord {
    const at = this.resolve(offset)
    const v = this.view
    const length = v.getUint32(at + kRecLength, true)
    const sigLen = v.getUint16(at + kRecProviderSigLen, true)
    const idLen = v.getUint16(at + kRecWebhookIdLen, true)
    const tsLen = v.getUint16(at + kRecWebhookTsLen, true)
    const wsLen = v.getUint16(at + kRecWebhookSigLen, true)
    const bodyLen = v.getUint32(at + kRecBodyLen, true)
    const metaLen = v.getUint16(at + kRecMetaLen, true)
    const flags = v.getUint8(at + kRecFlags)
    let p = at + kRecHeaderBytes
    const text = (n: number): string => { const s = this.bytes.toString('latin1', p, p + n); p += n; return s }
    const providerSignature = text(sigLen)
    const webhookId = text(idLen)
    const webhookTimestamp = text(tsLen)
    const webhookSignature = text(wsLen)
    const meta = metaLen === 0 ? '' : text(metaLen)
    // Copy out: the producer reuses these bytes once the record is released.
    const body = Buffer.allocUnsafe(bodyLen)
    this.bytes.copy(body, 0, p, p + bodyLen)
    const end = at + length
    return {
      slot: v.getUint32(at + kRecSlot, true),
      receivedAtMs: v.getFloat64(at + kRecReceivedAt, true),
      channelIndex: v.getUint8(at + kRecChannel),
      providerSignature,
      webhookId,
      webhookTimestamp,
      webhookSignature,
      body,
      kind: flags & kKindMask,
      meta,
      outOfBand: (flags & kFlagOutOfBand) !== 0,
      nextOffset: end === this.capacity ? 0 : end
    }
  }

  /** Offset just past the `count` records starting at `offset`, without copying them. */
  skip (offset: number, count: number): number {
    let at = offset
    for (let i = 0; i < count; i++) {
      at = this.resolve(at)
      at += this.view.getUint32(at + kRecLength, true)
      if (at === this.capacity) at = 0
    }
    return at
  }

  /**
   * Frees the oldest `records` records, which end at `endOffset`. Only the
   * producer calls this, in write order.
   */
  release (endOffset: number, records: number): void {
    if (records <= 0) return
    const c = this.control
    const from = c[kReleaseOffset]!
    let distance = (endOffset - from + this.capacity) % this.capacity
    if (distance === 0) distance = this.capacity // released everything while full
    const usedRecords = c[kUsedRecords]! - records
    Atomics.store(c, kReleaseOffset, endOffset)
    Atomics.store(c, kUsedRecords, usedRecords)
    Atomics.store(c, kUsedBytes, usedRecords === 0 ? 0 : c[kUsedBytes]! - distance)
  }
}

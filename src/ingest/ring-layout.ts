/**
 * Layout of the ingress ring: one SharedArrayBuffer holding a small Int32
 * control block followed by the record area. Only the main thread (the
 * producer) moves the write and release cursors; workers read records at
 * offsets they are handed. Cursors are byte offsets into the record area,
 * always multiples of kRecordAlign.
 *
 * Control block (Int32 slots):
 *   kWriteOffset     where the next record will be written
 *   kReleaseOffset   first byte still owned by an unreleased record
 *   kUsedBytes       bytes between release and write (incl. wrap padding)
 *   kUsedRecords     records written and not yet released
 *   kCapacityBytes   size of the record area
 *   kCapacityRecords most records held at once
 *   kWritten         records ever written (wraps at 2^31; for metrics)
 *
 * Record (little-endian, starts at a kRecordAlign boundary):
 *   0  u32 total length in bytes, header included, padded to kRecordAlign;
 *          kWrapMarker here means "the rest of the area is padding: continue at 0"
 *   4  u32 slot: the front end's id for the waiting request
 *   8  f64 receivedAtMs (epoch milliseconds)
 *  16  u8  target index: a channel (kind webhook) or a provider (kind receipt)
 *  17  u8  flags: bits 0-3 the record kind (kKindWebhook, kKindReceipt);
 *          kFlagOutOfBand: the body is not in the ring but in a buffer of its
 *          own handed to the worker with the range (a body larger than the
 *          ring's record budget, up to a channel's own maxBodyBytes)
 *  18  u16 length of x-provider-signature-256
 *  20  u16 length of webhook-id
 *  22  u16 length of webhook-timestamp
 *  24  u16 length of webhook-signature
 *  26  u16 length of the meta string: the headers a provider-native format
 *          verifies (src/native-meta.ts); 0 for Hermes' own format
 *  28  u32 body length (0 when out of band)
 *  32  the four header values and the meta string (latin1), then the body bytes
 */
export const kWriteOffset = 0
export const kReleaseOffset = 1
export const kUsedBytes = 2
export const kUsedRecords = 3
export const kCapacityBytes = 4
export const kCapacityRecords = 5
export const kWritten = 6
export const kFieldCount = 7

/** Control block size, rounded so the record area starts 8-byte aligned. */
export const kControlBytes = 32

export const kRecordAlign = 8
export const kWrapMarker = 0xFFFFFFFF

export const kRecLength = 0
export const kRecSlot = 4
export const kRecReceivedAt = 8
export const kRecChannel = 16
export const kRecProviderSigLen = 18
export const kRecWebhookIdLen = 20
export const kRecWebhookTsLen = 22
export const kRecWebhookSigLen = 24
export const kRecFlags = 17
export const kRecMetaLen = 26
export const kKindMask = 0x0F
export const kKindWebhook = 0
export const kKindReceipt = 1
export const kFlagOutOfBand = 0x80
export const kRecBodyLen = 28
export const kRecHeaderBytes = 32

/** Longest header value a record can carry (u16 length field). */
export const kMaxHeaderValueBytes = 0xFFFF

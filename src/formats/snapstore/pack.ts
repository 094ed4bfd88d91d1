/**
 * The pack format of the snapshot store (`packs/<id>.pack`): the one definition, pure.
 *
 *   offset 0     magic "DRPACK1\n" (8 bytes)
 *   then         chunk data (raw, zstd frames, or shared zstd frames of small objects), in any
 *                order, at offsets the records name
 *   then         one record per object, anywhere after the magic (a writer puts them last):
 *     head   (48) sha256 (32) | content size u64 (8) | chunk count u32 (4) | reserved (4)
 *     table  (32 each) offset u64 | stored size u64 | raw size u64 | method u8 | method bytes (7)
 *
 * Chunk methods: 0 raw, 1 zstd, 2 brotli (read only: written by early stores built without
 * libzstd), 3 a slice of a zstd frame several small objects share (since store version 2): the
 * entry's offset and stored size are the frame's, raw its decompressed size; bytes 25-27 hold the
 * slice's start (u24) and 28-31 its length (u32).
 */
import { DatarootError } from '../errors.js';
import { toHex, view } from '../bytes.js';

export const PACK_MAGIC = new Uint8Array([0x44, 0x52, 0x50, 0x41, 0x43, 0x4b, 0x31, 0x0a]); // "DRPACK1\n"
/** Content bytes per chunk (a writer's choice; a reader bounds a chunk by it). */
export const CHUNK = 4 << 20;
export const RECORD_HEAD = 48;
export const CHUNK_ENTRY = 32;
/** The most chunks one record may name (a 16 TiB object): bounds the table read. */
export const MAX_CHUNKS = 1 << 22;

export const METHOD_RAW = 0;
export const METHOD_ZSTD = 1;
export const METHOD_BROTLI = 2;
export const METHOD_ZSTD_SLICE = 3;

export type Chunk =
  | { method: typeof METHOD_RAW | typeof METHOD_ZSTD | typeof METHOD_BROTLI; offset: number; stored: number; raw: number }
  | { method: typeof METHOD_ZSTD_SLICE; offset: number; stored: number; raw: number; start: number; len: number };

export interface RecordHead {
  sha256: string;
  size: number;
  chunks: number;
}

function corrupt(why: string): DatarootError {
  return new DatarootError('SNAPSHOT_OBJECT_CORRUPT', why);
}

function u64(v: DataView, at: number): number {
  const n = v.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`a u64 at ${at} of a pack record is too large (${n})`);
  return Number(n);
}

/** A record's head (48 bytes). */
export function decodeRecordHead(b: Uint8Array): RecordHead {
  if (b.length < RECORD_HEAD) throw new RangeError('premature EOF: a pack record head is 48 bytes');
  const v = view(b);
  const chunks = v.getUint32(40, true);
  if (chunks > MAX_CHUNKS) throw corrupt(`a pack record names ${chunks} chunks (at most ${MAX_CHUNKS})`);
  return { sha256: toHex(b.subarray(0, 32)), size: u64(v, 32), chunks };
}

/** Chunk table entry i of a record's table, checked against what a chunk can be. */
export function decodeChunk(table: Uint8Array, i: number): Chunk {
  const at = i * CHUNK_ENTRY;
  if (table.length < at + CHUNK_ENTRY) throw new RangeError('premature EOF: a chunk table entry is 32 bytes');
  const v = view(table);
  const offset = u64(v, at);
  const stored = u64(v, at + 8);
  const raw = u64(v, at + 16);
  const method = table[at + 24]!;
  if (raw > CHUNK || stored > 2 * CHUNK + 1024 || offset < PACK_MAGIC.length)
    throw corrupt(`chunk ${i} of a pack record is impossible (offset ${offset}, stored ${stored}, raw ${raw})`);
  switch (method) {
    case METHOD_RAW:
      if (stored !== raw) throw corrupt(`raw chunk ${i} of a pack record stores ${stored} bytes for ${raw}`);
      return { method, offset, stored, raw };
    case METHOD_ZSTD:
    case METHOD_BROTLI:
      return { method, offset, stored, raw };
    case METHOD_ZSTD_SLICE: {
      const start = table[at + 25]! | (table[at + 26]! << 8) | (table[at + 27]! << 16);
      const len = v.getUint32(at + 28, true);
      if (start + len > raw) throw corrupt(`slice chunk ${i} of a pack record lies outside its frame`);
      return { method, offset, stored, raw, start, len };
    }
    default:
      throw corrupt(`chunk ${i} of a pack record has unknown method ${method}`);
  }
}

/** An object's record: head and chunk table, as one block of bytes. */
export function encodeRecord(sha256: Uint8Array, size: number, chunks: readonly Chunk[]): Uint8Array {
  if (sha256.length !== 32) throw new RangeError('a sha256 is 32 bytes');
  const out = new Uint8Array(RECORD_HEAD + chunks.length * CHUNK_ENTRY);
  encodeRecordInto(out, 0, sha256, size, chunks);
  return out;
}

/** The same, written into `out` at `at` (a writer lays many records out in one buffer); returns the end. */
export function encodeRecordInto(out: Uint8Array, at: number, sha256: Uint8Array, size: number, chunks: readonly Chunk[]): number {
  out.set(sha256, at);
  encodeRecordHeadInto(out, at, size, chunks.length);
  let p = at + RECORD_HEAD;
  for (const c of chunks) {
    encodeChunkInto(out, p, c.method, c.offset, c.stored, c.raw, c.method === METHOD_ZSTD_SLICE ? c.start : 0, c.method === METHOD_ZSTD_SLICE ? c.len : 0);
    p += CHUNK_ENTRY;
  }
  return p;
}

/** A record's head but its sha256 (bytes 0-31, which the caller copies in): size and chunk count. */
export function encodeRecordHeadInto(out: Uint8Array, at: number, size: number, chunks: number): void {
  const v = view(out);
  v.setBigUint64(at + 32, BigInt(size), true);
  v.setUint32(at + 40, chunks, true);
  v.setUint32(at + 44, 0, true);
}

/** One chunk table entry (start and len: a slice's, for METHOD_ZSTD_SLICE). */
export function encodeChunkInto(out: Uint8Array, at: number, method: number, offset: number, stored: number, raw: number, start: number, len: number): void {
  const v = view(out);
  v.setBigUint64(at, BigInt(offset), true);
  v.setBigUint64(at + 8, BigInt(stored), true);
  v.setBigUint64(at + 16, BigInt(raw), true);
  out[at + 24] = method;
  if (method === METHOD_ZSTD_SLICE) {
    if (start >= 1 << 24) throw new RangeError('a slice starts within 16 MiB of its frame');
    out[at + 25] = start & 0xff;
    out[at + 26] = (start >> 8) & 0xff;
    out[at + 27] = (start >> 16) & 0xff;
    v.setUint32(at + 28, len, true);
  } else out.fill(0, at + 25, at + 32);
}

/** Bytes of a record with n chunks. */
export function recordBytes(chunks: number): number {
  return RECORD_HEAD + chunks * CHUNK_ENTRY;
}

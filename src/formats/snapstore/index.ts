/**
 * The pack index format (`packs/<id>.idx`), written after its pack is complete: it makes the
 * pack's objects visible. The one definition, pure.
 *
 *   magic "DRIDX1\n\0" (8) | entry count u64 (8) | entries (48 each), sorted by sha256:
 *     sha256 (32) | record offset u64 (8) | content size u64 (8)
 */
import { DatarootError } from '../errors.js';
import { compareBytes, toHex, view } from '../bytes.js';

export const IDX_MAGIC = new Uint8Array([0x44, 0x52, 0x49, 0x44, 0x58, 0x31, 0x0a, 0x00]); // "DRIDX1\n\0"
export const IDX_HEAD = 16;
export const IDX_ENTRY = 48;

export interface IndexEntry {
  sha256: Uint8Array;
  offset: number;
  size: number;
}

/** A decoded index: the entry table, searched in place. */
export interface PackIndex {
  count: number;
  /** `count` entries of IDX_ENTRY bytes, sorted by sha256. */
  table: Uint8Array;
}

export function decodeIndex(b: Uint8Array): PackIndex {
  const bad = (why: string): DatarootError => new DatarootError('SNAPSHOT_STORE_CORRUPT', `a pack index is damaged (${why})`);
  if (b.length < IDX_HEAD) throw bad('shorter than its 16-byte head');
  for (let i = 0; i < 8; i++) if (b[i] !== IDX_MAGIC[i]) throw bad('no DRIDX1 magic');
  const n = view(b).getBigUint64(8, true);
  if (BigInt(b.length) !== BigInt(IDX_HEAD) + n * BigInt(IDX_ENTRY)) throw bad(`${n} entries do not fill ${b.length} bytes`);
  const count = Number(n);
  // The order is not checked (a store of a million objects would pay for it at every command): a
  // misordered table only makes lookups miss, and every object read is checked by its sha256.
  return { count, table: b.subarray(IDX_HEAD) };
}

/** Entry i of an index table. */
export function indexEntry(ix: PackIndex, i: number): { sha256: string; offset: number; size: number } {
  const at = i * IDX_ENTRY;
  const v = view(ix.table);
  return { sha256: toHex(ix.table.subarray(at, at + 32)), offset: Number(v.getBigUint64(at + 32, true)), size: Number(v.getBigUint64(at + 40, true)) };
}

/** Binary search for a sha256 (32 bytes): the entry's position, or -1. */
export function searchIndex(ix: PackIndex, sha256: Uint8Array): number {
  let lo = 0;
  let hi = ix.count - 1;
  const t = ix.table;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = mid * IDX_ENTRY;
    let c = 0;
    for (let k = 0; k < 32; k++) {
      const d = t[at + k]! - sha256[k]!;
      if (d !== 0) {
        c = d;
        break;
      }
    }
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** An index of entries (sorted here by sha256; a sha256 listed twice is refused). */
export function encodeIndex(entries: readonly IndexEntry[]): Uint8Array {
  const sorted = [...entries].sort((a, b) => compareBytes(a.sha256, b.sha256));
  const out = new Uint8Array(IDX_HEAD + sorted.length * IDX_ENTRY);
  encodeIndexHeadInto(out, sorted.length);
  sorted.forEach((e, i) => {
    if (e.sha256.length !== 32) throw new RangeError('a sha256 is 32 bytes');
    if (i > 0 && compareBytes(sorted[i - 1]!.sha256, e.sha256) === 0) throw new RangeError(`object ${toHex(e.sha256)} is listed twice`);
    const at = IDX_HEAD + i * IDX_ENTRY;
    out.set(e.sha256, at);
    encodeIndexEntryInto(out, at, e.offset, e.size);
  });
  return out;
}

/** An index's head: magic and entry count. */
export function encodeIndexHeadInto(out: Uint8Array, count: number): void {
  out.set(IDX_MAGIC, 0);
  view(out).setBigUint64(8, BigInt(count), true);
}

/** Entry fields but the sha256 (bytes 0-31, which the caller copies in, in sorted order). */
export function encodeIndexEntryInto(out: Uint8Array, at: number, offset: number, size: number): void {
  const v = view(out);
  v.setBigUint64(at + 32, BigInt(offset), true);
  v.setBigUint64(at + 40, BigInt(size), true);
}

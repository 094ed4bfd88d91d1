/**
 * The scalar encodings containerd writes into its BoltDB files (pure, over Uint8Array):
 * Go's `binary.PutUvarint`/`PutVarint` (LEB128, zig-zag for signed) and `time.MarshalBinary`.
 */

/** Go's binary.Uvarint over the whole value: undefined unless it is one varint that uses every byte. */
export function uvarintExact(b: Uint8Array): bigint | undefined {
  const r = uvarintAt(b, 0);
  return r !== undefined && r.next === b.length ? r.value : undefined;
}

/** One uvarint at `off`: its value and the offset after it; undefined when truncated or longer than 10 bytes. */
export function uvarintAt(b: Uint8Array, off: number): { value: bigint; next: number } | undefined {
  let x = 0n;
  let s = 0n;
  for (let i = off; i < b.length && i < off + 10; i++) {
    const c = b[i]!;
    if (c < 0x80) {
      if (i === off + 9 && c > 1) return undefined; // overflows 64 bits
      return { value: x | (BigInt(c) << s), next: i + 1 };
    }
    x |= BigInt(c & 0x7f) << s;
    s += 7n;
  }
  return undefined;
}

/** Go's binary.Varint (zig-zag) over the whole value. */
export function varintExact(b: Uint8Array): bigint | undefined {
  const u = uvarintExact(b);
  if (u === undefined) return undefined;
  return (u & 1n) === 0n ? u >> 1n : -((u >> 1n) + 1n);
}

/** A bigint as a number when exact, else undefined. */
export function safeNumber(n: bigint | undefined): number | undefined {
  if (n === undefined) return undefined;
  const v = Number(n);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** Seconds from 0001-01-01 (Go's internal epoch) to 1970-01-01. */
export const GO_UNIX_TO_INTERNAL = 62135596800n;

/** A decoded Go time: Unix seconds, nanoseconds, and the zone offset in minutes (undefined: UTC). */
export interface BinaryTime {
  unix: bigint;
  nanos: number;
  /** Offset east of UTC in minutes; undefined for UTC (stored as -1). */
  offsetMin: number | undefined;
}

/**
 * Go's time.UnmarshalBinary: version 1 (15 bytes: seconds since year 1 as int64 BE, nanoseconds
 * int32 BE, zone offset in minutes int16 BE, -1 for UTC) or version 2 (16 bytes: a seconds offset
 * byte follows). Undefined when the bytes are not one.
 */
export function decodeBinaryTime(b: Uint8Array): BinaryTime | undefined {
  if (!((b.length === 15 && b[0] === 1) || (b.length === 16 && b[0] === 2))) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const sec = v.getBigInt64(1, false);
  const nanos = v.getInt32(9, false);
  const off = v.getInt16(13, false);
  if (nanos < 0 || nanos >= 1e9) return undefined;
  return { unix: sec - GO_UNIX_TO_INTERNAL, nanos, offsetMin: off === -1 ? undefined : off };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * time.RFC3339Nano as Go prints the time (in its stored zone: `Z` for UTC, else `+hh:mm`),
 * trailing zeros of the fraction dropped. Years outside 0000–9999 are printed as Go does only in
 * the common range; outside it the ISO form is used.
 */
export function formatBinaryTime(t: BinaryTime): string {
  const offSec = BigInt((t.offsetMin ?? 0) * 60);
  const local = t.unix + offSec;
  const ms = Number(local) * 1000;
  const d = new Date(ms);
  if (!Number.isFinite(ms) || Number.isNaN(d.getTime())) return `${t.unix}s`;
  const y = d.getUTCFullYear();
  const date = `${y < 0 ? '-' : ''}${pad(Math.abs(y), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const frac = t.nanos === 0 ? '' : `.${String(t.nanos).padStart(9, '0').replace(/0+$/, '')}`;
  let zone = 'Z';
  if (t.offsetMin !== undefined && t.offsetMin !== 0) {
    const a = Math.abs(t.offsetMin);
    zone = `${t.offsetMin < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
  }
  return `${date}${frac}${zone}`;
}

/** The time as milliseconds since the Unix epoch (for ages and comparisons). */
export function binaryTimeMs(t: BinaryTime): number {
  return Number(t.unix) * 1000 + Math.floor(t.nanos / 1e6);
}

/** Go's zero time, as containerd reports a missing timestamp. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

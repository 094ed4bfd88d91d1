/**
 * The scalar encodings containerd writes into its BoltDB files (pure, over Uint8Array):
 * Go's `binary.PutUvarint`/`PutVarint` (LEB128, zig-zag for signed) and `time.MarshalBinary`.
 */
import { civilFromDays } from '../docker/timestamp.js';

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

/**
 * The same as a number, without BigInt for values that fit in 49 bits (sizes, ids, counts);
 * undefined when not one exact varint or too large for a safe integer.
 */
export function uvarintNumber(b: Uint8Array): number | undefined {
  if (b.length === 0 || b.length > 7) {
    const v = uvarintExact(b);
    return v === undefined || v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
  }
  let x = 0;
  let mul = 1;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    x += (c & 0x7f) * mul;
    if (c < 0x80) return i === b.length - 1 ? x : undefined;
    mul *= 128;
  }
  return undefined;
}

/** Go's binary.Varint as a number (zig-zag), for values that fit a safe integer. */
export function varintNumber(b: Uint8Array): number | undefined {
  const u = uvarintNumber(b);
  if (u === undefined) {
    const v = varintExact(b);
    return v === undefined || v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
  }
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}

/** Go's binary.Varint (zig-zag) over the whole value. */
export function varintExact(b: Uint8Array): bigint | undefined {
  const u = uvarintExact(b);
  if (u === undefined) return undefined;
  return (u & 1n) === 0n ? u >> 1n : -((u >> 1n) + 1n);
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
  const hi = v.getInt32(1, false);
  const lo = v.getUint32(5, false);
  const nanos = v.getInt32(9, false);
  const off = v.getInt16(13, false);
  if (nanos < 0 || nanos >= 1e9) return undefined;
  // Seconds since year 1 within ±2^52 (every real time): plain numbers, no BigInt.
  const unix = Math.abs(hi) < 0x100000 ? BigInt(hi * 0x100000000 + lo - 62135596800) : v.getBigInt64(1, false) - GO_UNIX_TO_INTERNAL;
  return { unix, nanos, offsetMin: off === -1 ? undefined : off };
}

const two = (n: number): string => (n < 10 ? `0${n}` : String(n));

/**
 * time.RFC3339Nano as Go prints the time (in its stored zone: `Z` for UTC, else `+hh:mm`),
 * trailing zeros of the fraction dropped.
 */
export function formatBinaryTime(t: BinaryTime): string {
  const local = Number(t.unix) + (t.offsetMin ?? 0) * 60;
  if (!Number.isSafeInteger(local)) return `${t.unix}s`;
  const days = Math.floor(local / 86400);
  const secs = local - days * 86400;
  const { y, m: mo, d } = civilFromDays(days);
  const year = y >= 0 && y < 10000 ? String(y).padStart(4, '0') : String(y);
  let frac = '';
  if (t.nanos !== 0) {
    frac = String(t.nanos).padStart(9, '0');
    let end = frac.length;
    while (frac.charCodeAt(end - 1) === 48) end--;
    frac = `.${frac.slice(0, end)}`;
  }
  let zone = 'Z';
  if (t.offsetMin !== undefined && t.offsetMin !== 0) {
    const a = Math.abs(t.offsetMin);
    zone = `${t.offsetMin < 0 ? '-' : '+'}${two(Math.floor(a / 60))}:${two(a % 60)}`;
  }
  return `${year}-${two(mo)}-${two(d)}T${two(Math.floor(secs / 3600))}:${two(Math.floor(secs / 60) % 60)}:${two(secs % 60)}${frac}${zone}`;
}

/** Go's zero time, as containerd reports a missing timestamp. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

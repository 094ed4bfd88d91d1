/**
 * The scalar encodings containerd writes into its BoltDB files, the other way round from
 * values.ts (pure, over Uint8Array): Go's `binary.PutUvarint`/`PutVarint` and `time.MarshalBinary`
 * of a UTC time (containerd stores `time.Now().UTC()`).
 */
import { encodeUtf8 } from '../bytes.js';
import { GO_UNIX_TO_INTERNAL } from './values.js';

const U64_MAX = (1n << 64n) - 1n;

/** Go's binary.PutUvarint (LEB128): 1 to 10 bytes. */
export function encodeUvarint(n: bigint | number): Uint8Array {
  let x = BigInt(n);
  if (x < 0n || x > U64_MAX) throw new RangeError(`uvarint ${x} is outside 0 .. 2^64-1`);
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return Uint8Array.from(out);
}

/** Go's binary.PutVarint (zig-zag, then LEB128). */
export function encodeVarint(n: bigint | number): Uint8Array {
  const x = BigInt(n);
  if (x < -(1n << 63n) || x >= 1n << 63n) throw new RangeError(`varint ${x} is outside int64`);
  return encodeUvarint(x >= 0n ? x << 1n : (-x << 1n) - 1n);
}

/** A point in time: Unix seconds and nanoseconds within the second. */
export interface UtcTime {
  unix: bigint;
  nanos: number;
}

/** A time from milliseconds since the Unix epoch (and nanoseconds below the millisecond). */
export function utcFromMs(ms: number, subMsNanos = 0): UtcTime {
  const s = Math.floor(ms / 1000);
  return { unix: BigInt(s), nanos: (ms - s * 1000) * 1e6 + subMsNanos };
}

/**
 * Go's time.MarshalBinary of a UTC time: version 1, seconds since 0001-01-01 (int64 BE),
 * nanoseconds (int32 BE), zone offset -1 (UTC): 15 bytes.
 */
export function encodeBinaryTime(t: UtcTime): Uint8Array {
  if (!Number.isInteger(t.nanos) || t.nanos < 0 || t.nanos >= 1e9) throw new RangeError(`nanoseconds ${t.nanos} outside 0 .. 999999999`);
  const b = new Uint8Array(15);
  const v = new DataView(b.buffer);
  b[0] = 1;
  v.setBigInt64(1, t.unix + GO_UNIX_TO_INTERNAL, false);
  v.setInt32(9, t.nanos, false);
  v.setInt16(13, -1, false);
  return b;
}

/** A string as containerd stores keys and values (UTF-8 bytes). */
export const s = (x: string): Uint8Array => encodeUtf8(x);

import { DatarootError } from '../errors.js';
import { uvarintAt } from './values.js';

/**
 * The protobuf wire format (pure): a message is a sequence of fields, each a key (field number
 * << 3 | wire type) and a value. Only what containerd stores needs reading: varints, 64- and
 * 32-bit values and length-delimited bytes (strings, nested messages). Groups are refused.
 */
export type WireField =
  | { field: number; wire: 0; varint: bigint }
  | { field: number; wire: 1; fixed64: bigint }
  | { field: number; wire: 2; bytes: Uint8Array }
  | { field: number; wire: 5; fixed32: number };

/** Every field of a message, in order; PROTO_TRUNCATED when it ends inside one, PROTO_INVALID for bytes that are not protobuf. */
export function readFields(b: Uint8Array): WireField[] {
  const out: WireField[] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  while (off < b.length) {
    const key = uvarintAt(b, off);
    if (key === undefined) throw truncatedOrInvalid(b, off, 'field key');
    off = key.next;
    const field = Number(key.value >> 3n);
    const wire = Number(key.value & 7n);
    if (field < 1 || field > 0x1fffffff) throw new DatarootError('PROTO_INVALID', `field number ${field} at byte ${off} is out of range`, { offset: off });
    switch (wire) {
      case 0: {
        const x = uvarintAt(b, off);
        if (x === undefined) throw truncatedOrInvalid(b, off, `field ${field} varint`);
        off = x.next;
        out.push({ field, wire, varint: x.value });
        break;
      }
      case 1:
        if (off + 8 > b.length) throw new DatarootError('PROTO_TRUNCATED', `field ${field}: 8 bytes needed at ${off}, ${b.length - off} left`, { offset: off });
        out.push({ field, wire, fixed64: v.getBigUint64(off, true) });
        off += 8;
        break;
      case 2: {
        const len = uvarintAt(b, off);
        if (len === undefined) throw truncatedOrInvalid(b, off, `field ${field} length`);
        off = len.next;
        if (len.value > BigInt(b.length - off))
          throw new DatarootError('PROTO_TRUNCATED', `field ${field}: ${len.value} bytes announced at ${off}, ${b.length - off} left`, { offset: off });
        const n = Number(len.value);
        out.push({ field, wire, bytes: b.subarray(off, off + n) });
        off += n;
        break;
      }
      case 5:
        if (off + 4 > b.length) throw new DatarootError('PROTO_TRUNCATED', `field ${field}: 4 bytes needed at ${off}, ${b.length - off} left`, { offset: off });
        out.push({ field, wire, fixed32: v.getUint32(off, true) });
        off += 4;
        break;
      default:
        throw new DatarootError('PROTO_INVALID', `field ${field} has wire type ${wire} (groups and unknown types are not read)`, { offset: off });
    }
  }
  return out;
}

function truncatedOrInvalid(b: Uint8Array, off: number, what: string): DatarootError {
  // A varint that runs to the end is truncated; one longer than 10 bytes is invalid.
  let i = off;
  while (i < b.length && i < off + 10 && (b[i]! & 0x80) !== 0) i++;
  if (i >= b.length) return new DatarootError('PROTO_TRUNCATED', `the message ends inside a ${what} at byte ${off}`, { offset: off });
  return new DatarootError('PROTO_INVALID', `the ${what} at byte ${off} is not a valid varint`, { offset: off });
}

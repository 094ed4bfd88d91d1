import { view } from '../bytes.js';

/**
 * The local log driver's records (moby api/types/plugins/logdriver/entry.proto, gogo-protobuf):
 *
 *     message LogEntry { string source = 1; int64 time_nano = 2; bytes line = 3; bool partial = 4;
 *                        PartialLogEntryMetadata partial_log_metadata = 5; }
 *     message PartialLogEntryMetadata { bool last = 1; string id = 2; int32 ordinal = 3; }
 *
 * In `local-logs/container.log` (and the dual-logging cache `container-cached.log`) each record is
 * framed by its size as a big-endian uint32 before and after it. dockerd refuses a record larger
 * than 1,000,000 bytes. Pure: bytes in, a value or a coded failure out.
 */
export interface PartialMeta {
  last: boolean;
  id: string;
  ordinal: number;
}

export interface LogEntry {
  source: string;
  timeNano: bigint;
  line: Uint8Array;
  partial: boolean;
  partialMeta: PartialMeta | undefined;
}

/** daemon/logger/local maxMsgLen. */
export const MAX_RECORD = 1_000_000;
/** Size of each of the two length words of a frame. */
export const FRAME_WORD = 4;

export class LogEntryError extends Error {
  constructor(
    readonly code: 'LOG_RECORD_INVALID',
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const TD = new TextDecoder('utf-8');

/** Reads a varint at `i`; returns [value, next index]. Go's gogo code: at most 10 bytes, ErrIntOverflow past 64 bits. */
function varint(b: Uint8Array, i: number): [bigint, number] {
  let v = 0n;
  for (let shift = 0n, k = i; ; shift += 7n, k++) {
    if (shift >= 64n) throw new LogEntryError('LOG_RECORD_INVALID', `varint at byte ${i} overflows 64 bits`, i);
    const c = b[k];
    if (c === undefined) throw new LogEntryError('LOG_RECORD_INVALID', `varint at byte ${i} runs past the record`, i);
    v |= BigInt(c & 0x7f) << shift;
    if (c < 0x80) return [BigInt.asUintN(64, v), k + 1];
  }
}

function lengthDelimited(b: Uint8Array, i: number, end: number): [Uint8Array, number] {
  const [n, j] = varint(b, i);
  if (n > BigInt(end - j)) throw new LogEntryError('LOG_RECORD_INVALID', `a field at byte ${i} claims ${n} bytes, more than the record holds`, i);
  const len = Number(n);
  return [b.subarray(j, j + len), j + len];
}

function skipField(b: Uint8Array, wire: number, i: number, end: number, at: number): number {
  switch (wire) {
    case 0:
      return varint(b, i)[1];
    case 1:
      if (i + 8 > end) throw new LogEntryError('LOG_RECORD_INVALID', `a fixed64 field at byte ${at} runs past the record`, at);
      return i + 8;
    case 2:
      return lengthDelimited(b, i, end)[1];
    case 5:
      if (i + 4 > end) throw new LogEntryError('LOG_RECORD_INVALID', `a fixed32 field at byte ${at} runs past the record`, at);
      return i + 4;
    default:
      // Groups (3, 4) and 6, 7: gogo's skip refuses what it cannot delimit.
      throw new LogEntryError('LOG_RECORD_INVALID', `illegal wire type ${wire} at byte ${at}`, at);
  }
}

/** The field key at `at`: field number and wire type, and the index after it; a field number below 1 is refused (`where` names the message). */
function fieldKey(b: Uint8Array, at: number, where: string): { field: number; wire: number; next: number } {
  const [key, next] = varint(b, at);
  const field = Number(key >> 3n);
  if (field <= 0) throw new LogEntryError('LOG_RECORD_INVALID', `illegal tag ${field} at byte ${at}${where}`, at);
  return { field, wire: Number(key & 7n), next };
}

function decodeMeta(b: Uint8Array, into: PartialMeta): void {
  let i = 0;
  while (i < b.length) {
    const at = i;
    const { field, wire, next } = fieldKey(b, at, ' of partial_log_metadata');
    i = next;
    if (field === 1 && wire === 0) {
      const [v, k] = varint(b, i);
      into.last = v !== 0n;
      i = k;
    } else if (field === 2 && wire === 2) {
      const [v, k] = lengthDelimited(b, i, b.length);
      into.id = TD.decode(v);
      i = k;
    } else if (field === 3 && wire === 0) {
      const [v, k] = varint(b, i);
      into.ordinal = Number(BigInt.asIntN(32, v));
      i = k;
    } else if (field <= 3) throw new LogEntryError('LOG_RECORD_INVALID', `wrong wire type ${wire} for field ${field} of partial_log_metadata`, at);
    else i = skipField(b, wire, i, b.length, at);
  }
}

/** Decodes one LogEntry message (the bytes between a frame's two length words). */
export function decodeLogEntry(b: Uint8Array): LogEntry {
  const e: LogEntry = { source: '', timeNano: 0n, line: new Uint8Array(0), partial: false, partialMeta: undefined };
  let i = 0;
  while (i < b.length) {
    const at = i;
    const { field, wire, next } = fieldKey(b, at, '');
    i = next;
    switch (field) {
      case 1:
      case 3:
      case 5: {
        if (wire !== 2) throw new LogEntryError('LOG_RECORD_INVALID', `wrong wire type ${wire} for field ${field} at byte ${at}`, at);
        const [v, k] = lengthDelimited(b, i, b.length);
        i = k;
        if (field === 1) e.source = TD.decode(v);
        else if (field === 3) e.line = v;
        else {
          // gogo merges a repeated message field into the one already decoded.
          e.partialMeta ??= { last: false, id: '', ordinal: 0 };
          decodeMeta(v, e.partialMeta);
        }
        break;
      }
      case 2:
      case 4: {
        if (wire !== 0) throw new LogEntryError('LOG_RECORD_INVALID', `wrong wire type ${wire} for field ${field} at byte ${at}`, at);
        const [v, k] = varint(b, i);
        i = k;
        if (field === 2) e.timeNano = BigInt.asIntN(64, v);
        else e.partial = v !== 0n;
        break;
      }
      default:
        i = skipField(b, wire, i, b.length, at);
    }
  }
  return e;
}

/** The size word at `off` (big-endian uint32). */
export function frameWord(b: Uint8Array, off: number): number {
  return view(b).getUint32(off, false);
}

/** A frame for a message (size, message, size): what the local driver writes. */
export function frame(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(msg.length + 2 * FRAME_WORD);
  const v = view(out);
  v.setUint32(0, msg.length, false);
  out.set(msg, FRAME_WORD);
  v.setUint32(FRAME_WORD + msg.length, msg.length, false);
  return out;
}

function putVarint(out: number[], v: bigint): void {
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function putBytes(out: number[], field: number, b: Uint8Array): void {
  putVarint(out, BigInt((field << 3) | 2));
  putVarint(out, BigInt(b.length));
  for (const c of b) out.push(c);
}

const TE = new TextEncoder();

/** Encodes a LogEntry as gogo-protobuf does (proto3: default values omitted, fields in number order). */
export function encodeLogEntry(e: LogEntry): Uint8Array {
  const out: number[] = [];
  if (e.source !== '') putBytes(out, 1, TE.encode(e.source));
  if (e.timeNano !== 0n) {
    putVarint(out, 0x10n);
    putVarint(out, e.timeNano);
  }
  if (e.line.length > 0) putBytes(out, 3, e.line);
  if (e.partial) out.push(0x20, 1);
  if (e.partialMeta !== undefined) {
    const m: number[] = [];
    if (e.partialMeta.last) m.push(0x08, 1);
    if (e.partialMeta.id !== '') putBytes(m, 2, TE.encode(e.partialMeta.id));
    if (e.partialMeta.ordinal !== 0) {
      m.push(0x18);
      putVarint(m, BigInt(e.partialMeta.ordinal));
    }
    putBytes(out, 5, Uint8Array.from(m));
  }
  return Uint8Array.from(out);
}

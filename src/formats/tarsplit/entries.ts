/**
 * tar-split's metadata stream: newline-delimited JSON entries as Go's json.Encoder writes
 * storage.Entry (github.com/vbatts/tar-split/tar/storage):
 *
 *   {"type":1,"name":"hello","size":682696,"payload":"<crc64 base64>","position":1}   FileType
 *   {"type":2,"payload":"<raw bytes base64>","position":0}                           SegmentType
 *
 * `name` is replaced by `name_raw` (base64) when the name is not valid UTF-8; `size` is omitted
 * when 0; `payload` is null when absent. Encoding follows Go's: HTML characters and U+2028/9
 * escaped, other non-ASCII kept as UTF-8.
 */
import { DatarootError } from '../errors.js';

export const FILE_TYPE = 1;
export const SEGMENT_TYPE = 2;

export interface FileEntry {
  type: 1;
  /** The name as bytes (from `name` or `name_raw`). */
  name: Uint8Array;
  size: number;
  /** 8-byte big-endian CRC-64/ISO of the content, or null (size 0). */
  crc: Uint8Array | null;
  position: number;
}

export interface SegmentEntry {
  type: 2;
  payload: Uint8Array | null;
  position: number;
}

export type Entry = FileEntry | SegmentEntry;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64(b: Uint8Array): string {
  let s = '';
  let i = 0;
  for (; i + 3 <= b.length; i += 3) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8) | b[i + 2]!;
    s += B64[n >>> 18]! + B64[(n >>> 12) & 63]! + B64[(n >>> 6) & 63]! + B64[n & 63]!;
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i]! << 16;
    s += `${B64[n >>> 18]!}${B64[(n >>> 12) & 63]!}==`;
  } else if (rest === 2) {
    const n = (b[i]! << 16) | (b[i + 1]! << 8);
    s += `${B64[n >>> 18]!}${B64[(n >>> 12) & 63]!}${B64[(n >>> 6) & 63]!}=`;
  }
  return s;
}

const B64_INDEX = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

export function unbase64(s: string): Uint8Array | undefined {
  if (s.length % 4 !== 0) return undefined;
  let pad = 0;
  if (s.endsWith('==')) pad = 2;
  else if (s.endsWith('=')) pad = 1;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const c0 = B64_INDEX[s.charCodeAt(i)]!;
    const c1 = B64_INDEX[s.charCodeAt(i + 1)]!;
    const c2 = s[i + 2] === '=' && i + 4 === s.length ? 0 : B64_INDEX[s.charCodeAt(i + 2)]!;
    const c3 = s[i + 3] === '=' && i + 4 === s.length ? 0 : B64_INDEX[s.charCodeAt(i + 3)]!;
    if (c0 < 0 || c1 < 0 || c2 < 0 || c3 < 0) return undefined;
    const n = (c0 << 18) | (c1 << 12) | (c2 << 6) | c3;
    if (o < out.length) out[o++] = n >>> 16;
    if (o < out.length) out[o++] = (n >>> 8) & 0xff;
    if (o < out.length) out[o++] = n & 0xff;
  }
  return out;
}

/** A JSON string as Go's encoding/json writes it (with HTML escaping, as json.Encoder does by default). */
export function goJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += s[i];
  }
  return `${out}"`;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** One entry as a line of Go's json.Encoder (with the trailing newline). */
export function encodeEntry(e: Entry): string {
  if (e.type === SEGMENT_TYPE) {
    return `{"type":2,"payload":${e.payload === null ? 'null' : `"${base64(e.payload)}"`},"position":${e.position}}\n`;
  }
  let s = '{"type":1';
  let text: string | undefined;
  try {
    text = utf8Strict.decode(e.name);
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    if (text !== '') s += `,"name":${goJsonString(text)}`;
  } else s += `,"name_raw":"${base64(e.name)}"`;
  if (e.size !== 0) s += `,"size":${e.size}`;
  s += `,"payload":${e.crc === null ? 'null' : `"${base64(e.crc)}"`},"position":${e.position}}\n`;
  return s;
}

const te = new TextEncoder();

/** Parses one NDJSON line; a line that is not an entry is a coded error naming the line number. */
export function decodeEntry(line: string, lineNo: number): Entry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo} of the tar-split stream is not JSON`, { line: lineNo });
  }
  const o = v as { type?: unknown; name?: unknown; name_raw?: unknown; size?: unknown; payload?: unknown; position?: unknown };
  if (o === null || typeof o !== 'object')
    throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo} of the tar-split stream is not an object`, { line: lineNo });
  const position = typeof o.position === 'number' ? o.position : 0;
  const payload = o.payload === null || o.payload === undefined ? null : typeof o.payload === 'string' ? unbase64(o.payload) : undefined;
  if (payload === undefined) throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo}: payload is not base64`, { line: lineNo });
  if (o.type === SEGMENT_TYPE) return { type: 2, payload, position };
  if (o.type !== FILE_TYPE) throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo}: unknown entry type ${JSON.stringify(o.type)}`, { line: lineNo });
  const size = o.size === undefined ? 0 : o.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo}: impossible size ${JSON.stringify(o.size)}`, { line: lineNo });
  }
  let name: Uint8Array;
  if (typeof o.name_raw === 'string') {
    const raw = unbase64(o.name_raw);
    if (raw === undefined) throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo}: name_raw is not base64`, { line: lineNo });
    name = raw;
  } else name = te.encode(typeof o.name === 'string' ? o.name : '');
  if (payload !== null && payload.length !== 8 && size > 0)
    throw new DatarootError('TARSPLIT_INVALID', `line ${lineNo}: the CRC-64 payload has ${payload.length} bytes, not 8`, { line: lineNo });
  return { type: 1, name, size, crc: payload, position };
}

/** Splits a byte stream into lines and decodes each as an entry (the stream may be chunked anywhere). */
export async function* decodeEntries(src: AsyncIterable<Uint8Array>, maxLine = 64 << 20): AsyncGenerator<Entry> {
  const dec = new TextDecoder();
  let buf = '';
  let lineNo = 0;
  for await (const chunk of src) {
    buf += dec.decode(chunk, { stream: true });
    if (buf.length > maxLine && buf.indexOf('\n') < 0) throw new DatarootError('TARSPLIT_INVALID', `a tar-split line is longer than ${maxLine} bytes`);
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lineNo++;
      if (line.trim() !== '') yield decodeEntry(line, lineNo);
    }
  }
  buf += dec.decode();
  if (buf.trim() !== '') yield decodeEntry(buf, lineNo + 1);
}

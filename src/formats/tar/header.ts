/**
 * The tar header codec: one 512-byte block in, a typed header out (and the reverse for writers).
 * ustar, GNU and PAX, base-256 numbers, checksum validated but returned as data. Pure: bytes in,
 * values out, no Buffer, no fs. Field layout (POSIX ustar / GNU tar):
 *
 *   off  size  field              off  size  field
 *     0   100  name               257    6  magic ("ustar\0" or "ustar ")
 *   100     8  mode               263    2  version ("00" or " \0")
 *   108     8  uid                265   32  uname
 *   116     8  gid                297   32  gname
 *   124    12  size               329    8  devmajor
 *   136    12  mtime              337    8  devminor
 *   148     8  chksum             345  155  prefix (ustar) / atime, ctime, … (GNU)
 *   156     1  typeflag
 *   157   100  linkname
 */
import { concatBytes } from '../bytes.js';
import { DatarootError } from '../errors.js';

export const BLOCK = 512;

export const TYPE = {
  REG: 0x30, // '0'
  REGA: 0x00, // '\0' (old regular file)
  LINK: 0x31, // '1' hard link
  SYMLINK: 0x32, // '2'
  CHAR: 0x33, // '3'
  BLOCK: 0x34, // '4'
  DIR: 0x35, // '5'
  FIFO: 0x36, // '6'
  CONT: 0x37, // '7'
  PAX: 0x78, // 'x'
  PAX_GLOBAL: 0x67, // 'g'
  GNU_LONGNAME: 0x4c, // 'L'
  GNU_LONGLINK: 0x4b, // 'K'
  GNU_SPARSE: 0x53, // 'S'
} as const;

/** Types whose header is followed by no data, whatever their size field says (Go's isHeaderOnlyType). */
export function isHeaderOnly(type: number): boolean {
  return type === TYPE.LINK || type === TYPE.SYMLINK || type === TYPE.CHAR || type === TYPE.BLOCK || type === TYPE.DIR || type === TYPE.FIFO;
}

export type TarFormat = 'ustar' | 'gnu' | 'v7';

/** The fields of every header, read or written: the name as bytes, the numbers, the type flag. */
export interface TarFields {
  name: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: number;
}

/** One header block as stored (names still split, before PAX/GNU long-name overrides). */
export interface RawHeader extends TarFields {
  checksum: number;
  checksumValid: boolean;
  linkname: Uint8Array;
  format: TarFormat;
  uname: Uint8Array;
  gname: Uint8Array;
  devmajor: number;
  devminor: number;
  /** ustar prefix (empty for GNU and v7). */
  prefix: Uint8Array;
}

const te = new TextEncoder();

function cbytes(b: Uint8Array, off: number, len: number): Uint8Array {
  const f = b.subarray(off, off + len);
  const nul = f.indexOf(0);
  return nul < 0 ? f : f.subarray(0, nul);
}

/**
 * A numeric field: octal (NUL/space padded) or base-256 (first byte with the high bit set, two's
 * complement). A value beyond 2^53 is an error; an unparseable one is `undefined` (corrupt).
 */
export function parseNumeric(b: Uint8Array, off: number, len: number): number | undefined {
  const f = b.subarray(off, off + len);
  if (f.length > 0 && (f[0]! & 0x80) !== 0) {
    const negative = (f[0]! & 0x40) !== 0;
    let v = 0n;
    for (let i = 0; i < f.length; i++) {
      let byte = f[i]!;
      if (negative) byte ^= 0xff;
      if (i === 0) byte &= 0x7f;
      v = (v << 8n) | BigInt(byte);
    }
    if (negative) v = -v - 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    return Number(v);
  }
  let s = '';
  for (let i = 0; i < f.length; i++) {
    const c = f[i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  s = s.trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return undefined;
  const n = parseInt(s, 8);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Unsigned and signed sums of the block with the checksum field counted as spaces. */
function checksums(b: Uint8Array): { unsigned: number; signed: number } {
  let u = 0;
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    u += c;
    s += c > 127 ? c - 256 : c;
  }
  return { unsigned: u, signed: s };
}

export function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Decodes one header block. Corrupt numbers are coded errors (TAR_BAD_HEADER) with the offset. */
export function decodeHeader(b: Uint8Array, offset = 0): RawHeader {
  if (b.length < BLOCK) throw new DatarootError('TAR_TRUNCATED', `a tar header needs ${BLOCK} bytes, got ${b.length}`, { offset });
  const num = (off: number, len: number, field: string): number => {
    const v = parseNumeric(b, off, len);
    if (v === undefined) throw new DatarootError('TAR_BAD_HEADER', `the ${field} field of a tar header is not a number`, { offset });
    return v;
  };
  const magic = b.subarray(257, 263);
  const version = b.subarray(263, 265);
  let format: TarFormat = 'v7';
  if (magic[0] === 0x75 && magic[1] === 0x73 && magic[2] === 0x74 && magic[3] === 0x61 && magic[4] === 0x72) {
    if (magic[5] === 0 && version[0] === 0x30 && version[1] === 0x30) format = 'ustar';
    else if (magic[5] === 0x20 && version[0] === 0x20 && version[1] === 0) format = 'gnu';
    else if (magic[5] === 0) format = 'ustar';
  }
  const sum = checksums(b);
  const stored = parseNumeric(b, 148, 8);
  return {
    name: cbytes(b, 0, 100),
    mode: num(100, 8, 'mode'),
    uid: num(108, 8, 'uid'),
    gid: num(116, 8, 'gid'),
    size: num(124, 12, 'size'),
    mtime: num(136, 12, 'mtime'),
    checksum: stored ?? -1,
    checksumValid: stored !== undefined && (stored === sum.unsigned || stored === sum.signed),
    type: b[156]!,
    linkname: cbytes(b, 157, 100),
    format,
    uname: format === 'v7' ? new Uint8Array() : cbytes(b, 265, 32),
    gname: format === 'v7' ? new Uint8Array() : cbytes(b, 297, 32),
    devmajor: format === 'v7' ? 0 : num(329, 8, 'devmajor'),
    devminor: format === 'v7' ? 0 : num(337, 8, 'devminor'),
    prefix: format === 'ustar' ? cbytes(b, 345, 155) : new Uint8Array(),
  };
}

/** PAX extended header records: `"%d %s=%s\n"`, the length counting the whole record. */
export function parsePax(data: Uint8Array, offset = 0): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break; // NUL padding after the last record
    const sp = data.indexOf(0x20, i);
    if (sp < 0 || sp - i > 20) throw new DatarootError('TAR_BAD_PAX', 'a PAX record has no length', { offset: offset + i });
    let len = 0;
    for (let k = i; k < sp; k++) {
      const c = data[k]!;
      if (c < 0x30 || c > 0x39) throw new DatarootError('TAR_BAD_PAX', 'a PAX record length is not decimal', { offset: offset + i });
      len = len * 10 + (c - 0x30);
    }
    if (len <= sp - i + 1 || i + len > data.length || data[i + len - 1] !== 0x0a) {
      throw new DatarootError('TAR_BAD_PAX', `a PAX record of length ${len} does not fit its header`, { offset: offset + i });
    }
    const rec = data.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new DatarootError('TAR_BAD_PAX', 'a PAX record has no key=value', { offset: offset + i });
    out.set(new TextDecoder().decode(rec.subarray(0, eq)), rec.subarray(eq + 1));
    i += len;
  }
  return out;
}

/** One PAX record with its self-including length. */
export function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const body = te.encode(` ${key}=`);
  const base = body.length + value.length + 1;
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) len = base + String(len).length;
  const head = te.encode(String(len));
  const out = new Uint8Array(len);
  out.set(head, 0);
  out.set(body, head.length);
  out.set(value, head.length + body.length);
  out[len - 1] = 0x0a;
  return out;
}

/**
 * The data of a PAX header: a record for each pair, sorted by key (as Go sorts them; byte order
 * for these ASCII keys), so that the same entry always gives the same bytes.
 */
export function paxData(pairs: Iterable<readonly [string, Uint8Array]>): Uint8Array {
  const sorted = [...pairs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return concatBytes(sorted.map(([k, v]) => paxRecord(k, v)));
}

/** An entry's header blocks behind a PAX header: the `x` block, its data padded to a block, the entry's own block. */
export function withPaxHeader(xh: Uint8Array, data: Uint8Array, main: Uint8Array): Uint8Array {
  const out = new Uint8Array(BLOCK + data.length + padding(data.length) + BLOCK);
  out.set(xh, 0);
  out.set(data, BLOCK);
  out.set(main, BLOCK + data.length + padding(data.length));
  return out;
}

/** What a writer puts in a header (names as bytes; numbers already validated). */
export interface HeaderFields extends TarFields {
  linkname?: Uint8Array;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

function putOctal(b: Uint8Array, off: number, len: number, v: number): boolean {
  const s = Math.trunc(v).toString(8);
  if (v < 0 || s.length > len - 1) return false;
  const padded = s.padStart(len - 1, '0');
  for (let i = 0; i < len - 1; i++) b[off + i] = padded.charCodeAt(i);
  b[off + len - 1] = 0;
  return true;
}

function putBytes(b: Uint8Array, off: number, len: number, v: Uint8Array): boolean {
  if (v.length > len) return false;
  b.set(v, off);
  return true;
}

/**
 * Encodes a ustar header block. Returns the block and the PAX records needed for what ustar cannot
 * hold (long names, large numbers); the caller writes an `x` header with them first.
 */
export function encodeHeader(h: HeaderFields): { block: Uint8Array; pax: [string, Uint8Array][] } {
  const b = new Uint8Array(BLOCK);
  const pax: [string, Uint8Array][] = [];
  // Name: fits in name, or split as prefix/name at a slash, else PAX path.
  if (!putBytes(b, 0, 100, h.name)) {
    let split = -1;
    for (let i = Math.min(h.name.length - 1, 155); i > 0; i--) {
      if (h.name[i] === 0x2f && h.name.length - i - 1 <= 100 && h.name.length - i - 1 > 0) {
        split = i;
        break;
      }
    }
    if (split > 0) {
      b.set(h.name.subarray(split + 1), 0);
      b.set(h.name.subarray(0, split), 345);
    } else {
      b.set(h.name.subarray(0, 99), 0);
      pax.push(['path', h.name]);
    }
  }
  const num = (off: number, len: number, v: number, key: string): void => {
    if (!putOctal(b, off, len, v)) {
      putOctal(b, off, len, 0);
      pax.push([key, te.encode(String(v))]);
    }
  };
  num(100, 8, h.mode & 0o7777, 'mode');
  num(108, 8, h.uid, 'uid');
  num(116, 8, h.gid, 'gid');
  num(124, 12, h.size, 'size');
  num(136, 12, h.mtime, 'mtime');
  b[156] = h.type;
  const link = h.linkname ?? new Uint8Array();
  if (!putBytes(b, 157, 100, link)) {
    b.set(link.subarray(0, 99), 157);
    pax.push(['linkpath', link]);
  }
  b.set(te.encode('ustar\u000000'), 257);
  const un = te.encode(h.uname ?? '');
  const gn = te.encode(h.gname ?? '');
  if (!putBytes(b, 265, 32, un)) pax.push(['uname', un]);
  if (!putBytes(b, 297, 32, gn)) pax.push(['gname', gn]);
  num(329, 8, h.devmajor ?? 0, 'devmajor');
  num(337, 8, h.devminor ?? 0, 'devminor');
  writeChecksum(b);
  return { block: b, pax };
}

export function writeChecksum(b: Uint8Array): void {
  for (let i = 148; i < 156; i++) b[i] = 0x20;
  const { unsigned } = checksums(b);
  const s = unsigned.toString(8).padStart(6, '0');
  for (let i = 0; i < 6; i++) b[148 + i] = s.charCodeAt(i);
  b[154] = 0;
  b[155] = 0x20;
}

/** Bytes of padding after `size` bytes of data to reach the next block. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * Tar headers exactly as Go's archive/tar Writer writes them for the headers moby's pkg/archive
 * makes (`Format: tar.FormatPAX`): USTAR when every field fits (a long ASCII name split into
 * prefix and name), else a PAX `x` header named `<dir>/PaxHeaders.0/<base>` whose records are
 * sorted by key, then the main header with what does not fit truncated or zeroed. `docker export`,
 * `docker save` and `docker cp` all go through it, so equal fields give equal bytes. Pure: fields
 * in, blocks out. Go 1.19's `allowedFormats`, `writeUSTARHeader`, `writePAXHeader` and
 * `writeRawFile` are the reference (read, not copied).
 */
import { BLOCK, TYPE, paxData, withPaxHeader, type TarFields } from './header.js';

/** A header's fields: the name as bytes (a directory's ends with `/`), mtime in seconds (moby truncates to seconds). */
export interface GoHeader extends TarFields {
  linkname: Uint8Array;
  /** Permission bits with the file type bits (moby's fillGo18FileTypeBits): 0o100644, 0o40755. */
  mode: number;
  uname: Uint8Array;
  gname: Uint8Array;
  devmajor: number;
  devminor: number;
  /** Extended attributes (moby sets only security.capability), written as SCHILY.xattr.* records. */
  xattrs?: Map<string, Uint8Array>;
}

const te = new TextEncoder();
const NAME = 100;
const PREFIX = 155;

/** Go's isASCII: no byte of a non-ASCII character, no NUL. */
function isAscii(b: Uint8Array): boolean {
  for (const c of b) if (c >= 0x80 || c === 0) return false;
  return true;
}

/** Go's toASCII: drops every byte of a non-ASCII character (and NULs). */
function toAscii(b: Uint8Array): Uint8Array {
  if (isAscii(b)) return b;
  // Go iterates runes: each byte >= 0x80 belongs to a non-ASCII rune (or is invalid), and is dropped.
  return b.filter((c) => c < 0x80 && c !== 0);
}

/** Go's splitUSTARPath: [prefix, suffix] or undefined. */
function splitUstar(name: Uint8Array): [Uint8Array, Uint8Array] | undefined {
  let length = name.length;
  if (length <= NAME || !isAscii(name)) return undefined;
  if (length > PREFIX + 1) length = PREFIX + 1;
  else if (name[length - 1] === 0x2f) length--;
  const i = name.subarray(0, length).lastIndexOf(0x2f);
  const nlen = name.length - i - 1;
  if (i <= 0 || nlen > NAME || nlen === 0 || i > PREFIX) return undefined;
  return [name.subarray(0, i), name.subarray(i + 1)];
}

function fitsOctal(n: number, x: number): boolean {
  return x >= 0 && (n >= 22 || x < 8 ** (n - 1));
}

/** Go's formatter.formatString: copy, NUL-terminate when shorter, no trailing slash at a cut. */
function putString(b: Uint8Array, off: number, len: number, s: Uint8Array): void {
  const n = Math.min(len, s.length);
  b.set(s.subarray(0, n), off);
  if (s.length < len) b[off + s.length] = 0;
  if (s.length > len && b[off + len - 1] === 0x2f) {
    let k = len;
    while (k > 0 && s[k - 1] === 0x2f) k--;
    b[off + k] = 0;
  }
}

/** Go's formatter.formatOctal: leading zeros, room for a NUL; 0 when it does not fit. */
function putOctal(b: Uint8Array, off: number, len: number, x: number): void {
  const v = fitsOctal(len, x) ? x : 0;
  const s = v.toString(8).padStart(len - 1, '0');
  putString(b, off, len, te.encode(s));
}

function setMagicAndChecksum(b: Uint8Array): void {
  b.set(te.encode('ustar\u0000'), 257);
  b.set(te.encode('00'), 263);
  for (let i = 148; i < 156; i++) b[i] = 0x20;
  let sum = 0;
  for (const c of b) sum += c;
  putOctal(b, 148, 7, sum);
  b[155] = 0x20;
}

/** The V7 fields and the USTAR names and device numbers (Go's templateV7Plus), octal numbers. */
function template(h: GoHeader, name: Uint8Array, str: (s: Uint8Array) => Uint8Array): Uint8Array {
  const b = new Uint8Array(BLOCK);
  b[156] = h.type;
  putString(b, 0, NAME, str(name));
  putString(b, 157, NAME, str(h.linkname));
  putOctal(b, 100, 8, h.mode);
  putOctal(b, 108, 8, h.uid);
  putOctal(b, 116, 8, h.gid);
  putOctal(b, 124, 12, h.size);
  putOctal(b, 136, 12, h.mtime);
  putString(b, 265, 32, str(h.uname));
  putString(b, 297, 32, str(h.gname));
  putOctal(b, 329, 8, h.devmajor);
  putOctal(b, 337, 8, h.devminor);
  return b;
}

/** Go's path.Split then path.Join(dir, "PaxHeaders.0", file), as ASCII, at most 100 bytes, no trailing slash. */
function paxHeaderName(name: Uint8Array): Uint8Array {
  const cut = name.lastIndexOf(0x2f);
  const parts: Uint8Array[] = [];
  for (let i = 0, start = 0; i <= cut; i++) {
    if (name[i] === 0x2f) {
      if (i > start) parts.push(name.subarray(start, i));
      start = i + 1;
    }
  }
  parts.push(te.encode('PaxHeaders.0'));
  if (cut + 1 < name.length) parts.push(name.subarray(cut + 1));
  // path.Join cleans: the names here hold no "." or ".." (moby's names are relative and clean).
  const lead = name[0] === 0x2f ? 1 : 0;
  const joined = new Uint8Array(lead + parts.reduce((a, p) => a + p.length, 0) + parts.length - 1);
  if (lead === 1) joined[0] = 0x2f;
  let o = lead;
  parts.forEach((p, i) => {
    if (i > 0) joined[o++] = 0x2f;
    joined.set(p, o);
    o += p.length;
  });
  let bytes = toAscii(joined);
  if (bytes.length > NAME) bytes = bytes.subarray(0, NAME);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0x2f) end--;
  return bytes.subarray(0, end);
}

/**
 * The header blocks Go writes for `h` (one USTAR block, or a PAX header, its records and the main
 * block). Throws only for what Go itself refuses (a regular file, device or FIFO name ending in `/`).
 */
export function goTarHeader(h: GoHeader): Uint8Array {
  const pax = new Map<string, Uint8Array>();
  let ustar = true;
  let preferPax = false;
  const str = (s: Uint8Array, size: number, key: string): void => {
    if (!isAscii(s) || s.length > size) {
      if (key !== 'path' || splitUstar(s) === undefined) ustar = false;
      pax.set(key, s);
    }
  };
  const num = (n: number, size: number, key: string | undefined): void => {
    if (!fitsOctal(size, n)) {
      ustar = false;
      if (key !== undefined) pax.set(key, te.encode(String(n)));
    }
  };
  str(h.name, NAME, 'path');
  str(h.linkname, NAME, 'linkpath');
  str(h.uname, 32, 'uname');
  str(h.gname, 32, 'gname');
  num(h.mode, 8, undefined);
  num(h.uid, 8, 'uid');
  num(h.gid, 8, 'gid');
  num(h.size, 12, 'size');
  num(h.devmajor, 8, undefined);
  num(h.devminor, 8, undefined);
  if (!fitsOctal(12, h.mtime)) {
    ustar = false;
    preferPax = true;
    pax.set('mtime', te.encode(String(h.mtime)));
  }
  if (h.xattrs !== undefined && h.xattrs.size > 0) {
    for (const [k, v] of h.xattrs) pax.set(`SCHILY.xattr.${k}`, v);
    ustar = false;
  }
  if (preferPax) ustar = false;

  if (ustar) {
    const split = splitUstar(h.name);
    const b = template(h, split !== undefined ? split[1] : h.name, (s) => s);
    if (split !== undefined) putString(b, 345, PREFIX, split[0]);
    setMagicAndChecksum(b);
    return b;
  }
  // PAX: the `x` header and its records, then the main header with what does not fit cut.
  const data = paxData(pax);
  const xh = new Uint8Array(BLOCK);
  xh[156] = TYPE.PAX;
  putString(xh, 0, NAME, paxHeaderName(h.name));
  putOctal(xh, 100, 8, 0);
  putOctal(xh, 108, 8, 0);
  putOctal(xh, 116, 8, 0);
  putOctal(xh, 124, 12, data.length);
  putOctal(xh, 136, 12, 0);
  setMagicAndChecksum(xh);
  const main = template(h, h.name, toAscii);
  setMagicAndChecksum(main);
  return withPaxHeader(xh, data, main);
}

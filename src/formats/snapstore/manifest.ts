/**
 * The snapshot manifest format: the one definition, pure (strings and Uint8Array).
 *
 * A manifest is a JSON header line, then one identity line per entry (what identifies its content
 * and metadata), then one volatile line per entry (what changes without the entry changing:
 * times, inode, device, link count). Entries are in walk order.
 *
 *   identity line  [path, type, mode, uid, gid, size, sha256|null, stored 0|1|null, target|null,
 *                   [major, minor]|null, link|null, {xattr: base64}|null, pathBase64|null,
 *                   targetBase64|null, kind|null]
 *   volatile line  ["mtime ns", "atime ns", "ctime ns", "ino", "dev", nlink]
 *
 * On disk (the file container): "DRM2", the byte sizes of the two parts (header and identity
 * lines; volatile lines) and of the first zstd frame (u64 little-endian each), then two zstd
 * frames; or (early stores) one gzip stream of both parts.
 */
import { DatarootError } from '../errors.js';
import { view } from '../bytes.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
export type ContentKind = 'bolt' | 'gzip' | 'json' | 'text' | 'binary' | 'empty';

const ENTRY_TYPES: readonly EntryType[] = ['file', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket'];
/** Content kinds by number, as the native content pipeline's samples are classified. */
export const CONTENT_KINDS: readonly ContentKind[] = ['empty', 'bolt', 'gzip', 'binary', 'json', 'text'];

/** One entry of a snapshot: everything `restore` needs to write it back exactly. */
export interface ManifestEntry {
  /** Relative path with `/` ('' is the root itself). */
  path: string;
  /** The name's bytes, base64, when they are not UTF-8 (path then holds a lossy form). */
  pathBase64?: string;
  type: EntryType;
  /** Permission bits with setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Nanoseconds since the epoch, as decimal strings. */
  mtime: string;
  atime: string;
  ctime: string;
  ino: string;
  dev: string;
  nlink: number;
  /** Regular files: sha256 of the content, and whether the store holds it (not with --metadata-only). */
  sha256?: string;
  stored?: boolean;
  target?: string;
  targetBase64?: string;
  /** Devices: major, minor. */
  rdev?: [number, number];
  /** Hard links: the path of the first entry with this inode. */
  link?: string;
  /** Extended attributes, values base64, names sorted. */
  xattrs?: Record<string, string>;
  /** Regular files: what the first bytes look like, so a diff reads only contents it can explain. */
  kind?: ContentKind;
}

export interface ManifestHeader {
  format: 'dataroot-snapshot';
  version: 2;
  name: string;
  created: string;
  source: string;
  options: { exclude: string[]; metadataOnly: string[]; live: boolean };
  count: number;
  /** Bytes of the identity lines (so the volatile lines can be found without reading them). */
  identityBytes: number;
}

/** The facts of a file's head its kind follows from (the native pipeline gives them too). */
export interface HeadSample {
  /** Bytes of the head looked at (up to 8 KiB). */
  length: number;
  /** Its first two bytes (-1 past the end). */
  byte0: number;
  byte1: number;
  /** The u32 little-endian at offset 16 (-1 when the head is shorter than 20 bytes). */
  word16: number;
  /** The smallest byte value of the head (255 when empty). */
  minByte: number;
  /** The first byte of the head that is not a space, tab, CR or LF (0 when none). */
  firstNonSpace: number;
}

export const HEAD_BYTES = 8192;

export function headSample(head: Uint8Array): HeadSample {
  const n = Math.min(head.length, HEAD_BYTES);
  let minByte = 255;
  let firstNonSpace = 0;
  // An indexed loop: an iterator over the bytes cost 2-3 µs per file.
  for (let i = 0; i < n; i++) {
    const c = head[i]!;
    if (c < minByte) minByte = c;
    if (firstNonSpace === 0 && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) firstNonSpace = c;
  }
  return {
    length: n,
    byte0: n > 0 ? head[0]! : -1,
    byte1: n > 1 ? head[1]! : -1,
    word16: n >= 20 ? view(head).getUint32(16, true) : -1,
    minByte,
    firstNonSpace,
  };
}

/** A file's kind from the sample of its head: BoltDB magic at 16, gzip magic, binary, JSON, text. */
export function kindOfSample(s: HeadSample): ContentKind {
  if (s.length === 0) return 'empty';
  if (s.word16 === 0xed0cdaed || s.word16 === 0xedda0ced) return 'bolt';
  if (s.byte0 === 0x1f && s.byte1 === 0x8b) return 'gzip';
  if (s.minByte < 0x09) return 'binary';
  return s.firstNonSpace === 0x7b || s.firstNonSpace === 0x5b ? 'json' : 'text';
}

/** A file's kind from its first bytes (up to 8 KiB). */
export function contentKind(head: Uint8Array): ContentKind {
  return kindOfSample(headSample(head));
}

type Identity = [
  string,
  EntryType,
  number,
  number,
  number,
  number,
  string | null,
  0 | 1 | null,
  string | null,
  [number, number] | null,
  string | null,
  Record<string, string> | null,
  string | null,
  string | null,
  ContentKind | null,
];

export function identityLine(e: ManifestEntry): string {
  const x = e.xattrs === undefined ? null : Object.fromEntries(Object.entries(e.xattrs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const id: Identity = [
    e.path,
    e.type,
    e.mode,
    e.uid,
    e.gid,
    e.size,
    e.sha256 ?? null,
    e.stored === undefined ? null : e.stored ? 1 : 0,
    e.target ?? null,
    e.rdev ?? null,
    e.link ?? null,
    x,
    e.pathBase64 ?? null,
    e.targetBase64 ?? null,
    e.kind ?? null,
  ];
  return JSON.stringify(id);
}

/** The volatile line of an entry's times and inode (every field decimal). */
export function volatileOf(mtime: string, atime: string, ctime: string, ino: string, dev: string, nlink: number | string): string {
  return `["${mtime}","${atime}","${ctime}","${ino}","${dev}",${nlink}]`;
}

/**
 * The volatile line as a template for the addon's tree scan, which renders and matches the
 * lines of what it walks without a definition of its own: the line of volatileOf with a marker
 * byte for each field (1 mtime, 2 atime, 3 ctime, 4 ino, 5 dev, 6 nlink).
 */
export function volatileTemplate(): Uint8Array {
  return new TextEncoder().encode(volatileOf('\x01', '\x02', '\x03', '\x04', '\x05', '\x06'));
}

export function volatileLine(e: ManifestEntry): string {
  return volatileOf(e.mtime, e.atime, e.ctime, e.ino, e.dev, e.nlink);
}

/** A volatile line of an entry whose times are not known (what a diff compares without them). */
export const NO_VOLATILE = '["0","0","0","0","0",0]';

function lineCorrupt(why: string): DatarootError {
  return new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `a manifest line ${why}`);
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isOptStr = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isDec = (v: unknown): v is string => typeof v === 'string' && /^-?[0-9]{1,40}$/.test(v);

/** An entry from its two lines; every field's type is checked (a manifest may be hostile). */
export function decodeEntry(idLine: string, volLine: string): ManifestEntry {
  let id: unknown;
  let v: unknown;
  try {
    id = JSON.parse(idLine);
    v = JSON.parse(volLine);
  } catch {
    throw lineCorrupt('is not JSON');
  }
  if (!Array.isArray(id) || id.length < 14 || !Array.isArray(v) || v.length !== 6) throw lineCorrupt('has the wrong number of fields');
  const [path, type, mode, uid, gid, size, sha256, stored, target, rdev, link, xattrs, pathBase64, targetBase64, kind] = id as unknown[];
  if (
    typeof path !== 'string' ||
    !ENTRY_TYPES.includes(type as EntryType) ||
    !isInt(mode) ||
    mode < 0 ||
    mode > 0o7777 ||
    !isInt(uid) ||
    uid < 0 ||
    !isInt(gid) ||
    gid < 0 ||
    !isInt(size) ||
    size < 0
  ) {
    throw lineCorrupt(`has an impossible path, type, mode, owner or size (${idLine.slice(0, 120)})`);
  }
  if (
    !isOptStr(sha256) ||
    (sha256 !== null && !/^[0-9a-f]{64}$/.test(sha256)) ||
    !(stored === null || stored === 0 || stored === 1) ||
    !isOptStr(target) ||
    !isOptStr(link) ||
    !isOptStr(pathBase64) ||
    !isOptStr(targetBase64)
  ) {
    throw lineCorrupt(`has an impossible field (${idLine.slice(0, 120)})`);
  }
  if (rdev !== null && !(Array.isArray(rdev) && rdev.length === 2 && rdev.every((x) => isInt(x) && x >= 0))) throw lineCorrupt('has impossible device numbers');
  if (xattrs !== null && (typeof xattrs !== 'object' || Array.isArray(xattrs) || !Object.values(xattrs).every((x) => typeof x === 'string')))
    throw lineCorrupt('has impossible xattrs');
  if (kind !== null && kind !== undefined && !CONTENT_KINDS.includes(kind as ContentKind)) throw lineCorrupt('has an unknown content kind');
  const [mtime, atime, ctime, ino, dev, nlink] = v as unknown[];
  if (!isDec(mtime) || !isDec(atime) || !isDec(ctime) || !isDec(ino) || !isDec(dev) || !isInt(nlink))
    throw lineCorrupt(`has impossible times (${volLine.slice(0, 120)})`);
  const e: ManifestEntry = { path, type: type as EntryType, mode, uid, gid, size, mtime, atime, ctime, ino, dev, nlink };
  if (sha256 !== null) e.sha256 = sha256;
  if (stored !== null) e.stored = stored === 1;
  if (target !== null) e.target = target;
  if (rdev !== null) e.rdev = rdev as [number, number];
  if (link !== null) e.link = link;
  if (xattrs !== null) e.xattrs = xattrs as Record<string, string>;
  if (pathBase64 !== null) e.pathBase64 = pathBase64;
  if (targetBase64 !== null) e.targetBase64 = targetBase64;
  if (kind !== null && kind !== undefined) e.kind = kind as ContentKind;
  return e;
}

/** The header line, checked. */
export function decodeHeader(line: string): ManifestHeader {
  let h: unknown;
  try {
    h = JSON.parse(line);
  } catch {
    throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', 'the manifest has no JSON header line');
  }
  const o = h as Partial<ManifestHeader> | null;
  if (o === null || typeof o !== 'object' || o.format !== 'dataroot-snapshot' || o.version !== 2)
    throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', 'not a version 2 dataroot manifest');
  if (!isInt(o.count) || o.count < 0 || !isInt(o.identityBytes) || o.identityBytes < 0)
    throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', 'the manifest header has impossible counts');
  return o as ManifestHeader;
}

export function encodeHeader(h: ManifestHeader): string {
  return `${JSON.stringify(h)}\n`;
}

// ---- the file container ----

export const MANIFEST_MAGIC = new Uint8Array([0x44, 0x52, 0x4d, 0x32]); // "DRM2"
export const MANIFEST_HEAD = 28;
/** The largest part a manifest may declare (2 GiB: far above any data-root's lines). */
export const MANIFEST_PART_MAX = 2 ** 31;

export type ManifestFile =
  { kind: 'zstd'; identitySize: number; volatileSize: number; identityFrame: Uint8Array; volatileFrame: Uint8Array } | { kind: 'gzip'; stream: Uint8Array };

/** The container around two compressed parts. */
export function encodeManifestFile(identitySize: number, volatileSize: number, identityFrame: Uint8Array, volatileFrame: Uint8Array): Uint8Array {
  const out = new Uint8Array(MANIFEST_HEAD + identityFrame.length + volatileFrame.length);
  const v = view(out);
  out.set(MANIFEST_MAGIC, 0);
  v.setBigUint64(4, BigInt(identitySize), true);
  v.setBigUint64(12, BigInt(volatileSize), true);
  v.setBigUint64(20, BigInt(identityFrame.length), true);
  out.set(identityFrame, MANIFEST_HEAD);
  out.set(volatileFrame, MANIFEST_HEAD + identityFrame.length);
  return out;
}

export function decodeManifestFile(b: Uint8Array): ManifestFile {
  const bad = (why: string): DatarootError => new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the manifest cannot be read (${why})`);
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return { kind: 'gzip', stream: b };
  if (b.length < MANIFEST_HEAD || !MANIFEST_MAGIC.every((c, i) => b[i] === c)) throw bad('neither gzip nor zstd');
  const v = view(b);
  const n1 = v.getBigUint64(4, true);
  const n2 = v.getBigUint64(12, true);
  const f1 = v.getBigUint64(20, true);
  if (n1 > MANIFEST_PART_MAX || n2 > MANIFEST_PART_MAX || BigInt(MANIFEST_HEAD) + f1 > BigInt(b.length)) throw bad('impossible sizes');
  const end = MANIFEST_HEAD + Number(f1);
  return { kind: 'zstd', identitySize: Number(n1), volatileSize: Number(n2), identityFrame: b.subarray(MANIFEST_HEAD, end), volatileFrame: b.subarray(end) };
}

// ---- paths of entries, as restore writes them ----

/**
 * Why a manifest path cannot be written beneath a target, or undefined when it can: not empty
 * components, `.` or `..`, not absolute, no NUL. `bytes`: the raw name (from pathBase64 or the
 * UTF-8 of path).
 */
export function entryPathProblem(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return undefined; // the root itself
  if (bytes.length > 4095) return 'is longer than PATH_MAX';
  if (bytes[0] === 0x2f) return 'is absolute';
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] === 0) return 'holds a NUL byte';
    if (i === bytes.length || bytes[i] === 0x2f) {
      const len = i - start;
      if (len === 0) return 'has an empty component';
      if (len === 1 && bytes[start] === 0x2e) return 'has a "." component';
      if (len === 2 && bytes[start] === 0x2e && bytes[start + 1] === 0x2e) return 'has a ".." component';
      if (len > 255) return 'has a component longer than NAME_MAX';
      start = i + 1;
    }
  }
  return undefined;
}

/** The raw bytes of an entry's path: pathBase64 decoded, else path as UTF-8. */
export function entryPathBytes(e: Pick<ManifestEntry, 'path' | 'pathBase64'>): Uint8Array {
  if (e.pathBase64 === undefined) return new TextEncoder().encode(e.path);
  let bin: string;
  try {
    bin = atob(e.pathBase64);
  } catch {
    throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the pathBase64 of ${JSON.stringify(e.path)} is not base64`);
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

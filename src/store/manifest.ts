import { gunzipSync, gzipSync } from 'node:zlib';
import { DatarootError } from '../formats/errors.js';
import { zstdAvailable, zstdCompress, zstdCompressAsync, zstdDecompress, zstdDecompressAsync } from '../io/native.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

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

export type ContentKind = 'bolt' | 'gzip' | 'json' | 'text' | 'binary' | 'empty';

/** Content kinds by number, as the native content pipeline reports them (io/native packFiles). */
export const CONTENT_KINDS: readonly ContentKind[] = ['empty', 'bolt', 'gzip', 'binary', 'json', 'text'];

/** A file's kind from its first bytes (up to 8 KiB): BoltDB magic at 16, gzip magic, JSON, text. */
export function contentKind(head: Uint8Array): ContentKind {
  if (head.length === 0) return 'empty';
  if (head.length >= 20) {
    const m = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(16, true);
    if (m === 0xed0cdaed || m === 0xedda0ced) return 'bolt';
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  // An indexed loop: an iterator over the bytes cost 2-3 µs per file, 55 ms of a 20,000-file snapshot.
  for (let i = 0, n = Math.min(head.length, 8192); i < n; i++) if (head[i]! < 0x09) return 'binary';
  const first = head.find((c) => c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09);
  return first === 0x7b || first === 0x5b ? 'json' : 'text';
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

/**
 * A manifest on disk: a JSON header line, then one line per entry with what identifies its
 * content and metadata (path, type, mode, owner, size, hash, link target, device numbers, hard
 * link, xattrs), then one line per entry with what changes without the entry changing (times,
 * inode, device, link count). Entries are in walk order. Compressed with zstd when the addon has
 * it, else gzip (told apart by their magic).
 *
 * In memory the text stays one Buffer with the offsets of its lines: comparing two snapshots
 * compares identity lines byte for byte where they lie, and decodes only those that differ.
 */
export class ManifestLines {
  private offsets: { id: Int32Array; vol: Int32Array } | undefined;
  /** Byte offsets of the identity section. */
  readonly idStart: number;
  readonly idEnd: number;

  private vol: Buffer | undefined;

  constructor(
    readonly header: ManifestHeader,
    /** The header line and the identity lines. */
    private readonly text: Buffer,
    /** The volatile lines, or how to get them (they are decompressed only when needed). */
    private readonly volatileText: Buffer | (() => Buffer),
  ) {
    this.idStart = text.indexOf(0x0a) + 1;
    this.idEnd = this.idStart + header.identityBytes;
    if (this.idStart <= 0 || this.idEnd !== text.length || (header.count > 0 && text[this.idEnd - 1] !== 0x0a)) {
      throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', 'the manifest is truncated or its sections do not match its header');
    }
  }

  get count(): number {
    return this.header.count;
  }

  private volatileBytes(): Buffer {
    this.vol ??= typeof this.volatileText === 'function' ? this.volatileText() : this.volatileText;
    return this.vol;
  }

  /** Offsets of every line (for reading entries by index: restore, show, the previous snapshot). */
  private index(): { id: Int32Array; vol: Int32Array } {
    if (this.offsets !== undefined) return this.offsets;
    const n = this.header.count;
    const id = new Int32Array(n + 1);
    const vol = new Int32Array(n + 1);
    const scan = (buf: Buffer, arr: Int32Array, from: number): void => {
      let at = from;
      for (let i = 0; i < n; i++) {
        arr[i] = at;
        const nl = buf.indexOf(0x0a, at);
        if (nl < 0) throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', 'the manifest is truncated');
        at = nl + 1;
      }
      arr[n] = at;
    };
    scan(this.text, id, this.idStart);
    scan(this.volatileBytes(), vol, 0);
    this.offsets = { id, vol };
    return this.offsets;
  }

  entry(i: number): ManifestEntry {
    const { id, vol } = this.index();
    return decodeEntry(this.text.toString('utf8', id[i]!, id[i + 1]! - 1), this.volatileBytes().toString('utf8', vol[i]!, vol[i + 1]! - 1));
  }

  /** Entry i's identity line, newline included, as bytes (to carry it into a new manifest). */
  identityBytes(i: number): Buffer {
    const { id } = this.index();
    return this.text.subarray(id[i]!, id[i + 1]!);
  }

  /** Entry i's volatile line (no newline). */
  volatileLine(i: number): string {
    const { vol } = this.index();
    return this.volatileBytes().toString('latin1', vol[i]!, vol[i + 1]! - 1);
  }

  /** Entry i's path. */
  pathOf(i: number): string {
    return this.pathAt(this.index().id[i]!);
  }

  entries(): ManifestEntry[] {
    const out: ManifestEntry[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.entry(i));
    return out;
  }

  /** The end (the newline) of the identity line that starts at byte p. */
  lineEnd(p: number): number {
    const nl = this.text.indexOf(0x0a, p);
    return nl < 0 || nl > this.idEnd ? this.idEnd - 1 : nl;
  }

  /** The start of the identity line that holds byte p. */
  lineStart(p: number): number {
    return p <= this.idStart ? this.idStart : this.text.lastIndexOf(0x0a, p - 1) + 1;
  }

  /** Bytes [pa, pa+k) here equal bytes [pb, pb+k) there. */
  sameBytes(pa: number, other: ManifestLines, pb: number, k: number): boolean {
    return this.text.compare(other.text, pb, pb + k, pa, pa + k) === 0;
  }

  /** The path of the identity line at byte p, without parsing the rest of the line. */
  pathAt(p: number): string {
    const t = this.text;
    const start = p + 1; // after '['
    let j = start + 1;
    let escaped = false;
    for (; j < t.length; j++) {
      const c = t[j]!;
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) break;
    }
    const raw = t.toString('utf8', start, j + 1);
    return raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
  }

  /** The entry of the identity line at byte p (times and inode left empty: what a diff compares). */
  entryAt(p: number): ManifestEntry {
    return decodeEntry(this.text.toString('utf8', p, this.lineEnd(p)), NO_VOLATILE);
  }

  /** The two parts as they are written to disk (before compression). */
  parts(): [Buffer, Buffer] {
    return [this.text, this.volatileBytes()];
  }
}

const NO_VOLATILE = '["0","0","0","0","0",0]';

type Identity = [string, EntryType, number, number, number, number, string | null, 0 | 1 | null, string | null, [number, number] | null, string | null, Record<string, string> | null, string | null, string | null, ContentKind | null];
type Volatile = [string, string, string, string, string, number];

export function identityLine(e: ManifestEntry): string {
  const x = e.xattrs === undefined ? null : Object.fromEntries(Object.entries(e.xattrs).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const id: Identity = [e.path, e.type, e.mode, e.uid, e.gid, e.size, e.sha256 ?? null, e.stored === undefined ? null : e.stored ? 1 : 0, e.target ?? null, e.rdev ?? null, e.link ?? null, x, e.pathBase64 ?? null, e.targetBase64 ?? null, e.kind ?? null];
  return JSON.stringify(id);
}

export function volatileLine(e: ManifestEntry): string {
  return volatileOf(e.mtime, e.atime, e.ctime, e.ino, e.dev, e.nlink);
}

function decodeEntry(idLine: string, volLine: string): ManifestEntry {
  let id: Identity;
  let v: Volatile;
  try {
    id = JSON.parse(idLine) as Identity;
    v = JSON.parse(volLine) as Volatile;
  } catch {
    throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', 'a manifest line is not JSON');
  }
  const e: ManifestEntry = { path: id[0], type: id[1], mode: id[2], uid: id[3], gid: id[4], size: id[5], mtime: v[0], atime: v[1], ctime: v[2], ino: v[3], dev: v[4], nlink: v[5] };
  if (id[6] !== null) e.sha256 = id[6];
  if (id[7] !== null) e.stored = id[7] === 1;
  if (id[8] !== null) e.target = id[8];
  if (id[9] !== null) e.rdev = id[9];
  if (id[10] !== null) e.link = id[10];
  if (id[11] !== null) e.xattrs = id[11];
  if (id[12] !== null) e.pathBase64 = id[12];
  if (id[13] !== null) e.targetBase64 = id[13];
  if (id[14] !== null && id[14] !== undefined) e.kind = id[14];
  return e;
}

/**
 * Entries carried over unchanged from the previous snapshot: their identity lines verbatim (with
 * their newlines) and volatile lines of now (the access time may differ). One entry with a
 * volatile line as text, or a run of `count` entries whose volatile lines (newlines included)
 * are a Buffer.
 */
export interface CarriedEntry {
  carried: Buffer;
  volatile: string | Buffer;
  count?: number;
}

export function isCarried(e: ManifestEntry | CarriedEntry): e is CarriedEntry {
  return (e as CarriedEntry).carried !== undefined;
}

/** The volatile line of an entry's times and inode. */
export function volatileOf(mtime: string, atime: string, ctime: string, ino: string, dev: string, nlink: number): string {
  return `["${mtime}","${atime}","${ctime}","${ino}","${dev}",${nlink}]`;
}

/** The two sections of a manifest whose entries are all described in full, written ahead (or nothing). */
export interface ManifestLinesAhead {
  identityText?: Buffer;
  volatileText?: Buffer;
  /** How many entries the sections hold. */
  count?: number;
}

/** Entries into a manifest (with lines already written for some of them, `ahead`). */
export function manifestOf(header: Omit<ManifestHeader, 'count' | 'format' | 'version' | 'identityBytes'>, entries: (ManifestEntry | CarriedEntry)[], ahead?: ManifestLinesAhead): ManifestLines {
  if (ahead?.identityText !== undefined && ahead.volatileText !== undefined && ahead.count === entries.length) {
    const h: ManifestHeader = { format: 'dataroot-snapshot', version: 2, ...header, count: entries.length, identityBytes: ahead.identityText.length };
    return new ManifestLines(h, Buffer.concat([Buffer.from(`${JSON.stringify(h)}\n`), ahead.identityText]), ahead.volatileText);
  }
  const parts: Buffer[] = [];
  let pending: string[] = [];
  const flush = (): void => {
    if (pending.length > 0) parts.push(Buffer.from(pending.join('')));
    pending = [];
  };
  entries.forEach((e) => {
    if (isCarried(e)) {
      flush();
      parts.push(e.carried);
    } else pending.push(`${identityLine(e)}\n`);
  });
  flush();
  const identity = Buffer.concat(parts);
  let count = 0;
  const volParts: Buffer[] = [];
  let volText: string[] = [];
  entries.forEach((e) => {
    if (isCarried(e) && typeof e.volatile !== 'string') {
      if (volText.length > 0) volParts.push(Buffer.from(volText.join('')));
      volText = [];
      volParts.push(e.volatile);
      count += e.count ?? 1;
    } else {
      volText.push(`${isCarried(e) ? e.volatile : volatileLine(e)}\n`);
      count++;
    }
  });
  if (volText.length > 0) volParts.push(Buffer.from(volText.join('')));
  const h: ManifestHeader = { format: 'dataroot-snapshot', version: 2, ...header, count, identityBytes: identity.length };
  const vol = Buffer.concat(volParts);
  return new ManifestLines(h, Buffer.concat([Buffer.from(`${JSON.stringify(h)}\n`), identity]), vol);
}

const ZSTD_MAGIC = Buffer.from('DRM2');

/**
 * On disk: with zstd, "DRM2", the sizes of the two parts and of the first frame (u64 little-endian
 * each), then two zstd frames (header and identity lines; volatile lines), so a diff decompresses
 * only the first; without zstd, one gzip stream of both parts.
 */
export function encodeManifest(m: ManifestLines): Buffer {
  const [first, second] = m.parts();
  if (!zstdAvailable()) return gzipSync(Buffer.concat([first, second]));
  return framed(first, second, zstdCompress(first, 1), zstdCompress(second, 1));
}

/** The same, the two parts compressed at once on the thread pool. */
export async function encodeManifestAsync(m: ManifestLines): Promise<Buffer> {
  const [first, second] = m.parts();
  if (!zstdAvailable()) return gzipSync(Buffer.concat([first, second]));
  const [f1, f2] = await Promise.all([zstdCompressAsync(first, 1), zstdCompressAsync(second, 1)]);
  return framed(first, second, f1, f2);
}

function framed(first: Buffer, second: Buffer, f1: Buffer, f2: Buffer): Buffer {
  const head = Buffer.alloc(28);
  ZSTD_MAGIC.copy(head, 0);
  head.writeBigUInt64LE(BigInt(first.length), 4);
  head.writeBigUInt64LE(BigInt(second.length), 12);
  head.writeBigUInt64LE(BigInt(f1.length), 20);
  return Buffer.concat([head, f1, f2]);
}

function corrupt(what: string, why: string): DatarootError {
  return new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the manifest of ${what} cannot be read (${why})`);
}

/** The sizes in a zstd manifest's head: identity part, volatile part, first frame; undefined for gzip or garbage. */
function zstdSizes(b: Buffer): { n1: number; n2: number; f1: number } | undefined {
  if (b.length < 28 || !b.subarray(0, 4).equals(ZSTD_MAGIC)) return undefined;
  const n1 = Number(b.readBigUInt64LE(4));
  const n2 = Number(b.readBigUInt64LE(12));
  const f1 = Number(b.readBigUInt64LE(20));
  return n1 > 2 ** 31 || n2 > 2 ** 31 || 28 + f1 > b.length ? undefined : { n1, n2, f1 };
}

/** decodeManifest with the identity part decompressed on the thread pool (several manifests at once). */
export async function decodeManifestAsync(b: Buffer, what: string, withVolatile = false): Promise<ManifestLines> {
  const z = zstdSizes(b);
  if (z === undefined) return decodeManifest(b, what);
  let first: Buffer;
  let second: Buffer | undefined;
  try {
    // with the volatile lines too: both parts at once
    [first, second] = await Promise.all([zstdDecompressAsync(b.subarray(28, 28 + z.f1), z.n1), withVolatile ? zstdDecompressAsync(b.subarray(28 + z.f1), z.n2) : undefined]);
  } catch (e) {
    throw corrupt(what, (e as Error).message);
  }
  return decodeManifest(b, what, first, second);
}

/** A manifest from its bytes; `identity`: its first part, already decompressed. */
export function decodeManifest(b: Buffer, what: string, identity?: Buffer, volatile?: Buffer): ManifestLines {
  let first: Buffer;
  let second: Buffer | (() => Buffer);
  try {
    if (b[0] === 0x1f && b[1] === 0x8b) {
      const all = gunzipSync(b);
      const h = JSON.parse(all.toString('utf8', 0, all.indexOf(0x0a))) as ManifestHeader;
      const cut = all.indexOf(0x0a) + 1 + h.identityBytes;
      first = all.subarray(0, cut);
      second = all.subarray(cut);
    } else if (b.length >= 28 && b.subarray(0, 4).equals(ZSTD_MAGIC)) {
      const z = zstdSizes(b);
      if (z === undefined) throw new Error('impossible sizes');
      const { n1, n2, f1 } = z;
      first = identity ?? zstdDecompress(b.subarray(28, 28 + f1), n1);
      second = volatile ?? (() => {
        try {
          return zstdDecompress(b.subarray(28 + f1), n2);
        } catch (e) {
          throw corrupt(what, (e as Error).message);
        }
      });
    } else throw new Error('neither gzip nor zstd');
  } catch (e) {
    if (e instanceof DatarootError && e.code === 'SNAPSHOT_MANIFEST_CORRUPT') throw e;
    throw corrupt(what, (e as Error).message);
  }
  let header: ManifestHeader;
  try {
    header = JSON.parse(first.toString('utf8', 0, first.indexOf(0x0a))) as ManifestHeader;
  } catch {
    throw corrupt(what, 'no header');
  }
  if (header.format !== 'dataroot-snapshot' || header.version !== 2 || !Number.isSafeInteger(header.count) || header.count < 0) throw corrupt(what, 'not a version 2 dataroot manifest');
  try {
    return new ManifestLines(header, first, second);
  } catch (e) {
    if (e instanceof DatarootError) throw corrupt(what, e.message);
    throw e;
  }
}

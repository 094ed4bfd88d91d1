import { gunzipSync } from 'node:zlib';
import { DatarootError } from '../../formats/errors.js';
import {
  decodeEntry,
  decodeHeader,
  decodeManifestFile,
  encodeHeader,
  encodeManifestFile,
  identityLine,
  NO_VOLATILE,
  volatileLine,
  type ManifestEntry,
  type ManifestHeader,
} from '../../formats/snapstore/manifest.js';
import { zstdCompressAsync, zstdDecompress, zstdDecompressAsync } from '../../io/zstd.js';

export { type ManifestEntry, type ManifestHeader } from '../../formats/snapstore/manifest.js';

/**
 * A snapshot's manifest in memory (the format: formats/snapstore/manifest.ts): a JSON header
 * line, the identity lines, the volatile lines. Written with zstd; early stores' gzip manifests
 * are read too.
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
    return decodeEntry(this.text.toString('utf8', id[i], id[i + 1]! - 1), this.volatileBytes().toString('utf8', vol[i], vol[i + 1]! - 1));
  }

  /** Entry i's identity line, newline included, as bytes (to carry it into a new manifest). */
  identityBytes(i: number): Buffer {
    const { id } = this.index();
    return this.text.subarray(id[i], id[i + 1]);
  }

  /** Entry i's volatile line (no newline). */
  volatileLine(i: number): string {
    const { vol } = this.index();
    return this.volatileBytes().toString('latin1', vol[i], vol[i + 1]! - 1);
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
    return new ManifestLines(h, Buffer.concat([Buffer.from(encodeHeader(h)), ahead.identityText]), ahead.volatileText);
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
  let identityBytes = 0;
  for (const p of parts) identityBytes += p.length;
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
      volText.push(`${isCarried(e) ? e.volatile.toString() : volatileLine(e)}\n`);
      count++;
    }
  });
  if (volText.length > 0) volParts.push(Buffer.from(volText.join('')));
  const h: ManifestHeader = { format: 'dataroot-snapshot', version: 2, ...header, count, identityBytes };
  // one copy of the identity lines (after the header), none of volatile lines carried as one run
  const vol = volParts.length === 1 ? volParts[0]! : Buffer.concat(volParts);
  return new ManifestLines(h, Buffer.concat([Buffer.from(encodeHeader(h)), ...parts]), vol);
}

/** A manifest's bytes on disk: two zstd frames (header and identity lines; volatile lines) in their container. */
export async function encodeManifestAsync(m: ManifestLines): Promise<Buffer> {
  const [first, second] = m.parts();
  const [f1, f2] = await Promise.all([zstdCompressAsync(first, 1), zstdCompressAsync(second, 1)]);
  const b = encodeManifestFile(first.length, second.length, f1, f2);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function corrupt(what: string, why: string): DatarootError {
  return new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the manifest of ${what} cannot be read (${why})`);
}

/** decodeManifest with the identity part decompressed on the thread pool (several manifests at once). */
export async function decodeManifestAsync(b: Buffer, what: string, withVolatile = false): Promise<ManifestLines> {
  let f;
  try {
    f = decodeManifestFile(b);
  } catch (e) {
    throw corrupt(what, (e as Error).message);
  }
  if (f.kind !== 'zstd') return decodeManifest(b, what);
  let first: Buffer;
  let second: Buffer | undefined;
  try {
    // with the volatile lines too: both parts at once
    [first, second] = await Promise.all([zstdDecompressAsync(f.identityFrame, f.identitySize), withVolatile ? zstdDecompressAsync(f.volatileFrame, f.volatileSize) : undefined]);
  } catch (e) {
    throw corrupt(what, (e as Error).message);
  }
  return decodeManifest(b, what, first, second);
}

/** A manifest from its bytes; `identity`, `volatile`: its parts, already decompressed. */
export function decodeManifest(b: Buffer, what: string, identity?: Buffer, volatile?: Buffer): ManifestLines {
  let first: Buffer;
  let second: Buffer | (() => Buffer);
  try {
    const f = decodeManifestFile(b);
    if (f.kind === 'gzip') {
      const all = gunzipSync(f.stream, { maxOutputLength: 2 ** 31 });
      const h = decodeHeader(all.toString('utf8', 0, all.indexOf(0x0a)));
      const cut = all.indexOf(0x0a) + 1 + h.identityBytes;
      first = all.subarray(0, cut);
      second = all.subarray(cut);
    } else {
      first = identity ?? zstdDecompress(f.identityFrame, f.identitySize);
      second =
        volatile ??
        (() => {
          try {
            return zstdDecompress(f.volatileFrame, f.volatileSize);
          } catch (e) {
            throw corrupt(what, (e as Error).message);
          }
        });
    }
  } catch (e) {
    if (e instanceof DatarootError && e.code === 'SNAPSHOT_MANIFEST_CORRUPT') throw corrupt(what, e.message);
    throw corrupt(what, (e as Error).message);
  }
  let header: ManifestHeader;
  try {
    header = decodeHeader(first.toString('utf8', 0, first.indexOf(0x0a)));
  } catch (e) {
    throw corrupt(what, (e as Error).message);
  }
  try {
    return new ManifestLines(header, first, second);
  } catch (e) {
    if (e instanceof DatarootError) throw corrupt(what, e.message);
    throw e;
  }
}


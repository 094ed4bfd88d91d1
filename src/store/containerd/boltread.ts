import { isBucketEntry, type BoltFile, type BucketRef } from '../../formats/bolt/db.js';
import { encodeUtf8, utf8 } from '../../formats/bytes.js';
import { decodeBinaryTime, formatBinaryTime, varintNumber, ZERO_TIME, type BinaryTime } from '../../formats/containerd/values.js';

/**
 * Small readers over a BoltDB bucket, the way containerd's boltutil reads its records: keys as
 * strings, values copied out of the page cache, labels as string maps, timestamps as Go times.
 */
/**
 * How containerd's BoltDB files are read: bbolt's copy-on-write scatters a bucket's pages over the
 * whole file (a meta.db of tens of MiB holds a few MiB of live pages), so reads are page-sized
 * (4 KiB chunks: what is not read is never copied), up to 64 MiB kept. Chunks are never reused, so
 * values can stay views into them.
 */
export function boltReadOptions(_size: number): { chunkSize: number; maxChunks: number } {
  const k = Number(process.env['DATAROOT_BOLT_CHUNK'] ?? 65536);
  return { chunkSize: k, maxChunks: Math.ceil((64 << 20) / k) };
}

export interface Entry {
  key: string;
  /** The value (a view into the file's buffer), for a key/value entry. */
  value?: Uint8Array;
  /** The nested bucket, for a bucket entry. */
  bucket?: BucketRef;
}

/** Bytes as text: short ASCII without a TextDecoder call (keys and names are mostly that). */
export function text(b: Uint8Array): string {
  if (b.length <= 96) {
    let s = '';
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c >= 0x80) return utf8(b);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8(b);
}

export function entries(db: BoltFile, b: BucketRef): Entry[] {
  const out: Entry[] = [];
  db.forEachEntry(b, undefined, (e) => {
    const key = text(e.key);
    if (isBucketEntry(e)) out.push({ key, bucket: db.openBucket(e.value, key) });
    else out.push({ key, value: e.value });
  });
  return out;
}

/** The entries as a map (bucket entries and values), for records with known keys. */
export function record(db: BoltFile, b: BucketRef): Map<string, Entry> {
  const out = new Map<string, Entry>();
  db.forEachEntry(b, undefined, (e) => {
    const key = text(e.key);
    out.set(key, isBucketEntry(e) ? { key, bucket: db.openBucket(e.value, key) } : { key, value: e.value });
  });
  return out;
}

export function sub(db: BoltFile, b: BucketRef | undefined, ...names: string[]): BucketRef | undefined {
  let cur = b;
  for (const n of names) {
    if (cur === undefined) return undefined;
    const e = db.lookup(cur, encodeUtf8(n));
    if (e === undefined || !isBucketEntry(e)) return undefined;
    cur = db.openBucket(e.value, n);
  }
  return cur;
}

export function str(r: Map<string, Entry>, k: string): string | undefined {
  const v = r.get(k)?.value;
  return v === undefined ? undefined : text(v);
}

/** A string map sub-bucket (labels, annotations); undefined when absent (containerd: nil map). */
export function stringMap(db: BoltFile, r: Map<string, Entry>, k: string): Record<string, string> | undefined {
  const b = r.get(k)?.bucket;
  if (b === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries(db, b)) if (e.value !== undefined) out[e.key] = text(e.value);
  return out;
}

/** The keys of a sub-bucket (lease resources, snapshot children). */
export function keysOf(db: BoltFile, b: BucketRef | undefined): string[] {
  return b === undefined ? [] : entries(db, b).map((e) => e.key);
}

export interface TimeField {
  /** RFC 3339 with nanoseconds, as containerd's JSON prints it (formatted when first read). */
  readonly text: string;
  /** Milliseconds since the Unix epoch (NaN when absent or undecodable). */
  readonly ms: number;
  readonly raw?: BinaryTime;
  readonly bad?: boolean;
}

class DecodedTime implements TimeField {
  private shown: string | undefined;
  readonly ms: number;
  constructor(readonly raw: BinaryTime) {
    this.ms = Number(raw.unix) * 1000 + raw.nanos / 1e6;
  }
  get text(): string {
    return (this.shown ??= formatBinaryTime(this.raw));
  }
}

/** A timestamp key: Go's zero time when absent; `bad` when present but not a Go binary time. */
export function time(r: Map<string, Entry>, k: string): TimeField {
  const v = r.get(k)?.value;
  if (v === undefined) return { text: ZERO_TIME, ms: Number.NaN };
  const t = decodeBinaryTime(v);
  if (t === undefined) return { text: ZERO_TIME, ms: Number.NaN, bad: true };
  return new DecodedTime(t);
}

/** A signed varint key (sizes, versions); undefined when absent, NaN when malformed. */
export function varint(r: Map<string, Entry>, k: string): number | undefined {
  const v = r.get(k)?.value;
  if (v === undefined) return undefined;
  return varintNumber(v) ?? Number.NaN;
}

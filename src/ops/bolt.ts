import { BoltFile, isBucketEntry, type BucketRef, type LeafEntry } from '../formats/bolt/db.js';
import { PAGE_HEADER_SIZE, ELEMENT_SIZE, LEAF_FLAG_BUCKET } from '../formats/bolt/constants.js';
import { DatarootError } from '../formats/errors.js';
import { compareBytes, bytesEqual, toHex } from '../formats/bytes.js';
import { decodeDockerValue, showKey, showValue, type BoltKind, type Shown, type ValueMode } from '../store/boltdecode.js';

const HEX_CHARS = Buffer.from('0123456789abcdef', 'latin1');

/** An output buffer that flushes to a sink in large chunks; ASCII and hex only. */
export class ChunkWriter {
  private buf: Buffer;
  private pos = 0;
  constructor(private readonly sink: (chunk: Buffer) => void, size = 1 << 20) {
    this.buf = Buffer.allocUnsafe(size);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
  }
  ascii(s: string): void {
    this.ensure(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }
  hex(src: Uint8Array, start: number, len: number): void {
    this.ensure(len * 2);
    const out = this.buf;
    let o = this.pos;
    if (len > 48 && Buffer.isBuffer(src)) {
      o += out.write(src.toString('hex', start, start + len), o, 'latin1');
    } else {
      for (let i = start, end = start + len; i < end; i++) {
        const c = src[i]!;
        out[o++] = HEX_CHARS[c >> 4]!;
        out[o++] = HEX_CHARS[c & 15]!;
      }
    }
    this.pos = o;
  }
  flush(): void {
    if (this.pos > 0) {
      this.sink(this.buf.subarray(0, this.pos));
      this.buf = Buffer.allocUnsafe(this.buf.length);
      this.pos = 0;
    }
  }
}

function seqJson(seq: bigint): string {
  return seq <= BigInt(Number.MAX_SAFE_INTEGER) ? seq.toString() : `"${seq.toString()}"`;
}

/**
 * `bolt dump --format ndjson`: one object per entry, depth-first in key order, a bucket's record
 * right before its contents. Path and key are hex. Bucket entries carry their sequence.
 */
export function dumpNdjson(db: BoltFile, out: ChunkWriter, start: BucketRef = db.rootBucket(), startPath: readonly Uint8Array[] = []): void {
  const seen = db.newSeen();
  const walk = (b: BucketRef, pathJson: string): void => {
    const prefix = `{"path":[${pathJson}],"key":"`;
    db.forEachLeaf(b, seen, (p) => {
      const bytes = p.bytes;
      const v = p.view;
      const len = bytes.length;
      for (let i = 0; i < p.count; i++) {
        const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
        if (e + ELEMENT_SIZE > len) db.leafEntry(p, i); // throws the coded error
        const flags = v.getUint32(e, true);
        const kstart = e + v.getUint32(e + 4, true);
        const ksize = v.getUint32(e + 8, true);
        const vsize = v.getUint32(e + 12, true);
        if (kstart + ksize + vsize > len) db.leafEntry(p, i);
        out.ascii(prefix);
        out.hex(bytes, kstart, ksize);
        if ((flags & LEAF_FLAG_BUCKET) !== 0) {
          const child = db.openBucket(bytes.subarray(kstart + ksize, kstart + ksize + vsize));
          out.ascii(`","bucket":true,"sequence":${seqJson(child.sequence)}}\n`);
          const keyHex = toHex(bytes.subarray(kstart, kstart + ksize));
          walk(child, pathJson === '' ? `"${keyHex}"` : `${pathJson},"${keyHex}"`);
        } else {
          out.ascii('","value":"');
          out.hex(bytes, kstart + ksize, vsize);
          out.ascii('"}\n');
        }
      }
    });
  };
  walk(start, startPath.map((k) => `"${toHex(k)}"`).join(','));
  out.flush();
}

export interface TreeOptions {
  values: ValueMode;
  /** Docker-aware decoding (libnetwork index+JSON, volumes JSON, containerd varints and times). */
  docker: boolean;
  kind: BoltKind;
}

export interface BucketNode {
  bucket: Record<string, Shown | BucketNode>;
  sequence?: number | string;
}

/** `bolt dump --format json`: the nested tree of a bucket. */
export function dumpTree(db: BoltFile, opts: TreeOptions, start: BucketRef = db.rootBucket(), startPath: readonly string[] = []): BucketNode {
  const seen = db.newSeen();
  const build = (b: BucketRef, path: readonly string[]): BucketNode => {
    const node: BucketNode = { bucket: {} };
    if (b.sequence !== 0n) node.sequence = b.sequence <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b.sequence) : b.sequence.toString();
    db.forEachEntry(b, seen, (e) => {
      const k = showKey(e.key);
      if (isBucketEntry(e)) node.bucket[k] = build(db.openBucket(e.value, k), [...path, k]);
      else node.bucket[k] = opts.docker && opts.values === 'auto' ? decodeDockerValue(opts.kind, path, k, e.value) : showValue(e.value, opts.values);
    });
    return node;
  };
  return build(start, startPath);
}

export interface FlatEntry {
  path: Uint8Array[];
  key: Uint8Array;
  bucket: boolean;
  sequence: bigint;
  value: Uint8Array | undefined;
}

/** Every entry of the file, depth-first in key order (the NDJSON order). */
export function flatten(db: BoltFile): FlatEntry[] {
  const out: FlatEntry[] = [];
  const seen = db.newSeen();
  const walk = (b: BucketRef, path: Uint8Array[]): void => {
    db.forEachEntry(b, seen, (e: LeafEntry) => {
      if (isBucketEntry(e)) {
        const child = db.openBucket(e.value);
        out.push({ path, key: e.key, bucket: true, sequence: child.sequence, value: undefined });
        walk(child, [...path, e.key]);
      } else out.push({ path, key: e.key, bucket: false, sequence: 0n, value: e.value });
    });
  };
  walk(db.rootBucket(), []);
  return out;
}

function comparePathKey(a: FlatEntry, b: FlatEntry): number {
  const n = Math.min(a.path.length, b.path.length);
  for (let i = 0; i < n; i++) {
    const c = compareBytes(a.path[i]!, b.path[i]!);
    if (c !== 0) return c;
  }
  // A bucket's contents sort after the bucket's own record: compare the shorter path's key
  // with the longer path's next element.
  if (a.path.length === b.path.length) return compareBytes(a.key, b.key);
  if (a.path.length < b.path.length) {
    const c = compareBytes(a.key, b.path[n]!);
    return c === 0 ? -1 : c;
  }
  const c = compareBytes(a.path[n]!, b.key);
  return c === 0 ? 1 : c;
}

export interface BoltChange {
  change: 'added' | 'removed' | 'changed';
  path: string[];
  key: string;
  bucket?: boolean;
  left?: Shown;
  right?: Shown;
}

export interface DiffSide {
  db: BoltFile;
  kind: BoltKind;
}

function shownOf(side: DiffSide, e: FlatEntry, docker: boolean): Shown {
  if (e.bucket) return { bucket: true, sequence: seqJsonValue(e.sequence) };
  const path = e.path.map(showKey);
  return docker ? decodeDockerValue(side.kind, path, showKey(e.key), e.value!) : showValue(e.value!, 'auto');
}

function seqJsonValue(s: bigint): number | string {
  return s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s.toString();
}

/**
 * Key-level differences of two bbolt files: added, removed and changed entries with their bucket
 * paths, nested buckets included. A bucket that appears or disappears is reported once, with
 * its contents listed under it.
 */
export function diffBolt(left: DiffSide, right: DiffSide, docker = true): BoltChange[] {
  const a = flatten(left.db);
  const b = flatten(right.db);
  const out: BoltChange[] = [];
  let i = 0;
  let j = 0;
  const rec = (change: BoltChange['change'], e: FlatEntry, l?: Shown, r?: Shown): void => {
    const c: BoltChange = { change, path: e.path.map(showKey), key: showKey(e.key) };
    if (e.bucket) c.bucket = true;
    if (l !== undefined) c.left = l;
    if (r !== undefined) c.right = r;
    out.push(c);
  };
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    const c = x === undefined ? 1 : y === undefined ? -1 : comparePathKey(x, y);
    if (c < 0) {
      rec('removed', x!, shownOf(left, x!, docker));
      i++;
    } else if (c > 0) {
      rec('added', y!, undefined, shownOf(right, y!, docker));
      j++;
    } else {
      const same = x!.bucket === y!.bucket && (x!.bucket ? x!.sequence === y!.sequence : bytesEqual(x!.value!, y!.value!));
      if (!same) rec('changed', x!, shownOf(left, x!, docker), shownOf(right, y!, docker));
      i++;
      j++;
    }
  }
  return out;
}

/** Resolves a bucket path; a coded error names the first missing part. */
export function requireBucket(db: BoltFile, path: readonly Uint8Array[]): BucketRef {
  let b = db.rootBucket();
  for (let i = 0; i < path.length; i++) {
    const e = db.lookup(b, path[i]!);
    if (e === undefined || !isBucketEntry(e)) {
      throw new DatarootError('BOLT_BUCKET_NOT_FOUND', `bucket not found: ${path.slice(0, i + 1).map(showKey).join('/')}`, {
        file: db.file ?? '',
      });
    }
    b = db.openBucket(e.value);
  }
  return b;
}

import { BoltFile, isBucketEntry, type BucketRef, type LeafEntry } from '../formats/bolt/db.js';
import { PAGE_HEADER_SIZE, ELEMENT_SIZE, LEAF_FLAG_BUCKET } from '../formats/bolt/constants.js';
import { DatarootError } from '../formats/errors.js';
import { compareBytes, bytesEqual, toHex } from '../formats/bytes.js';
import { decodeDockerValue, showKey, showValue, type BoltKind, type Shown, type ValueMode } from '../store/boltdecode.js';

const HEX = '0123456789abcdef';
let hexPairsTable: Uint32Array | undefined;
/**
 * Four hex digits (as bytes, little-endian in a u32) for every pair of input bytes read as a u16 LE.
 * Built on first use: at module load it cost 3 ms of every bolt command's start.
 */
function hexPairs(): Uint32Array {
  if (hexPairsTable !== undefined) return hexPairsTable;
  const t = new Uint32Array(65536);
  for (let x = 0; x < 65536; x++) {
    const a = x & 255;
    const b = x >> 8;
    t[x] = HEX.charCodeAt(a >> 4) | (HEX.charCodeAt(a & 15) << 8) | (HEX.charCodeAt(b >> 4) << 16) | (HEX.charCodeAt(b & 15) << 24);
  }
  return (hexPairsTable = t);
}

/**
 * An output buffer for ASCII and hex, flushed to a sink in chunks. The sink must consume the
 * chunk before it returns (the CLI writes synchronously): the buffer is reused.
 */
export class ChunkWriter {
  private buf: Buffer;
  private dv: DataView;
  private pos = 0;
  constructor(private readonly sink: (chunk: Uint8Array) => void, size = 128 << 10) {
    this.buf = Buffer.allocUnsafe(size);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }
  private room(n: number): void {
    if (this.pos + n > this.buf.length) this.flush();
  }
  ascii(s: string): void {
    if (s.length > this.buf.length) {
      this.flush();
      this.sink(Buffer.from(s, 'latin1'));
      return;
    }
    this.room(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }
  bytes(b: Uint8Array): void {
    if (b.length > this.buf.length) {
      this.flush();
      this.sink(b);
      return;
    }
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** Lowercase hex of src[start, start+len), two input bytes per table lookup. */
  hex(src: Uint8Array, sv: DataView, start: number, len: number): void {
    const max = this.buf.length >> 1;
    const pairs = hexPairs();
    while (len > 0) {
      const n = Math.min(len, max);
      this.room(2 * n);
      const dv = this.dv;
      let o = this.pos;
      const end = start + n;
      const pairsEnd = start + (n & ~1);
      let i = start;
      for (; i < pairsEnd; i += 2) {
        dv.setUint32(o, pairs[sv.getUint16(i, true)]!, true);
        o += 4;
      }
      if (i < end) {
        const c = src[i]!;
        this.buf[o++] = HEX.charCodeAt(c >> 4);
        this.buf[o++] = HEX.charCodeAt(c & 15);
      }
      this.pos = o;
      start += n;
      len -= n;
    }
  }
  flush(): void {
    if (this.pos === 0) return;
    this.sink(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }
}

function seqJson(seq: bigint): string {
  return seq <= BigInt(Number.MAX_SAFE_INTEGER) ? seq.toString() : `"${seq.toString()}"`;
}

const VALUE_MID = Buffer.from('","value":"', 'latin1');
const VALUE_END = Buffer.from('"}\n', 'latin1');

/**
 * `bolt dump --format ndjson`: one object per entry, depth-first in key order, a bucket's record
 * right before its contents. Path and key are hex. Bucket entries carry their sequence.
 * Keys and values are hex-encoded straight from the page into the output buffer. A page with
 * sub-buckets is copied before the walk goes into them, since the page source may reuse memory.
 */
export function dumpNdjson(db: BoltFile, out: ChunkWriter, start: BucketRef = db.rootBucket(), startPath: readonly Uint8Array[] = []): void {
  const seen = db.newSeen();
  const walk = (b: BucketRef, pathJson: string): void => {
    const prefix = Buffer.from(`{"path":[${pathJson}],"key":"`, 'latin1');
    db.forEachLeaf(b, seen, (p) => {
      let bytes = p.bytes;
      let v = p.view;
      const len = bytes.length;
      const count = p.count;
      let hasBucket = false;
      for (let i = 0; i < count; i++) {
        const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
        if (e + ELEMENT_SIZE > len) db.leafEntry(p, i); // throws the coded error
        const kstart = e + v.getUint32(e + 4, true);
        if (kstart + v.getUint32(e + 8, true) + v.getUint32(e + 12, true) > len) db.leafEntry(p, i);
        if ((v.getUint32(e, true) & LEAF_FLAG_BUCKET) !== 0) hasBucket = true;
      }
      if (hasBucket) {
        bytes = new Uint8Array(bytes);
        v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      }
      for (let i = 0; i < count; i++) {
        const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
        const flags = v.getUint32(e, true);
        const kstart = e + v.getUint32(e + 4, true);
        const ksize = v.getUint32(e + 8, true);
        const vsize = v.getUint32(e + 12, true);
        out.bytes(prefix);
        out.hex(bytes, v, kstart, ksize);
        if ((flags & LEAF_FLAG_BUCKET) !== 0) {
          const child = db.openBucket(bytes.subarray(kstart + ksize, kstart + ksize + vsize));
          out.ascii(`","bucket":true,"sequence":${seqJson(child.sequence)}}\n`);
          const keyHex = toHex(bytes.subarray(kstart, kstart + ksize));
          walk(child, pathJson === '' ? `"${keyHex}"` : `${pathJson},"${keyHex}"`);
        } else {
          out.bytes(VALUE_MID);
          out.hex(bytes, v, kstart + ksize, vsize);
          out.bytes(VALUE_END);
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

import { BoltFile, BucketWalk, isBucketEntry, type BucketRef } from '../formats/bolt/db.js';
import { PAGE_HEADER_SIZE, ELEMENT_SIZE, LEAF_FLAG_BUCKET } from '../formats/bolt/constants.js';
import { DatarootError } from '../formats/errors.js';
import { compareBytes, bytesEqual, copyBytes, toHex } from '../formats/bytes.js';
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
  constructor(
    private readonly sink: (chunk: Uint8Array) => void,
    size = 128 << 10,
  ) {
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
const PATH_HEAD = '{"path":[';
const PATH_TAIL = '],"key":"';

/**
 * The record prefix `{"path":["<hex>",…],"key":"` of the innermost bucket of a walk, kept in one
 * buffer: entering a bucket appends its key, leaving cuts it off again. Memory grows with the path,
 * not with the depth times the path, however deep the buckets are nested.
 */
class PathPrefix {
  private buf = Buffer.allocUnsafe(256);
  /** End of the path elements at each depth (the prefix is the elements, then PATH_TAIL). */
  private readonly ends: number[] = [];
  constructor(start: readonly Uint8Array[]) {
    let pos = this.buf.write(PATH_HEAD, 0, 'latin1');
    this.ends.push(pos);
    this.writeTail(pos);
    for (const k of start) this.push(k);
    pos = this.ends.pop()!;
    this.ends.length = 0;
    this.ends.push(pos);
    this.writeTail(pos);
  }
  private writeTail(pos: number): void {
    this.room(pos + PATH_TAIL.length);
    this.buf.write(PATH_TAIL, pos, 'latin1');
  }
  private room(n: number): void {
    if (n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
    this.buf.copy(b, 0, 0, this.ends[this.ends.length - 1]! + PATH_TAIL.length);
    this.buf = b;
  }
  /** The prefix of the innermost bucket (valid until the next push or pop). */
  get current(): Uint8Array {
    return this.buf.subarray(0, this.ends[this.ends.length - 1]! + PATH_TAIL.length);
  }
  push(key: Uint8Array): void {
    let pos = this.ends[this.ends.length - 1]!;
    this.room(pos + 2 * key.length + 3 + PATH_TAIL.length);
    if (pos > PATH_HEAD.length) this.buf[pos++] = 0x2c; // , after an element
    this.buf[pos++] = 0x22; // "
    pos += this.buf.write(toHex(key), pos, 'latin1');
    this.buf[pos++] = 0x22;
    this.ends.push(pos);
    this.writeTail(pos);
  }
  pop(): void {
    this.ends.pop();
    if (this.ends.length > 0) this.writeTail(this.ends[this.ends.length - 1]!);
  }
}

/**
 * `bolt dump --format ndjson`: one object per entry, depth-first in key order, a bucket's record
 * right before its contents. Path and key are hex. Bucket entries carry their sequence.
 * Keys and values are hex-encoded straight from the page into the output buffer. Buckets are
 * walked with an explicit stack (BucketWalk), so any nesting depth is dumped; a page is read again
 * when the walk comes back to it from a sub-bucket, since the page source may reuse memory.
 */
export function dumpNdjson(db: BoltFile, out: ChunkWriter, start: BucketRef = db.rootBucket(), startPath: readonly Uint8Array[] = []): void {
  const w = new BucketWalk(db, start, db.newSeen());
  const prefix = new PathPrefix(startPath);
  while (w.depth > 0) {
    const p = w.leaf();
    if (p === undefined) {
      w.leave();
      prefix.pop();
      continue;
    }
    const bytes = p.bytes;
    const v = p.view;
    const len = bytes.length;
    const count = p.count;
    // A page reached for the first time is checked whole before any of its records is written;
    // a page read again is checked entry by entry (each check throws the coded error).
    const checked = w.fresh;
    let i = w.index;
    if (checked) {
      for (let j = i; j < count; j++) {
        const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * j;
        if (e + ELEMENT_SIZE > len) db.leafEntry(p, j);
        const kstart = e + v.getUint32(e + 4, true);
        if (kstart + v.getUint32(e + 8, true) + v.getUint32(e + 12, true) > len) db.leafEntry(p, j);
      }
    }
    const pre = prefix.current;
    for (; i < count; i++) {
      const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
      if (!checked) db.leafEntry(p, i);
      const flags = v.getUint32(e, true);
      const kstart = e + v.getUint32(e + 4, true);
      const ksize = v.getUint32(e + 8, true);
      const vsize = v.getUint32(e + 12, true);
      out.bytes(pre);
      out.hex(bytes, v, kstart, ksize);
      if ((flags & LEAF_FLAG_BUCKET) !== 0) {
        const child = db.openBucket(bytes.subarray(kstart + ksize, kstart + ksize + vsize));
        out.ascii(`","bucket":true,"sequence":${seqJson(child.sequence)}}\n`);
        prefix.push(bytes.subarray(kstart, kstart + ksize));
        w.enter(child, i + 1);
        break;
      }
      out.bytes(VALUE_MID);
      out.hex(bytes, v, kstart + ksize, vsize);
      out.bytes(VALUE_END);
    }
    if (i >= count) w.nextLeaf();
  }
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

/**
 * Deepest nesting of buckets below the start bucket that `bolt dump --format json` prints. The
 * tree is one JSON document, and JSON.stringify recurses on its nesting: V8 (Node 20) fails at
 * about 2,048 buckets (two JSON levels each), fewer with a deeper call stack, and every level
 * indents every line below it. Real files nest a few levels (containerd: about 8); ndjson has no
 * limit.
 */
export const MAX_TREE_DEPTH = 1000;

/** A start bucket for a message: its path when short, else its depth. */
function where(path: readonly string[]): string {
  if (path.length === 0) return 'the root';
  return path.length <= 8 ? path.join('/') : `the bucket ${path.length} levels down`;
}

function treeNode(b: BucketRef): BucketNode {
  const node: BucketNode = { bucket: {} };
  if (b.sequence !== 0n) node.sequence = b.sequence <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b.sequence) : b.sequence.toString();
  return node;
}

/** `bolt dump --format json`: the nested tree of a bucket (BOLT_TOO_DEEP past MAX_TREE_DEPTH levels). */
export function dumpTree(db: BoltFile, opts: TreeOptions, start: BucketRef = db.rootBucket(), startPath: readonly string[] = []): BucketNode {
  const w = new BucketWalk(db, start, db.newSeen());
  const root = treeNode(start);
  const nodes = [root];
  // The bucket path as text, for the Docker-aware decoding of values.
  const path = [...startPath];
  while (w.depth > 0) {
    const p = w.leaf();
    if (p === undefined) {
      w.leave();
      nodes.pop();
      path.pop();
      continue;
    }
    const node = nodes[nodes.length - 1]!;
    let i = w.index;
    for (; i < p.count; i++) {
      const e = db.leafEntry(p, i);
      const k = showKey(e.key);
      if (isBucketEntry(e)) {
        const ref = db.openBucket(e.value, k);
        if (nodes.length > MAX_TREE_DEPTH) {
          throw new DatarootError(
            'BOLT_TOO_DEEP',
            `buckets are nested more than ${MAX_TREE_DEPTH} levels deep below ${where(startPath)}: the JSON tree form stops there; --format ndjson dumps any depth`,
            { file: db.file ?? '' },
          );
        }
        const child = treeNode(ref);
        node.bucket[k] = child;
        nodes.push(child);
        path.push(k);
        w.enter(ref, i + 1);
        break;
      }
      node.bucket[k] = opts.docker && opts.values === 'auto' ? decodeDockerValue(opts.kind, path, k, e.value) : showValue(e.value, opts.values);
    }
    if (i >= p.count) w.nextLeaf();
  }
  return root;
}

export interface FlatEntry {
  path: Uint8Array[];
  key: Uint8Array;
  bucket: boolean;
  sequence: bigint;
  value: Uint8Array | undefined;
}

/**
 * The entries of a file one at a time, depth-first in key order (the NDJSON order), with the path
 * of bucket keys above the current entry kept as a stack: what flatten() lists, without holding it.
 */
class FlatCursor {
  private readonly w: BucketWalk;
  /** Keys of the buckets open in the walk (one more than `depth` right after a bucket entry). */
  readonly path: Uint8Array[] = [];
  private readonly shown: string[] = [];
  /** Length of `path` above the current entry. */
  depth = 0;
  /** The shortest `path` was since the previous next(): elements from there on changed. */
  low = 0;
  key: Uint8Array = new Uint8Array();
  bucket = false;
  sequence = 0n;
  value: Uint8Array | undefined;

  constructor(private readonly db: BoltFile) {
    this.w = new BucketWalk(db, db.rootBucket(), db.newSeen());
  }

  /** Moves to the next entry; false at the end. */
  next(): boolean {
    const w = this.w;
    this.low = this.path.length;
    while (w.depth > 0) {
      const p = w.leaf();
      if (p === undefined) {
        w.leave();
        this.path.pop();
        if (this.path.length < this.low) this.low = this.path.length;
        continue;
      }
      const i = w.index;
      if (i >= p.count) {
        w.nextLeaf();
        continue;
      }
      const e = this.db.leafEntry(p, i);
      this.depth = this.path.length;
      this.key = e.key;
      if (this.shown.length > this.low) this.shown.length = this.low;
      if (isBucketEntry(e)) {
        const child = this.db.openBucket(e.value);
        this.bucket = true;
        this.sequence = child.sequence;
        this.value = undefined;
        this.path.push(copyBytes(e.key));
        w.enter(child, i + 1);
      } else {
        this.bucket = false;
        this.sequence = 0n;
        this.value = e.value;
        w.index = i + 1;
      }
      return true;
    }
    return false;
  }

  /** The path of the current entry as text (showKey of each bucket key). */
  shownPath(): string[] {
    for (let i = this.shown.length; i < this.depth; i++) this.shown.push(showKey(this.path[i]!));
    return this.shown.slice(0, this.depth);
  }
}

/** Every entry of the file, depth-first in key order (the NDJSON order). */
export function flatten(db: BoltFile): FlatEntry[] {
  const out: FlatEntry[] = [];
  const c = new FlatCursor(db);
  // Entries of one bucket share one path array, as the NDJSON records share their path.
  const paths: Uint8Array[][] = [[]];
  while (c.next()) {
    if (paths.length > c.low + 1) paths.length = c.low + 1;
    const path = paths[c.depth]!;
    if (c.bucket) {
      out.push({ path, key: c.key, bucket: true, sequence: c.sequence, value: undefined });
      paths.push([...path, c.key]);
    } else out.push({ path, key: c.key, bucket: false, sequence: 0n, value: c.value });
  }
  return out;
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

function shownOf(side: DiffSide, e: FlatCursor, docker: boolean): Shown {
  if (e.bucket) return { bucket: true, sequence: seqJsonValue(e.sequence) };
  return docker ? decodeDockerValue(side.kind, e.shownPath(), showKey(e.key), e.value!) : showValue(e.value!, 'auto');
}

function seqJsonValue(s: bigint): number | string {
  return s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s.toString();
}

/**
 * Key-level differences of two bbolt files: added, removed and changed entries with their bucket
 * paths, nested buckets included. A bucket that appears or disappears is reported once, with
 * its contents listed under it.
 *
 * Both files are walked side by side in the NDJSON order and merged on (path, key), where a
 * bucket's contents sort right after the bucket's own record. The length of the common prefix of
 * the two paths is kept as the walks move, so a comparison costs one key comparison however deep
 * the buckets are. A damaged file throws its error; when both are damaged, the left one's (as if
 * each file were read whole, left first).
 */
export function diffBolt(left: DiffSide, right: DiffSide, docker = true): BoltChange[] {
  const a = new FlatCursor(left.db);
  const b = new FlatCursor(right.db);
  const out: BoltChange[] = [];
  const rec = (change: BoltChange['change'], e: FlatCursor, l?: Shown, r?: Shown): void => {
    const c: BoltChange = { change, path: e.shownPath(), key: showKey(e.key) };
    if (e.bucket) c.bucket = true;
    if (l !== undefined) c.left = l;
    if (r !== undefined) c.right = r;
    out.push(c);
  };
  /** Elements a.path and b.path have in common from the start. */
  let common = 0;
  const moved = (): void => {
    common = Math.min(common, a.low, b.low);
    const n = Math.min(a.path.length, b.path.length);
    while (common < n && bytesEqual(a.path[common]!, b.path[common]!)) common++;
  };
  let hasA = a.next();
  let hasB: boolean;
  try {
    hasB = b.next();
  } catch (e) {
    throw leftFirst(a, e);
  }
  moved();
  /** comparePathKey of the two current entries: paths element by element, then the keys. */
  const compare = (): number => {
    const n = Math.min(a.depth, b.depth);
    if (common < n) return compareBytes(a.path[common]!, b.path[common]!);
    if (a.depth === b.depth) return compareBytes(a.key, b.key);
    if (a.depth < b.depth) {
      const c = compareBytes(a.key, b.path[n]!);
      return c === 0 ? -1 : c;
    }
    const c = compareBytes(a.path[n]!, b.key);
    return c === 0 ? 1 : c;
  };
  while (hasA || hasB) {
    const c = !hasA ? 1 : !hasB ? -1 : compare();
    let stepA = false;
    let stepB = false;
    if (c < 0) {
      rec('removed', a, shownOf(left, a, docker));
      stepA = true;
    } else if (c > 0) {
      rec('added', b, undefined, shownOf(right, b, docker));
      stepB = true;
    } else {
      const same = a.bucket === b.bucket && (a.bucket ? a.sequence === b.sequence : bytesEqual(a.value!, b.value!));
      if (!same) rec('changed', a, shownOf(left, a, docker), shownOf(right, b, docker));
      stepA = stepB = true;
    }
    if (stepA) hasA = a.next();
    else a.low = a.path.length;
    if (stepB) {
      try {
        hasB = b.next();
      } catch (e) {
        throw leftFirst(a, e);
      }
    } else b.low = b.path.length;
    moved();
  }
  return out;
}

/** The error to report when the right file failed: the left file's own, if reading it to the end fails too. */
function leftFirst(a: FlatCursor, rightError: unknown): unknown {
  try {
    while (a.next());
  } catch (e) {
    return e;
  }
  return rightError;
}

/** Resolves a bucket path; a coded error names the first missing part. */
export function requireBucket(db: BoltFile, path: readonly Uint8Array[]): BucketRef {
  let b = db.rootBucket();
  for (let i = 0; i < path.length; i++) {
    const e = db.lookup(b, path[i]!);
    if (e === undefined || !isBucketEntry(e)) {
      throw new DatarootError(
        'BOLT_BUCKET_NOT_FOUND',
        `bucket not found: ${path
          .slice(0, i + 1)
          .map(showKey)
          .join('/')}`,
        {
          file: db.file ?? '',
        },
      );
    }
    b = db.openBucket(e.value);
  }
  return b;
}

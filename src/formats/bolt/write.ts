import { DatarootError } from '../errors.js';
import { compareBytes } from '../bytes.js';
import {
  BUCKET_HEADER_SIZE,
  ELEMENT_SIZE,
  FLAG_BRANCH,
  FLAG_FREELIST,
  FLAG_LEAF,
  FLAG_META,
  LEAF_FLAG_BUCKET,
  MAGIC,
  MAX_PAGE_SIZE,
  META_CHECKSUM_SPAN,
  META_OFFSET,
  MIN_PAGE_SIZE,
  PAGE_HEADER_SIZE,
  VERSION,
} from './constants.js';
import { fnv1a64 } from './meta.js';
import type { ErrorCode } from '../errorcodes.js';

/**
 * A bbolt file writer: a depth-first walk of a key tree in, the pages of a complete new file out,
 * laid out as `bbolt compact` lays them out (bbolt 1.3.6 `Compact` in one transaction):
 *
 * - every bucket's leaf level is one node split by bbolt's `node.split` rule (a node with more than
 *   4 elements that does not fit a page is cut where the next element would pass the fill
 *   threshold, after at least 2 elements and keeping at least 2 for the rest); each level of branch
 *   pages is split by the same rule over the first keys of the level below, until one node remains;
 * - the fill threshold is 1.0 of the page for every bucket that holds something (compact sets
 *   `FillPercent = 1.0` on the bucket it puts into) and 0.5 for the root bucket (compact never
 *   touches its FillPercent, so bbolt's default applies);
 * - a node larger than a page spans `ceil(size / pageSize)` pages (`overflow` = that minus 1);
 * - a bucket is written inline in its parent's leaf exactly when `bucket.inlineable()` says so:
 *   nothing was split off, no sub-buckets, and `16 + Σ(16 + key + value) <= pageSize / 4`;
 * - pages 0 and 1 are metas of the same tree (txid T on page T % 2, T - 1 on the other, both with
 *   checksums), page 2 an empty freelist, the tree from page 3 in the order pages are completed.
 *
 * Memory: pages are handed to the sink as soon as bbolt's split rule fixes them, so the writer
 * holds about one page of elements per open bucket and tree level, whatever the size of the tree.
 * The caller must not modify the bytes of a key or value it passed until `finish()` returns.
 */

export const MAX_KEY_SIZE = 32768;
export const MAX_VALUE_SIZE = 2 ** 31 - 2;
/**
 * Open buckets the writer (and walkBolt, the walk of compact, put, delete) accept, root excluded;
 * deeper input is refused with a coded error. Both keep an explicit stack, no recursion, so the
 * bound is one of memory: the writer holds about 1.3 KB per open bucket (330 MB at this depth).
 * Real files nest a few levels; Go's bbolt (recursive, on a growable stack) compacts chains of
 * 100,000 buckets, which test/bolt-deep.test.ts compacts with both.
 */
export const MAX_BUCKET_DEPTH = 250_000;
/** bbolt's `DefaultFillPercent`, which `bbolt compact` leaves on the root bucket. */
export const DEFAULT_FILL_PERCENT = 0.5;
/** What `bbolt compact` sets on every bucket it puts into. */
export const COMPACT_FILL_PERCENT = 1.0;
const MIN_FILL_PERCENT = 0.1;
const MAX_FILL_PERCENT = 1.0;
const MIN_KEYS_PER_PAGE = 2;
/** `node.write` panics at 0xFFFF elements (the value is the freelist's count escape). */
export const MAX_PAGE_ELEMENTS = 0xfffe;
/** bbolt (1.3.6 and later) reads 4096 bytes at offset 0 to find the page size and refuses a shorter file. */
export const MIN_FILE_SIZE = 4096;
/** Element offsets are u32. */
const MAX_NODE_SIZE = 0xffffffff;
/** Nodes up to this size are assembled in one buffer; larger ones are written piece by piece. */
const ASSEMBLE_LIMIT = 1 << 20;
const U64_MAX = (1n << 64n) - 1n;
const FREELIST_PGID = 2;
const FIRST_DATA_PGID = 3;

/** A depth-first walk of a key tree: buckets open and close around their contents, keys in byte order. */
export interface BoltVisitor {
  /** Opens a sub-bucket of the current bucket; its contents follow, then `end()`. */
  bucket(key: Uint8Array, sequence: bigint): void;
  put(key: Uint8Array, value: Uint8Array): void;
  end(): void;
}

/** Where the pages go: positional writes; `bytes` is only valid during the call. */
export interface PageSink {
  write(offset: number, bytes: Uint8Array): void;
}

export interface WriterOptions {
  pageSize: number;
  /** Fill threshold of every bucket but the root (default 1.0, as `bbolt compact`). */
  fillPercent?: number;
  /** Fill threshold of the root bucket (default 0.5, bbolt's default). */
  rootFillPercent?: number;
  /** Transaction id of the newer meta page (default 2, as after `bbolt compact`'s one commit). */
  txid?: bigint;
  /** The root bucket's sequence (meta.root.sequence; 0 in every file bbolt writes). */
  rootSequence?: bigint;
}

export interface WriteResult {
  pageSize: number;
  /** High-water mark: pages in use. */
  pages: number;
  /** Bytes of the file (pages * pageSize, at least MIN_FILE_SIZE). */
  size: number;
  root: number;
  txid: bigint;
  keys: number;
  buckets: number;
  inlineBuckets: number;
  leafPages: number;
  branchPages: number;
  overflowPages: number;
}

function fail(code: ErrorCode, message: string, details: Record<string, unknown> = {}): DatarootError {
  return new DatarootError(code, message, details);
}

function hexShort(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < Math.min(b.length, 32); i++) s += b[i]!.toString(16).padStart(2, '0');
  return b.length > 32 ? `${s}…` : s;
}

/** Checks a page size the way the reader accepts one: a power of two from 512 bytes to 16 MiB. */
export function checkPageSize(ps: number): void {
  if (!Number.isInteger(ps) || ps < MIN_PAGE_SIZE || ps > MAX_PAGE_SIZE || (ps & (ps - 1)) !== 0) {
    throw fail('BOLT_WRITE_BAD_PAGE_SIZE', `page size ${ps} is not a power of two from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE} bytes`);
  }
}

function threshold(ps: number, fill: number): number {
  if (!Number.isFinite(fill)) throw fail('BOLT_WRITE_BAD_FILL', `fill percent ${fill} is not a number`);
  const f = fill < MIN_FILL_PERCENT ? MIN_FILL_PERCENT : fill > MAX_FILL_PERCENT ? MAX_FILL_PERCENT : fill;
  return Math.trunc(ps * f);
}

/**
 * One level of one bucket's B+tree while it is being written: the elements not yet on a page.
 * Leaf elements carry a value and flags; branch elements a child page id.
 */
class Level {
  keys: Uint8Array[] = [];
  vals: Uint8Array[] = [];
  /** Leaf: element flags; branch: child page id. */
  nums: number[] = [];
  sizes: number[] = [];
  /** Σ element sizes (16 + key + value) of the pending elements. */
  bytes = 0;
  /** Pending leaf elements that are buckets. */
  buckets = 0;
  /** Progress of the split-index scan over the pending elements (see tryEmit). */
  scanI = 0;
  scanSz = PAGE_HEADER_SIZE;
  breakAt = -1;
  parent: Level | undefined;

  constructor(
    readonly leaf: boolean,
    readonly threshold: number,
  ) {}

  get count(): number {
    return this.keys.length;
  }
}

interface Frame {
  /** Name in the parent; undefined for the root bucket. */
  key: Uint8Array | undefined;
  sequence: bigint;
  leaf: Level;
  last: Uint8Array | undefined;
}

export class BoltWriter implements BoltVisitor {
  private readonly ps: number;
  private readonly threshold: number;
  private readonly rootThreshold: number;
  private readonly txid: bigint;
  private readonly rootSequence: bigint;
  private readonly stack: Frame[];
  private next = FIRST_DATA_PGID;
  private scratch: Uint8Array;
  private done = false;
  private readonly counts = { keys: 0, buckets: 0, inlineBuckets: 0, leafPages: 0, branchPages: 0, overflowPages: 0 };

  constructor(
    private readonly sink: PageSink,
    opts: WriterOptions,
  ) {
    checkPageSize(opts.pageSize);
    this.ps = opts.pageSize;
    this.threshold = threshold(this.ps, opts.fillPercent ?? COMPACT_FILL_PERCENT);
    this.rootThreshold = threshold(this.ps, opts.rootFillPercent ?? DEFAULT_FILL_PERCENT);
    this.txid = opts.txid ?? 2n;
    if (this.txid < 1n || this.txid > U64_MAX) throw fail('BOLT_WRITE_BAD_TXID', `txid ${this.txid} is outside 1 .. 2^64-1`);
    this.rootSequence = opts.rootSequence ?? 0n;
    checkSequence(this.rootSequence);
    this.stack = [{ key: undefined, sequence: this.rootSequence, leaf: new Level(true, this.rootThreshold), last: undefined }];
    this.scratch = new Uint8Array(Math.min(ASSEMBLE_LIMIT, Math.max(this.ps, 64 << 10)));
  }

  private top(): Frame {
    if (this.done) throw fail('BOLT_WRITE_STATE', 'the file is already finished');
    return this.stack[this.stack.length - 1]!;
  }

  private where(): string {
    const names = this.stack.slice(1).map((f) => hexShort(f.key!));
    return names.length === 0 ? 'the root bucket' : `bucket ${names.join('/')} (hex)`;
  }

  private checkKey(f: Frame, key: Uint8Array): void {
    if (key.length === 0) throw fail('BOLT_WRITE_EMPTY_KEY', `an empty key in ${this.where()}: bbolt refuses empty keys (ErrKeyRequired)`);
    if (key.length > MAX_KEY_SIZE) {
      throw fail('BOLT_WRITE_KEY_TOO_LARGE', `a key of ${key.length} bytes in ${this.where()}: bbolt's limit is ${MAX_KEY_SIZE} (ErrKeyTooLarge)`);
    }
    if (f.last !== undefined) {
      const c = compareBytes(f.last, key);
      if (c === 0) throw fail('BOLT_WRITE_DUPLICATE_KEY', `key ${hexShort(key)} (hex) appears twice in ${this.where()}`);
      if (c > 0) throw fail('BOLT_WRITE_UNSORTED', `key ${hexShort(key)} (hex) comes after ${hexShort(f.last)} in ${this.where()}: keys must be in byte order`);
    }
    f.last = key;
  }

  bucket(key: Uint8Array, sequence: bigint): void {
    const f = this.top();
    this.checkKey(f, key);
    checkSequence(sequence);
    if (this.stack.length > MAX_BUCKET_DEPTH) {
      throw fail('BOLT_WRITE_TOO_DEEP', `buckets nested deeper than ${MAX_BUCKET_DEPTH} levels in ${this.where()}`);
    }
    this.stack.push({ key, sequence, leaf: new Level(true, this.threshold), last: undefined });
    this.counts.buckets++;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    const f = this.top();
    if (f.key === undefined) {
      throw fail('BOLT_WRITE_TOP_LEVEL_VALUE', `key ${hexShort(key)} (hex) is a value in the root bucket: bbolt keeps only buckets at the top level`);
    }
    this.checkKey(f, key);
    if (value.length > MAX_VALUE_SIZE) {
      throw fail(
        'BOLT_WRITE_VALUE_TOO_LARGE',
        `the value of key ${hexShort(key)} (hex) is ${value.length} bytes: bbolt's limit is ${MAX_VALUE_SIZE} (ErrValueTooLarge)`,
      );
    }
    this.add(f.leaf, key, value, 0);
    this.counts.keys++;
  }

  end(): void {
    const f = this.top();
    if (f.key === undefined) throw fail('BOLT_WRITE_STATE', 'end() without an open bucket');
    let value: Uint8Array;
    const leaf = f.leaf;
    if (leaf.parent === undefined && leaf.buckets === 0 && PAGE_HEADER_SIZE + leaf.bytes <= Math.floor(this.ps / 4)) {
      value = this.inlineValue(f);
      this.counts.inlineBuckets++;
    } else {
      const root = this.finishTree(leaf);
      value = new Uint8Array(BUCKET_HEADER_SIZE);
      const v = new DataView(value.buffer);
      v.setBigUint64(0, BigInt(root), true);
      v.setBigUint64(8, f.sequence, true);
    }
    this.stack.pop();
    this.add(this.stack[this.stack.length - 1]!.leaf, f.key, value, LEAF_FLAG_BUCKET);
  }

  /** Writes the root bucket, the freelist and both metas; the walk must have closed every bucket. */
  finish(): WriteResult {
    const f = this.top();
    if (f.key !== undefined) throw fail('BOLT_WRITE_STATE', `finish() with ${this.stack.length - 1} buckets still open`);
    const root = this.finishTree(f.leaf);
    this.done = true;
    const ps = this.ps;
    const hwm = this.next;
    const page = new Uint8Array(ps);
    const v = new DataView(page.buffer);
    // The freelist: empty.
    v.setBigUint64(0, BigInt(FREELIST_PGID), true);
    v.setUint16(8, FLAG_FREELIST, true);
    this.sink.write(FREELIST_PGID * ps, page);
    // The metas: the newer on page txid % 2, as meta.write places it; the other one txid - 1.
    for (const id of [0, 1]) {
      page.fill(0);
      const txid = Number(this.txid % 2n) === id ? this.txid : this.txid - 1n;
      v.setBigUint64(0, BigInt(id), true);
      v.setUint16(8, FLAG_META, true);
      const m = META_OFFSET;
      v.setUint32(m, MAGIC, true);
      v.setUint32(m + 4, VERSION, true);
      v.setUint32(m + 8, ps, true);
      v.setUint32(m + 12, 0, true);
      v.setBigUint64(m + 16, BigInt(root), true);
      v.setBigUint64(m + 24, this.rootSequence, true);
      v.setBigUint64(m + 32, BigInt(FREELIST_PGID), true);
      v.setBigUint64(m + 40, BigInt(hwm), true);
      v.setBigUint64(m + 48, txid, true);
      v.setBigUint64(m + 56, fnv1a64(page.subarray(m, m + META_CHECKSUM_SPAN)), true);
      this.sink.write(id * ps, page);
    }
    let size = hwm * ps;
    if (size < MIN_FILE_SIZE) {
      this.sink.write(size, new Uint8Array(MIN_FILE_SIZE - size));
      size = MIN_FILE_SIZE;
    }
    return { pageSize: ps, pages: hwm, size, root, txid: this.txid, ...this.counts };
  }

  // --- the split rule ---------------------------------------------------------------------------

  private add(level: Level, key: Uint8Array, val: Uint8Array, num: number): void {
    const size = ELEMENT_SIZE + key.length + val.length;
    level.keys.push(key);
    level.vals.push(val);
    level.nums.push(num);
    level.sizes.push(size);
    level.bytes += size;
    if (level.leaf && (num & LEAF_FLAG_BUCKET) !== 0) level.buckets++;
    this.tryEmit(level);
  }

  /** bbolt splits a node only when it has more than 2 * minKeysPerPage elements and does not fit a page. */
  private willSplit(level: Level): boolean {
    return level.count > 2 * MIN_KEYS_PER_PAGE && PAGE_HEADER_SIZE + level.bytes >= this.ps;
  }

  /**
   * Writes the first node of a level as soon as bbolt's `splitTwo` would cut it from the whole
   * level, whatever follows: the cut is the first index i >= 2 whose element would take the node
   * past the threshold, and `splitIndex` looks only at i < n - 2, so it is known once two more
   * elements are pending; the split itself needs n > 4 and size >= page size, which more elements
   * can only keep true.
   */
  private tryEmit(level: Level): void {
    for (;;) {
      if (level.breakAt < 0) {
        const n = level.count;
        while (level.scanI <= n - 3) {
          const el = level.sizes[level.scanI]!;
          if (level.scanI >= MIN_KEYS_PER_PAGE && level.scanSz + el > level.threshold) {
            level.breakAt = level.scanI;
            break;
          }
          level.scanSz += el;
          level.scanI++;
        }
        if (level.breakAt < 0) return;
      }
      if (!this.willSplit(level)) return;
      this.emit(level, level.breakAt);
    }
  }

  /** `splitIndex` over all pending elements (when no more will come). */
  private splitIndex(level: Level): number {
    let sz = PAGE_HEADER_SIZE;
    let index = 0;
    const n = level.count;
    for (let i = 0; i < n - MIN_KEYS_PER_PAGE; i++) {
      index = i;
      const el = level.sizes[i]!;
      if (i >= MIN_KEYS_PER_PAGE && sz + el > level.threshold) break;
      sz += el;
    }
    return index;
  }

  /** Writes the first n pending elements of a level as one node and hands its first key to the level above. */
  private emit(level: Level, n: number): void {
    const pgid = this.writeNode(level, n);
    const key = level.keys[0]!;
    level.keys = level.keys.slice(n);
    level.vals = level.vals.slice(n);
    level.nums = level.nums.slice(n);
    const gone = level.sizes.splice(0, n);
    for (const s of gone) level.bytes -= s;
    if (level.leaf) {
      let b = 0;
      for (const f of level.nums) if ((f & LEAF_FLAG_BUCKET) !== 0) b++;
      level.buckets = b;
    }
    level.scanI = 0;
    level.scanSz = PAGE_HEADER_SIZE;
    level.breakAt = -1;
    if (level.parent === undefined) level.parent = new Level(false, level.threshold);
    this.add(level.parent, key, EMPTY, pgid);
  }

  /** Writes out a bucket's remaining levels; returns the page id of its root node. */
  private finishTree(leaf: Level): number {
    let level = leaf;
    for (;;) {
      if (level.parent === undefined && !this.willSplit(level)) return this.writeNode(level, level.count);
      while (level.count > 0) {
        if (!this.willSplit(level)) {
          this.emit(level, level.count);
          break;
        }
        this.emit(level, this.splitIndex(level));
      }
      level = level.parent!;
    }
  }

  // --- page images ------------------------------------------------------------------------------

  private nodeSize(level: Level, n: number): number {
    let size = PAGE_HEADER_SIZE;
    for (let i = 0; i < n; i++) size += level.sizes[i]!;
    return size;
  }

  private checkNode(n: number, size: number): void {
    if (n > MAX_PAGE_ELEMENTS) {
      throw fail(
        'BOLT_WRITE_PAGE_ELEMENTS',
        `a page of ${this.where()} would hold ${n} elements; bbolt allows ${MAX_PAGE_ELEMENTS} (node.write panics): use a smaller page size`,
      );
    }
    if (size > MAX_NODE_SIZE) throw fail('BOLT_WRITE_NODE_TOO_LARGE', `a page of ${this.where()} would be ${size} bytes; element offsets are 32-bit`);
  }

  /** Element i's 16 bytes; its data goes at dataOff (from the start of the page). */
  private element(v: DataView, base: number, level: Level, i: number, dataOff: number): void {
    const e = base + PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    const k = level.keys[i]!;
    if (level.leaf) {
      v.setUint32(e, level.nums[i]!, true);
      v.setUint32(e + 4, dataOff - (PAGE_HEADER_SIZE + ELEMENT_SIZE * i), true);
      v.setUint32(e + 8, k.length, true);
      v.setUint32(e + 12, level.vals[i]!.length, true);
    } else {
      v.setUint32(e, dataOff - (PAGE_HEADER_SIZE + ELEMENT_SIZE * i), true);
      v.setUint32(e + 4, k.length, true);
      v.setBigUint64(e + 8, BigInt(level.nums[i]!), true);
    }
  }

  /** Allocates pages for the first n pending elements of a level, writes them, returns the page id. */
  private writeNode(level: Level, n: number): number {
    const ps = this.ps;
    const size = this.nodeSize(level, n);
    this.checkNode(n, size);
    const pages = Math.ceil(size / ps);
    const pgid = this.next;
    this.next += pages;
    if (level.leaf) this.counts.leafPages++;
    else this.counts.branchPages++;
    this.counts.overflowPages += pages - 1;
    const span = pages * ps;
    const flags = level.leaf ? FLAG_LEAF : FLAG_BRANCH;
    if (span <= ASSEMBLE_LIMIT) {
      if (this.scratch.length < span) this.scratch = new Uint8Array(span);
      const buf = this.scratch.subarray(0, span);
      buf.fill(0);
      this.fillNode(buf, 0, level, n, pgid, flags, pages - 1, true);
      this.sink.write(pgid * ps, buf);
      return pgid;
    }
    // A large node (big values): header and elements, then each key and value where it belongs.
    const headLen = PAGE_HEADER_SIZE + ELEMENT_SIZE * n;
    const head = new Uint8Array(headLen);
    this.fillNode(head, 0, level, n, pgid, flags, pages - 1, false);
    const base = pgid * ps;
    this.sink.write(base, head);
    let off = headLen;
    for (let i = 0; i < n; i++) {
      const k = level.keys[i]!;
      this.sink.write(base + off, k);
      off += k.length;
      if (level.leaf) {
        const val = level.vals[i]!;
        if (val.length > 0) this.sink.write(base + off, val);
        off += val.length;
      }
    }
    const zeros = new Uint8Array(Math.min(span - off, 1 << 16));
    while (off < span) {
      const len = Math.min(zeros.length, span - off);
      this.sink.write(base + off, zeros.subarray(0, len));
      off += len;
    }
    return pgid;
  }

  /** Header and elements (and the data, when `data`) of a node into buf at base. */
  private fillNode(buf: Uint8Array, base: number, level: Level, n: number, id: number, flags: number, overflow: number, data: boolean): void {
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    v.setBigUint64(base, BigInt(id), true);
    v.setUint16(base + 8, flags, true);
    v.setUint16(base + 10, n, true);
    v.setUint32(base + 12, overflow, true);
    let off = PAGE_HEADER_SIZE + ELEMENT_SIZE * n;
    for (let i = 0; i < n; i++) {
      this.element(v, base, level, i, off);
      const k = level.keys[i]!;
      if (data) buf.set(k, base + off);
      off += k.length;
      if (level.leaf) {
        const val = level.vals[i]!;
        if (data) buf.set(val, base + off);
        off += val.length;
      }
    }
  }

  /** A bucket written into its parent's leaf: its 16-byte header, then its one leaf page (id 0, no overflow). */
  private inlineValue(f: Frame): Uint8Array {
    const leaf = f.leaf;
    const n = leaf.count;
    const size = this.nodeSize(leaf, n);
    this.checkNode(n, size);
    const value = new Uint8Array(BUCKET_HEADER_SIZE + size);
    new DataView(value.buffer).setBigUint64(8, f.sequence, true);
    this.fillNode(value, BUCKET_HEADER_SIZE, leaf, n, 0, FLAG_LEAF, 0, true);
    return value;
  }
}

const EMPTY = new Uint8Array(0);

function checkSequence(s: bigint): void {
  if (typeof s !== 'bigint' || s < 0n || s > U64_MAX) throw fail('BOLT_WRITE_BAD_SEQUENCE', `bucket sequence ${String(s)} is outside 0 .. 2^64-1`);
}

/** A growable in-memory file. */
export class MemorySink implements PageSink {
  private buf = new Uint8Array(1 << 16);
  private len = 0;
  write(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (end > this.buf.length) {
      let cap = this.buf.length;
      while (cap < end) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(bytes, offset);
    if (end > this.len) this.len = end;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

// --- a key tree as data ---------------------------------------------------------------------------

export interface BoltTreeBucket {
  sequence?: bigint;
  entries: BoltTreeEntry[];
}

export type BoltTreeEntry = { key: Uint8Array; value: Uint8Array } | { key: Uint8Array; bucket: BoltTreeBucket };

/**
 * Walks a tree given as data (entries in any order; each bucket's entries are sorted by key here)
 * into a visitor, without recursion. Duplicates reach the visitor, which refuses them.
 */
export function visitTree(root: BoltTreeBucket, v: BoltVisitor): void {
  const sorted = (b: BoltTreeBucket): BoltTreeEntry[] => [...b.entries].sort((x, y) => compareBytes(x.key, y.key));
  const stack: { entries: BoltTreeEntry[]; i: number }[] = [{ entries: sorted(root), i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.entries.length) {
      stack.pop();
      if (stack.length > 0) v.end();
      continue;
    }
    const e = top.entries[top.i++]!;
    if ('bucket' in e) {
      v.bucket(e.key, e.bucket.sequence ?? 0n);
      stack.push({ entries: sorted(e.bucket), i: 0 });
    } else v.put(e.key, e.value);
  }
}

/** The bytes of a complete bbolt file holding the tree. */
export function buildBolt(root: BoltTreeBucket, opts: WriterOptions): Uint8Array {
  const sink = new MemorySink();
  const w = new BoltWriter(sink, { rootSequence: root.sequence ?? 0n, ...opts });
  visitTree(root, w);
  const r = w.finish();
  const out = sink.bytes();
  return out.length === r.size ? out : out.subarray(0, r.size);
}

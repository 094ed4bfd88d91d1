import { FLAG_BRANCH, FLAG_LEAF, PAGE_HEADER_SIZE, ELEMENT_SIZE, pageTypeName } from './constants.js';
import { BoltFile, isBucketEntry, type BucketRef, type Page } from './db.js';
import { DatarootError } from '../errors.js';
import { compareBytes, copyBytes } from '../bytes.js';

/** bbolt's BucketStats, field for field. */
export interface BucketStats {
  BranchPageN: number;
  BranchOverflowN: number;
  LeafPageN: number;
  LeafOverflowN: number;
  KeyN: number;
  Depth: number;
  BranchAlloc: number;
  BranchInuse: number;
  LeafAlloc: number;
  LeafInuse: number;
  BucketN: number;
  InlineBucketN: number;
  InlineBucketInuse: number;
}

export function emptyStats(): BucketStats {
  return {
    BranchPageN: 0,
    BranchOverflowN: 0,
    LeafPageN: 0,
    LeafOverflowN: 0,
    KeyN: 0,
    Depth: 0,
    BranchAlloc: 0,
    BranchInuse: 0,
    LeafAlloc: 0,
    LeafInuse: 0,
    BucketN: 0,
    InlineBucketN: 0,
    InlineBucketInuse: 0,
  };
}

/** BucketStats.Add: sums every field, Depth takes the max. */
export function addStats(into: BucketStats, s: BucketStats): void {
  for (const k of Object.keys(into) as (keyof BucketStats)[]) {
    into[k] = k === 'Depth' ? Math.max(into.Depth, s.Depth) : into[k] + s[k];
  }
}

/** Bytes a leaf page uses: header, elements, and the data up to the last element's end. */
function leafUsed(p: Page): number {
  if (p.count === 0) return PAGE_HEADER_SIZE;
  const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * (p.count - 1);
  if (e + ELEMENT_SIZE > p.bytes.length) throw new DatarootError('BOLT_CORRUPT', `leaf page ${p.pgid}: element array past the page`, { page: p.pgid });
  const v = p.view;
  return e + v.getUint32(e + 4, true) + v.getUint32(e + 8, true) + v.getUint32(e + 12, true);
}

function branchUsed(p: Page): number {
  if (p.count === 0) return PAGE_HEADER_SIZE;
  const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * (p.count - 1);
  if (e + ELEMENT_SIZE > p.bytes.length) throw new DatarootError('BOLT_CORRUPT', `branch page ${p.pgid}: element array past the page`, { page: p.pgid });
  const v = p.view;
  return e + v.getUint32(e, true) + v.getUint32(e + 4, true);
}

/** Growable float array (page ids and sizes fit a double exactly below 2^53). */
class F64List {
  data = new Float64Array(1024);
  length = 0;
  push(x: number): void {
    if (this.length === this.data.length) {
      const d = new Float64Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = x;
  }
  /** Room for n more values; the caller then writes data[length…] and moves length. */
  reserve(n: number): Float64Array {
    if (this.length + n > this.data.length) {
      const d = new Float64Array(Math.max(this.data.length * 2, this.length + n));
      d.set(this.data.subarray(0, this.length));
      this.data = d;
    }
    return this.data;
  }
}

/**
 * What stats needs of every page, gathered in one sequential pass over the file in large
 * windows (so the file is read once, in order, at the speed of the disk), instead of a walk that
 * reads pages in tree order. Pages that are free or overflow continuations are indexed too; their
 * entries are simply never reached. A page whose bytes do not make sense keeps its error, thrown
 * only if a bucket tree reaches it.
 */
interface PageIndex {
  flags: Uint8Array;
  count: Uint16Array;
  overflow: Uint32Array;
  used: Float64Array;
  /** Branch: index of the first child in kids. Leaf: index of the first sub-bucket in subs. */
  first: Int32Array;
  /** Leaf: number of sub-bucket entries. */
  subN: Uint16Array;
  kids: F64List;
  /** Sub-bucket root page id (0 inline, -1 beyond 2^53). */
  subRoot: F64List;
  /** Inline sub-buckets: their key count and used bytes. */
  subInlineKeys: F64List;
  subInlineUsed: F64List;
  errors: Map<number, DatarootError>;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Window of the synchronous scan (the page source reads through chunks of the same size). */
export const STATS_WINDOW = 256 << 10;

/** Consecutive windows of whole pages from page 0, supplied by the io layer (`bolt stats` reads them synchronously, see io/windows.ts). */
export type PageWindows = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

function* syncWindows(db: BoltFile): Iterable<Uint8Array> {
  const per = Math.max(1, Math.floor(STATS_WINDOW / db.pageSize));
  for (let w = 0; w < db.hwm; w += per) yield db.readPages(w, Math.min(per, db.hwm - w));
}

async function indexPages(db: BoltFile, windows: PageWindows): Promise<PageIndex> {
  const hwm = db.hwm;
  const ps = db.pageSize;
  const idx: PageIndex = {
    flags: new Uint8Array(hwm),
    count: new Uint16Array(hwm),
    overflow: new Uint32Array(hwm),
    used: new Float64Array(hwm),
    first: new Int32Array(hwm),
    subN: new Uint16Array(hwm),
    kids: new F64List(),
    subRoot: new F64List(),
    subInlineKeys: new F64List(),
    subInlineUsed: new F64List(),
    errors: new Map(),
  };
  let w = 0;
  for await (const win of windows) {
    if (w >= hwm) break;
    if (win.length % ps !== 0 || win.length === 0) {
      throw new DatarootError('BOLT_CORRUPT', `scan window of ${win.length} bytes is not whole pages of ${ps}`, { page: w });
    }
    const n = Math.min(win.length / ps, hwm - w);
    const wv = new DataView(win.buffer, win.byteOffset, win.byteLength);
    // Element flags read as 32-bit words where the window allows it (aligned, little-endian host).
    const w32 = LITTLE_ENDIAN_HOST && win.byteOffset % 4 === 0 ? new Uint32Array(win.buffer, win.byteOffset, win.byteLength >>> 2) : undefined;
    for (let i = w === 0 ? 2 : 0; i < n; i++) {
      const pgid = w + i;
      const off = i * ps;
      const flags = wv.getUint16(off + 8, true);
      if (flags !== FLAG_LEAF && flags !== FLAG_BRANCH) {
        idx.flags[pgid] = flags & 0xff || 0xff;
        continue;
      }
      const overflow = wv.getUint32(off + 12, true);
      try {
        if (overflow !== 0 || !indexPlainPage(idx, wv, w32, off, ps, pgid, flags)) {
          let p: Page;
          if (overflow === 0) {
            const bytes = win.subarray(off, off + ps);
            p = { pgid, headerId: 0n, flags, count: wv.getUint16(off + 10, true), overflow, bytes, view: new DataView(bytes.buffer, bytes.byteOffset, ps) };
          } else p = db.page(pgid);
          indexPage(db, idx, p);
        }
      } catch (e) {
        if (!(e instanceof DatarootError)) throw e;
        idx.errors.set(pgid, e);
      }
      idx.flags[pgid] = flags;
    }
    w += n;
  }
  if (w < hwm) throw new DatarootError('BOLT_TRUNCATED', `the scan ended at page ${w}, below the high-water mark ${hwm}`, { page: w });
  return idx;
}

/**
 * The fast path for the common page: one page, elements inside it, no sub-buckets. Reads the
 * window's DataView directly; returns false to send anything else to indexPage.
 */
function indexPlainPage(idx: PageIndex, wv: DataView, w32: Uint32Array | undefined, off: number, ps: number, pgid: number, flags: number): boolean {
  const count = wv.getUint16(off + 10, true);
  if (PAGE_HEADER_SIZE + ELEMENT_SIZE * count > ps) return false;
  if (flags === FLAG_LEAF) {
    // A sub-bucket sends the page to indexPage; only the last element's end matters for the bytes used.
    if (w32 !== undefined) {
      for (let q = (off + PAGE_HEADER_SIZE) >>> 2, end = q + 4 * count; q < end; q += 4) if ((w32[q]! & 1) !== 0) return false;
    } else {
      for (let i = 0; i < count; i++) if ((wv.getUint32(off + PAGE_HEADER_SIZE + ELEMENT_SIZE * i, true) & 1) !== 0) return false;
    }
    let end = PAGE_HEADER_SIZE;
    if (count > 0) {
      const e = off + PAGE_HEADER_SIZE + ELEMENT_SIZE * (count - 1);
      end = e - off + wv.getUint32(e + 4, true) + wv.getUint32(e + 8, true) + wv.getUint32(e + 12, true);
      if (end > ps) return false;
    }
    idx.count[pgid] = count;
    idx.used[pgid] = end;
    idx.subN[pgid] = 0;
    return true;
  }
  if (flags === FLAG_BRANCH) {
    // Child page ids straight from the elements (pos u32, ksize u32, pgid u64): no entry objects.
    const first = idx.kids.length;
    const kids = idx.kids.reserve(count);
    let end = PAGE_HEADER_SIZE;
    for (let i = 0; i < count; i++) {
      const e = off + PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
      end = e - off + wv.getUint32(e, true) + wv.getUint32(e + 4, true);
      const hi = wv.getUint32(e + 12, true);
      if (end > ps || hi >= 0x200000) return false;
      kids[first + i] = hi * 0x100000000 + wv.getUint32(e + 8, true);
    }
    idx.kids.length = first + count;
    idx.count[pgid] = count;
    idx.used[pgid] = end;
    idx.first[pgid] = first;
    return true;
  }
  return false;
}

function indexPage(db: BoltFile, idx: PageIndex, p: Page): void {
  const { pgid, count } = p;
  idx.count[pgid] = count;
  idx.overflow[pgid] = p.overflow;
  if (p.flags === FLAG_BRANCH) {
    idx.used[pgid] = branchUsed(p);
    idx.first[pgid] = idx.kids.length;
    for (let i = 0; i < count; i++) idx.kids.push(db.branchEntry(p, i).pgid);
    return;
  }
  idx.used[pgid] = leafUsed(p);
  idx.first[pgid] = idx.subRoot.length;
  const v = p.view;
  let subs = 0;
  for (let i = 0; i < count; i++) {
    const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    if (e + ELEMENT_SIZE > p.bytes.length) db.leafEntry(p, i); // throws
    if ((v.getUint32(e, true) & 1) === 0) continue;
    const entry = db.leafEntry(p, i);
    const b = db.openBucket(entry.value);
    idx.subRoot.push(b.inline !== undefined ? 0 : b.root);
    idx.subInlineKeys.push(b.inline?.count ?? 0);
    idx.subInlineUsed.push(b.inline !== undefined ? leafUsed(b.inline) : 0);
    subs++;
  }
  idx.subN[pgid] = subs;
}

/** One bucket of the stats walk: its figures, its sub-buckets' sum, and the pages still to visit. */
interface StatsFrame {
  s: BucketStats;
  sub: BucketStats;
  /** Pages of its tree to visit (a stack: the next one last) and their depth in the tree. */
  pages: number[];
  depths: number[];
  /** Sub-buckets of the leaf visited last, as indexes into the page index's lists. */
  nextSub: number;
  endSub: number;
}

function inlineStats(keys: number, used: number): BucketStats {
  const s = emptyStats();
  s.BucketN = 1;
  s.InlineBucketN = 1;
  s.KeyN = keys;
  s.InlineBucketInuse = used;
  s.Depth = 1;
  return s;
}

function statsFrame(root: number): StatsFrame {
  const s = emptyStats();
  s.BucketN = 1;
  return { s, sub: emptyStats(), pages: [root], depths: [0], nextSub: 0, endSub: 0 };
}

/** The last figures of a bucket: bytes allocated, its depth plus the deepest sub-bucket's, the sub-buckets added. */
function finish(db: BoltFile, f: { s: BucketStats; sub: BucketStats }): BucketStats {
  const s = f.s;
  s.BranchAlloc = (s.BranchPageN + s.BranchOverflowN) * db.pageSize;
  s.LeafAlloc = (s.LeafPageN + s.LeafOverflowN) * db.pageSize;
  s.Depth += f.sub.Depth;
  addStats(s, f.sub);
  return s;
}

/**
 * Bucket.Stats() of bbolt for one bucket: every page of its tree visited once, sub-buckets
 * counted through the leaves of non-inline buckets only, each right after the leaf that holds it
 * (as bbolt recurses). Buckets and pages are walked with explicit stacks: a file may nest buckets
 * as deep as it likes.
 */
function bucketStats(db: BoltFile, idx: PageIndex, root: number, inline: { keys: number; used: number } | undefined, seen: Uint8Array): BucketStats {
  if (inline !== undefined) return finish(db, { s: inlineStats(inline.keys, inline.used), sub: emptyStats() });
  const frames: StatsFrame[] = [statsFrame(root)];
  for (;;) {
    const f = frames[frames.length - 1]!;
    if (f.nextSub < f.endSub) {
      const i = f.nextSub++;
      const r = idx.subRoot.data[i]!;
      if (r === 0) addStats(f.sub, finish(db, { s: inlineStats(idx.subInlineKeys.data[i]!, idx.subInlineUsed.data[i]!), sub: emptyStats() }));
      else frames.push(statsFrame(r));
      continue;
    }
    if (f.pages.length > 0) {
      const pgid = f.pages.pop()!;
      const depth = f.depths.pop()!;
      if (pgid < 2 || pgid >= db.hwm) throw new DatarootError('BOLT_CORRUPT', `page ${pgid} is outside the data pages`, { page: pgid });
      if (seen[pgid] === 1) throw new DatarootError('BOLT_CORRUPT', `page ${pgid} is referenced more than once`, { page: pgid });
      if (depth > 64) throw new DatarootError('BOLT_CORRUPT', `page ${pgid}: tree deeper than 64 levels`, { page: pgid });
      seen[pgid] = 1;
      if (idx.errors.size > 0) {
        const err = idx.errors.get(pgid);
        if (err !== undefined) throw err;
      }
      const s = f.s;
      const flags = idx.flags[pgid];
      const count = idx.count[pgid]!;
      if (flags === FLAG_LEAF) {
        s.KeyN += count;
        s.LeafPageN++;
        s.LeafInuse += idx.used[pgid]!;
        s.LeafOverflowN += idx.overflow[pgid]!;
        f.nextSub = idx.first[pgid]!;
        f.endSub = f.nextSub + idx.subN[pgid]!;
      } else if (flags === FLAG_BRANCH) {
        s.BranchPageN++;
        s.BranchInuse += idx.used[pgid]!;
        s.BranchOverflowN += idx.overflow[pgid]!;
        const first = idx.first[pgid]!;
        // Pushed last child first, so that they are visited in key order.
        for (let i = first + count - 1; i >= first; i--) {
          f.pages.push(idx.kids.data[i]!);
          f.depths.push(depth + 1);
        }
      } else {
        throw new DatarootError('BOLT_CORRUPT', `page ${pgid}: invalid page type ${pageTypeName(flags === 0xff ? 0 : (flags ?? 0))} inside a bucket tree`, {
          page: pgid,
        });
      }
      s.Depth = Math.max(s.Depth, depth + 1);
      continue;
    }
    const done = finish(db, f);
    frames.pop();
    const parent = frames[frames.length - 1];
    if (parent === undefined) return done;
    addStats(parent.sub, done);
  }
}

/**
 * `bbolt stats [prefix]`: the aggregate over top-level buckets whose name starts with prefix.
 * `windows` supplies the file's pages in order (default: read through the BoltFile's source).
 */
export async function dbStats(db: BoltFile, prefix: Uint8Array = new Uint8Array(), windows?: PageWindows): Promise<{ buckets: number; stats: BucketStats }> {
  const total = emptyStats();
  const tops: BucketRef[] = [];
  db.forEachEntry(db.rootBucket(), db.newSeen(), (e) => {
    if (!isBucketEntry(e)) return;
    if (e.key.length < prefix.length || compareBytes(e.key.subarray(0, prefix.length), prefix) !== 0) return;
    tops.push(db.openBucket(copyBytes(e.value)));
  });
  const idx = await indexPages(db, windows ?? syncWindows(db));
  const seen = db.newSeen();
  for (const t of tops) {
    const inline = t.inline !== undefined ? { keys: t.inline.count, used: leafUsed(t.inline) } : undefined;
    addStats(total, bucketStats(db, idx, t.root, inline, seen));
  }
  return { buckets: tops.length, stats: total };
}

/** Go's int(float32(a) * 100.0 / float32(b)), 0 when b is 0. */
export function goPercent(a: number, b: number): number {
  if (b === 0) return 0;
  return Math.trunc(Math.fround(Math.fround(Math.fround(a) * 100) / Math.fround(b)));
}

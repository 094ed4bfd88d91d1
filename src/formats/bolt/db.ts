import { DatarootError } from '../errors.js';
import { compareBytes, copyBytes, view } from '../bytes.js';
import type { ByteSource } from './source.js';
import {
  BUCKET_HEADER_SIZE,
  ELEMENT_SIZE,
  FLAG_BRANCH,
  FLAG_FREELIST,
  FLAG_LEAF,
  FREELIST_COUNT_ESCAPE,
  LEAF_FLAG_BUCKET,
  MAX_PAGE_SIZE,
  META_OFFSET,
  META_SIZE,
  MIN_PAGE_SIZE,
  PAGE_HEADER_SIZE,
  pageTypeName,
} from './constants.js';
import { decodeMeta, hasFreelist, type Meta } from './meta.js';

/** A logical page: its header and the bytes of its whole span (`overflow + 1` physical pages). */
export interface Page {
  /** The id the page was read at. */
  readonly pgid: number;
  /** The id written in the page header (equal to pgid in a sound file). */
  readonly headerId: bigint;
  readonly flags: number;
  readonly count: number;
  readonly overflow: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** A bucket reference: a page-tree root, or an inline leaf page carried inside the value. */
export interface BucketRef {
  /** Root page id; 0 for an inline bucket; -1 when the stored u64 is beyond any file. */
  readonly root: number;
  readonly rootBig: bigint;
  readonly sequence: bigint;
  readonly inline: Page | undefined;
}

export interface LeafEntry {
  readonly flags: number;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

export interface BranchEntry {
  readonly key: Uint8Array;
  /** Child page id, -1 when the stored u64 exceeds 2^53. */
  readonly pgid: number;
  readonly pgidBig: bigint;
}

export function isBucketEntry(e: LeafEntry): boolean {
  return (e.flags & LEAF_FLAG_BUCKET) !== 0;
}

function corrupt(message: string, details: Record<string, unknown> = {}): DatarootError {
  return new DatarootError('BOLT_CORRUPT', message, details);
}

function metaError(m: Meta, file: string | undefined): DatarootError {
  const details = file === undefined ? {} : { file };
  switch (m.problem) {
    case 'big-endian database':
      return new DatarootError(
        'BOLT_BIG_ENDIAN',
        'the magic reads ed 0c da ed: a bbolt file written on a big-endian host (s390x, ppc64); only little-endian files are read',
        details,
      );
    case 'version mismatch':
      return new DatarootError('BOLT_BAD_META', `version mismatch: expected 2, got ${m.version}`, details);
    case 'checksum error':
      return new DatarootError('BOLT_BAD_META', `meta checksum error: stored ${m.checksum.toString(16)}, computed ${m.computedChecksum.toString(16)}`, details);
    default:
      return new DatarootError('BOLT_NOT_BOLT', `invalid database: magic at offset 16 is ${m.magic.toString(16).padStart(8, '0')}, expected ed0cdaed`, details);
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function u64(v: DataView, off: number): { n: number; big: bigint } {
  const big = v.getBigUint64(off, true);
  const n = big <= MAX_SAFE ? Number(big) : -1;
  return { n, big };
}

export interface OpenOptions {
  /** Used in error details only. */
  file?: string;
}

/**
 * A read-only view of one bbolt file. Every offset and length read from the file is checked
 * against the file before it is used, so a hostile file ends in a DatarootError, never in a
 * read beyond the file, an allocation larger than the file, or an endless walk.
 */
export class BoltFile {
  readonly meta: Meta;
  readonly metas: readonly [Meta, Meta | undefined];
  /** Which meta page (0 or 1) was selected. */
  readonly metaIndex: 0 | 1;
  readonly pageSize: number;
  /** High-water mark: number of pages in use. */
  readonly hwm: number;
  /** Whole pages the file holds. */
  readonly pagesInFile: number;
  readonly file: string | undefined;
  /**
   * Reads made so far. The bytes of a read stay valid while no other read is made (a page source
   * may reuse its memory), so a walker may keep a page while this count has not moved.
   */
  reads = 0;

  private constructor(
    private readonly src: ByteSource,
    init: { meta: Meta; metas: [Meta, Meta | undefined]; metaIndex: 0 | 1; pageSize: number; hwm: number },
    file: string | undefined,
  ) {
    this.meta = init.meta;
    this.metas = init.metas;
    this.metaIndex = init.metaIndex;
    this.pageSize = init.pageSize;
    this.hwm = init.hwm;
    this.pagesInFile = Math.floor(src.size / init.pageSize);
    this.file = file;
  }

  static open(src: ByteSource, opts: OpenOptions = {}): BoltFile {
    const file = opts.file;
    const det = file === undefined ? {} : { file };
    const size = src.size;
    if (size < META_OFFSET + META_SIZE) {
      throw new DatarootError('BOLT_TRUNCATED', `file is ${size} bytes, too small to hold a bbolt meta page`, det);
    }
    const meta0 = decodeMeta(src.read(0, META_OFFSET + META_SIZE));
    let pageSize: number | undefined = meta0.problem === undefined ? meta0.pageSize : undefined;
    if (pageSize === undefined) {
      // bbolt >= 1.3.7 probes for meta 1 at 1 KiB .. 16 MiB when meta 0 is unreadable.
      for (let i = 0; i < 15; i++) {
        const pos = 1024 * 2 ** i;
        if (pos >= size - 1024) break;
        const m = decodeMeta(src.read(pos, Math.min(META_OFFSET + META_SIZE, size - pos)));
        if (m.problem === undefined) {
          pageSize = m.pageSize;
          break;
        }
      }
    }
    if (pageSize === undefined) throw metaError(meta0, file);
    if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
      throw new DatarootError('BOLT_BAD_META', `page size ${pageSize} is not a power of two between 512 and 16 MiB`, det);
    }
    if (size < 2 * pageSize) {
      throw new DatarootError('BOLT_TRUNCATED', `file size too small: ${size} bytes for page size ${pageSize}`, det);
    }
    const meta1 = decodeMeta(src.read(pageSize, META_OFFSET + META_SIZE));
    // The meta with the strictly greater txid is tried first; meta 0 wins ties.
    const order: [Meta, 0 | 1][] =
      meta1.txid > meta0.txid
        ? [
            [meta1, 1],
            [meta0, 0],
          ]
        : [
            [meta0, 0],
            [meta1, 1],
          ];
    const chosen = order.find(([m]) => m.problem === undefined);
    if (chosen === undefined) throw metaError(meta0, file);
    const [meta, metaIndex] = chosen;
    if (meta.pageSize !== pageSize) {
      throw new DatarootError('BOLT_BAD_META', `meta ${metaIndex} says page size ${meta.pageSize}, the file was opened with ${pageSize}`, det);
    }
    const pagesInFile = Math.floor(size / pageSize);
    if (meta.pgid > BigInt(pagesInFile)) {
      throw new DatarootError(
        'BOLT_TRUNCATED',
        `meta ${metaIndex} (txid ${meta.txid}) has a high-water mark of ${meta.pgid} pages, but the file holds only ${pagesInFile} pages of ${pageSize} bytes: the file is truncated`,
        det,
      );
    }
    const hwm = Number(meta.pgid);
    if (hwm < 2) throw new DatarootError('BOLT_BAD_META', `high-water mark ${hwm} is below the two meta pages`, det);
    return new BoltFile(src, { meta, metas: [meta0, meta1], metaIndex, pageSize, hwm }, file);
  }

  /** Error details naming the file (for the walkers of this module). */
  details(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.file === undefined ? extra : { file: this.file, ...extra };
  }

  /** The 16-byte header of a page, or an error when the page is outside the file. */
  header(pgid: number): { headerId: bigint; flags: number; count: number; overflow: number } {
    if (!Number.isSafeInteger(pgid) || pgid < 0 || pgid >= this.pagesInFile) {
      throw corrupt(`page ${pgid} is outside the file (${this.pagesInFile} pages)`, this.details({ page: pgid }));
    }
    this.reads++;
    const v = view(this.src.read(pgid * this.pageSize, PAGE_HEADER_SIZE));
    return { headerId: v.getBigUint64(0, true), flags: v.getUint16(8, true), count: v.getUint16(10, true), overflow: v.getUint32(12, true) };
  }

  /** Reads a logical page, with its overflow span, after checking that the span lies inside the file. */
  page(pgid: number): Page {
    if (!Number.isSafeInteger(pgid) || pgid < 0 || pgid >= this.pagesInFile) {
      throw corrupt(`page ${pgid} is outside the file (${this.pagesInFile} pages)`, this.details({ page: pgid }));
    }
    // The first page holds the header: one read when there is no overflow (most pages).
    this.reads++;
    let bytes = this.src.read(pgid * this.pageSize, this.pageSize);
    let v = view(bytes);
    const headerId = v.getBigUint64(0, true);
    const flags = v.getUint16(8, true);
    const count = v.getUint16(10, true);
    const overflow = v.getUint32(12, true);
    if (overflow !== 0) {
      if (pgid + overflow + 1 > this.pagesInFile) {
        throw corrupt(
          `page ${pgid} claims ${overflow} overflow pages, past the end of the file (${this.pagesInFile} pages)`,
          this.details({ page: pgid, offset: pgid * this.pageSize + 12 }),
        );
      }
      bytes = this.src.read(pgid * this.pageSize, (overflow + 1) * this.pageSize);
      v = view(bytes);
    }
    return { pgid, headerId, flags, count, overflow, bytes, view: v };
  }

  /** The raw bytes of `n` consecutive pages from `pgid`, for sequential scans. */
  readPages(pgid: number, n: number): Uint8Array {
    if (pgid < 0 || n < 0 || pgid + n > this.pagesInFile) {
      throw corrupt(`pages ${pgid}..${pgid + n} are outside the file (${this.pagesInFile} pages)`, this.details({ page: pgid }));
    }
    this.reads++;
    return this.src.read(pgid * this.pageSize, n * this.pageSize);
  }

  /** Builds a page over bytes that are not at a page position (an inline bucket's leaf). */
  static pageOf(bytes: Uint8Array): Page {
    const v = view(bytes);
    return {
      pgid: 0,
      headerId: v.getBigUint64(0, true),
      flags: v.getUint16(8, true),
      count: v.getUint16(10, true),
      overflow: v.getUint32(12, true),
      bytes,
      view: v,
    };
  }

  leafEntry(p: Page, i: number): LeafEntry {
    const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    const len = p.bytes.length;
    if (e + ELEMENT_SIZE > len) {
      throw corrupt(`leaf page ${p.pgid}: element ${i} of ${p.count} lies past the page (${len} bytes)`, this.details({ page: p.pgid }));
    }
    const v = p.view;
    const flags = v.getUint32(e, true);
    const start = e + v.getUint32(e + 4, true);
    const ksize = v.getUint32(e + 8, true);
    const vsize = v.getUint32(e + 12, true);
    const end = start + ksize + vsize;
    if (end > len) {
      throw corrupt(`leaf page ${p.pgid}: element ${i} points to bytes ${start}..${end}, past the page (${len} bytes)`, this.details({ page: p.pgid }));
    }
    return { flags, key: p.bytes.subarray(start, start + ksize), value: p.bytes.subarray(start + ksize, end) };
  }

  branchEntry(p: Page, i: number): BranchEntry {
    const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    const len = p.bytes.length;
    if (e + ELEMENT_SIZE > len) {
      throw corrupt(`branch page ${p.pgid}: element ${i} of ${p.count} lies past the page`, this.details({ page: p.pgid }));
    }
    const v = p.view;
    const start = e + v.getUint32(e, true);
    const ksize = v.getUint32(e + 4, true);
    if (start + ksize > len) {
      throw corrupt(`branch page ${p.pgid}: element ${i} key lies past the page`, this.details({ page: p.pgid }));
    }
    const id = u64(v, e + 8);
    return { key: p.bytes.subarray(start, start + ksize), pgid: id.n, pgidBig: id.big };
  }

  rootBucket(): BucketRef {
    const root = this.meta.root <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(this.meta.root) : -1;
    return { root, rootBig: this.meta.root, sequence: this.meta.rootSequence, inline: undefined };
  }

  /** Interprets the value of a bucket entry; `where` names it in errors (a function: built only for an error). */
  openBucket(value: Uint8Array, where: string | (() => string) = 'bucket'): BucketRef {
    if (value.length < BUCKET_HEADER_SIZE) this.badBucket(value, where);
    const v = view(value);
    const root = u64(v, 0);
    const sequence = v.getBigUint64(8, true);
    if (root.big !== 0n) return { root: root.n, rootBig: root.big, sequence, inline: undefined };
    if (value.length < BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE) this.badBucket(value, where);
    const inline = BoltFile.pageOf(value.subarray(BUCKET_HEADER_SIZE));
    if (inline.flags !== FLAG_LEAF) this.badBucket(value, where);
    return { root: 0, rootBig: 0n, sequence, inline };
  }

  private badBucket(value: Uint8Array, whereArg: string | (() => string)): never {
    const where = typeof whereArg === 'string' ? whereArg : whereArg();
    if (value.length < BUCKET_HEADER_SIZE) {
      throw corrupt(`${where}: bucket value is ${value.length} bytes, shorter than the 16-byte bucket header`, this.details());
    }
    if (value.length < BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE) {
      throw corrupt(`${where}: inline bucket of ${value.length} bytes has no room for its page header`, this.details());
    }
    const flags = BoltFile.pageOf(value.subarray(BUCKET_HEADER_SIZE)).flags;
    throw corrupt(`${where}: inline bucket page has flags ${flags.toString(16)}, expected a leaf (2)`, this.details());
  }

  /**
   * Calls `leaf` for every leaf page of a bucket in key order (an inline bucket: its one page).
   * `seen` marks pages already visited in this walk: a page reached twice (a cycle or a
   * shared subtree) is corruption and stops the walk.
   */
  forEachLeaf(b: BucketRef, seen: Seen | undefined, leaf: (p: Page) => void): void {
    if (b.inline !== undefined) {
      leaf(b.inline);
      return;
    }
    const leaves = new LeafCursor(this, b.root, seen);
    for (let p = leaves.next(); p !== undefined; p = leaves.next()) leaf(p);
  }

  newSeen(): Uint8Array {
    return new Uint8Array(this.hwm);
  }

  /** Every entry of a bucket, in key order (bucket entries included, flagged). */
  forEachEntry(b: BucketRef, seen: Seen | undefined, fn: (e: LeafEntry) => void): void {
    this.forEachLeaf(b, seen, (p) => {
      for (let i = 0; i < p.count; i++) fn(this.leafEntry(p, i));
    });
  }

  /** bbolt's seek: the entry with exactly this key, or undefined. */
  lookup(b: BucketRef, key: Uint8Array): LeafEntry | undefined {
    let p: Page;
    if (b.inline !== undefined) p = b.inline;
    else {
      let pgid = b.root;
      for (let depth = 0; ; depth++) {
        if (pgid < 2 || pgid >= this.hwm || depth > 64) throw corrupt(`lookup reached invalid page ${pgid}`, this.details({ page: pgid }));
        p = this.page(pgid);
        if (p.flags === FLAG_LEAF) break;
        if (p.flags !== FLAG_BRANCH) throw corrupt(`page ${pgid}: invalid page type ${pageTypeName(p.flags)}`, this.details({ page: pgid }));
        if (p.count === 0) return undefined;
        // sort.Search for the first key >= search key; step back one unless exact.
        let lo = 0;
        let hi = p.count;
        let exact = false;
        while (lo < hi) {
          const h = (lo + hi) >>> 1;
          const c = compareBytes(this.branchEntry(p, h).key, key);
          if (c === 0) exact = true;
          if (c === -1) lo = h + 1;
          else hi = h;
        }
        let index = lo;
        if (!exact && index > 0) index--;
        if (index >= p.count) index = p.count - 1;
        pgid = this.branchEntry(p, index).pgid;
      }
    }
    for (let i = 0; i < p.count; i++) {
      const e = this.leafEntry(p, i);
      const c = compareBytes(e.key, key);
      if (c === 0) return e;
      if (c > 0) return undefined;
    }
    return undefined;
  }

  /** Follows a path of bucket names from the root; undefined when a name is missing or not a bucket. */
  bucketAt(path: readonly Uint8Array[]): BucketRef | undefined {
    let b = this.rootBucket();
    for (const name of path) {
      const e = this.lookup(b, name);
      if (e === undefined || !isBucketEntry(e)) return undefined;
      b = this.openBucket(e.value);
    }
    return b;
  }

  /** The ids listed in the freelist page (sorted ascending), or undefined when the file has no freelist. */
  freelistIds(): number[] | undefined {
    if (!hasFreelist(this.meta)) return undefined;
    const id = this.meta.freelist <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(this.meta.freelist) : -1;
    if (id < 2 || id >= this.hwm) throw corrupt(`meta freelist page ${this.meta.freelist} is outside the data pages`, this.details({ page: id }));
    const p = this.page(id);
    if (p.flags !== FLAG_FREELIST) {
      throw corrupt(`invalid freelist page: ${id}, page type is ${pageTypeName(p.flags)}`, this.details({ page: id }));
    }
    let count = p.count;
    let start = PAGE_HEADER_SIZE;
    if (count === FREELIST_COUNT_ESCAPE) {
      if (start + 8 > p.bytes.length) throw corrupt(`freelist page ${id} has no room for its count`, this.details({ page: id }));
      const n = u64(p.view, start).n;
      if (n < 0 || start + 8 + n * 8 > p.bytes.length)
        throw corrupt(`freelist page ${id} claims ${n} ids, more than its span holds`, this.details({ page: id }));
      count = n;
      start += 8;
    } else if (start + count * 8 > p.bytes.length) {
      throw corrupt(`freelist page ${id} claims ${count} ids, more than its span holds`, this.details({ page: id }));
    }
    const ids = new Array<number>(count);
    for (let i = 0; i < count; i++) ids[i] = u64(p.view, start + 8 * i).n;
    return ids.sort((a, b) => a - b);
  }

  /**
   * Pages reachable from the root bucket (each page with its overflow span), marked in a
   * Uint8Array of hwm entries. Throws on the first structural problem, as bbolt's freepages() panics.
   */
  reachablePages(): Uint8Array {
    const seen = this.newSeen();
    seen[0] = 1;
    seen[1] = 1;
    // Each bucket's pages are marked before its entries are walked; sub-buckets depth-first, with
    // an explicit stack (the nesting of buckets is the file's to choose).
    const root = this.rootBucket();
    this.descendPages(root.root, seen, 0);
    const w = new BucketWalk(this, root, undefined);
    while (w.depth > 0) {
      const p = w.leaf();
      if (p === undefined) {
        w.leave();
        continue;
      }
      let i = w.index;
      for (; i < p.count; i++) {
        const e = this.leafEntry(p, i);
        if (!isBucketEntry(e)) continue;
        const child = this.openBucket(e.value);
        if (child.inline !== undefined) continue;
        w.enter(child, i + 1);
        this.descendPages(child.root, seen, 0);
        break;
      }
      if (i >= p.count) w.nextLeaf();
    }
    return seen;
  }

  private descendPages(pgid: number, seen: Uint8Array, depth: number): void {
    if (pgid < 2 || pgid >= this.hwm) throw corrupt(`page ${pgid} is outside the data pages (high-water mark ${this.hwm})`, this.details({ page: pgid }));
    if (seen[pgid] === 1) throw corrupt(`page ${pgid} is referenced more than once`, this.details({ page: pgid }));
    if (depth > 64) throw corrupt(`page ${pgid}: tree deeper than 64 levels`, this.details({ page: pgid }));
    const p = this.page(pgid);
    for (let i = 0; i <= p.overflow; i++) {
      if (pgid + i >= this.hwm) throw corrupt(`page ${pgid}: overflow reaches past the high-water mark`, this.details({ page: pgid }));
      seen[pgid + i] = 1;
    }
    if (p.flags === FLAG_BRANCH) for (let i = 0; i < p.count; i++) this.descendPages(this.branchEntry(p, i).pgid, seen, depth + 1);
    else if (p.flags !== FLAG_LEAF) throw corrupt(`page ${pgid}: invalid page type ${pageTypeName(p.flags)}`, this.details({ page: pgid }));
  }

  /** The free page set as bbolt loads it: the freelist page, or, without one, [2, hwm) minus reachable pages. */
  freePages(): number[] {
    const ids = this.freelistIds();
    if (ids !== undefined) return ids;
    const reach = this.reachablePages();
    const free: number[] = [];
    for (let i = 2; i < this.hwm; i++) if (reach[i] !== 1) free.push(i);
    return free;
  }
}

/**
 * Pages visited by walk after walk without a new array each time: `clear()` starts a new walk in
 * O(1) (a Uint8Array from newSeen() marks with 1 and serves one walk).
 */
export class PageMarks {
  private readonly marks: Uint32Array;
  private mark = 1;
  constructor(size: number) {
    this.marks = new Uint32Array(size);
  }
  clear(): void {
    if (this.mark === 0xffffffff) {
      this.marks.fill(0);
      this.mark = 1;
    } else this.mark++;
  }
  /** Marks a page; false when this walk had marked it already. */
  add(pgid: number): boolean {
    if (this.marks[pgid] === this.mark) return false;
    this.marks[pgid] = this.mark;
    return true;
  }
}

/** Pages already visited in one walk (see BoltFile.newSeen and PageMarks). */
export type Seen = Uint8Array | PageMarks;

/** Deepest page tree a bucket may have (bbolt's are a handful of levels). */
const MAX_TREE_LEVELS = 64;

/**
 * The leaf pages of one bucket's page tree, one per next(), in key order. The caller may read
 * other pages (walk sub-buckets) between two calls: only child page ids are kept, never page
 * bytes, since a page source may reuse its memory. Checks, in this order, as bbolt's walk meets
 * them: the id is a data page, it was not visited before in this walk, the tree is at most 64
 * levels deep, the page is a branch or a leaf.
 */
export class LeafCursor {
  /** Child ids of the branch pages on the way down, and the index of the next child at each. */
  private readonly kids: number[][] = [];
  private readonly next_: number[] = [];
  private started = false;

  constructor(
    private readonly db: BoltFile,
    private readonly root: number,
    private readonly seen: Seen | undefined,
  ) {}

  next(): Page | undefined {
    const db = this.db;
    for (;;) {
      let pgid: number;
      let depth: number;
      if (!this.started) {
        this.started = true;
        pgid = this.root;
        depth = 0;
      } else {
        const top = this.kids.length - 1;
        if (top < 0) return undefined;
        const kids = this.kids[top]!;
        const i = this.next_[top]!;
        if (i >= kids.length) {
          this.kids.pop();
          this.next_.pop();
          continue;
        }
        this.next_[top] = i + 1;
        pgid = kids[i]!;
        depth = top + 1;
      }
      if (pgid < 2 || pgid >= db.hwm) {
        throw corrupt(`page ${pgid === -1 ? 'id beyond 2^53' : pgid} is not a data page (high-water mark ${db.hwm})`, db.details({ page: pgid }));
      }
      const seen = this.seen;
      if (seen !== undefined) {
        const again = seen instanceof Uint8Array ? seen[pgid] === 1 : !seen.add(pgid);
        if (again) throw corrupt(`page ${pgid} is referenced more than once (cycle or shared subtree)`, db.details({ page: pgid }));
        if (seen instanceof Uint8Array) seen[pgid] = 1;
      }
      if (depth > MAX_TREE_LEVELS) throw corrupt(`page ${pgid}: tree deeper than ${MAX_TREE_LEVELS} levels`, db.details({ page: pgid }));
      const p = db.page(pgid);
      if (p.flags === FLAG_LEAF) return p;
      if (p.flags !== FLAG_BRANCH) throw corrupt(`page ${pgid}: invalid page type ${pageTypeName(p.flags)} inside a bucket tree`, db.details({ page: pgid }));
      // Child ids are read now: the page's memory may be reused by later reads.
      const kids = new Array<number>(p.count);
      for (let i = 0; i < p.count; i++) kids[i] = db.branchEntry(p, i).pgid;
      this.kids.push(kids);
      this.next_.push(0);
    }
  }
}

/** One bucket of a BucketWalk. */
interface WalkFrame {
  /** The leaves of a bucket with its own page tree; undefined for an inline bucket. */
  readonly leaves: LeafCursor | undefined;
  /** The current leaf's id; for an inline bucket, the id of the page holding it (-1: held in `own`). */
  pgid: number;
  /** Inline bucket: where its page lies in the holding page's bytes (or in `own`). */
  readonly off: number;
  readonly len: number;
  readonly own: Uint8Array | undefined;
  /** Index of the next entry in the current leaf. */
  index: number;
  /** The current leaf as last returned, until the walk goes into a sub-bucket (then read again). */
  page: Page | undefined;
  /** The current leaf is done (or none was read yet): leaf() moves to the next one. */
  advance: boolean;
  /** Inline bucket: its one page was reached. */
  reached: boolean;
}

/**
 * A depth-first walk over a bucket and its sub-buckets with an explicit stack, for trees of
 * buckets nested as deep as a file likes (bbolt opens any depth). The caller reads entries from
 * `leaf()` at `index`; on a bucket entry it calls `enter(child, next index)` and continues with the
 * child; when `leaf()` returns undefined the innermost bucket is done and it calls `leave()`.
 * Frames keep page ids, never page bytes (a page source may reuse page memory): a leaf is read
 * again when the walk comes back to it, and an inline bucket is found again inside the page that
 * holds it. Pages are checked as `forEachLeaf` checks them, in the same order.
 *
 *     const w = new BucketWalk(db, start, db.newSeen());
 *     while (w.depth > 0) {
 *       const p = w.leaf();
 *       if (p === undefined) { w.leave(); continue; }
 *       let i = w.index;
 *       for (; i < p.count; i++) {
 *         const e = db.leafEntry(p, i);
 *         if (isBucketEntry(e)) { w.enter(db.openBucket(e.value), i + 1); break; }
 *       }
 *       if (i >= p.count) w.nextLeaf();
 *     }
 */
export class BucketWalk {
  private readonly frames: WalkFrame[] = [];
  /** The page read last, while no read has been made since (then it is still valid). */
  private last: Page | undefined;
  private lastReads = -1;
  /** Whether the page leaf() returned was just reached in its tree (false: read again, or returned again). */
  fresh = false;

  constructor(
    private readonly db: BoltFile,
    start: BucketRef,
    private readonly seen: Seen | undefined,
  ) {
    if (start.inline !== undefined) {
      // Its bytes belong to a page read before the walk: kept as a copy.
      const own = copyBytes(start.inline.bytes);
      this.frames.push(frame(undefined, -1, 0, own.length, own));
    } else this.frames.push(frame(new LeafCursor(db, start.root, seen), -1, 0, 0, undefined));
  }

  /** Buckets open, from the start bucket to the innermost; 0 when the walk is done. */
  get depth(): number {
    return this.frames.length;
  }

  /** Index of the next entry in the innermost bucket's current leaf. */
  get index(): number {
    return this.frames[this.frames.length - 1]!.index;
  }

  set index(i: number) {
    this.frames[this.frames.length - 1]!.index = i;
  }

  /**
   * The innermost bucket's current leaf (its next entry at `index`, which may equal the count: then
   * call nextLeaf()), or undefined when that bucket has no leaves left.
   */
  leaf(): Page | undefined {
    const f = this.frames[this.frames.length - 1]!;
    if (f.advance) {
      f.advance = false;
      f.index = 0;
      this.fresh = true;
      if (f.leaves !== undefined) {
        f.page = f.leaves.next();
        if (f.page !== undefined) {
          f.pgid = f.page.pgid;
          this.last = f.page;
          this.lastReads = this.db.reads;
        } else f.advance = true;
      } else if (!f.reached) {
        f.reached = true;
        f.page = this.inlinePage(f);
      } else {
        f.page = undefined;
        f.advance = true;
      }
      return f.page;
    }
    this.fresh = false;
    if (f.page === undefined) f.page = f.leaves !== undefined ? this.pageAt(f.pgid) : this.inlinePage(f);
    return f.page;
  }

  /** The current leaf is done: leaf() moves to the next. */
  nextLeaf(): void {
    const f = this.frames[this.frames.length - 1]!;
    f.page = undefined;
    f.advance = true;
  }

  /**
   * Goes into a sub-bucket opened from an entry of the page leaf() returned last (no other page
   * read since); the current bucket continues at entry `resume` once the sub-bucket is left.
   */
  enter(child: BucketRef, resume: number): void {
    const f = this.frames[this.frames.length - 1]!;
    const p = f.page;
    f.index = resume;
    f.page = undefined;
    if (child.inline === undefined) {
      this.frames.push(frame(new LeafCursor(this.db, child.root, this.seen), -1, 0, 0, undefined));
      return;
    }
    const b = child.inline.bytes;
    const at = p === undefined ? -1 : b.byteOffset - p.bytes.byteOffset;
    if (p !== undefined && b.buffer === p.bytes.buffer && at >= 0 && at + b.length <= p.bytes.length) {
      // Inside the page that holds the current bucket: found there again by offset.
      if (f.leaves !== undefined) this.frames.push(frame(undefined, f.pgid, at, b.length, undefined));
      else this.frames.push(frame(undefined, f.pgid, f.off + at, b.length, f.own));
    } else {
      const own = copyBytes(b);
      this.frames.push(frame(undefined, -1, 0, own.length, own));
    }
  }

  /** Leaves the innermost bucket. */
  leave(): void {
    this.frames.pop();
  }

  /**
   * A page read again: the one read last when nothing was read since (an inline bucket's walk
   * reads nothing, so a chain of inline buckets inside one large page costs one read, not one per
   * level), else from the file.
   */
  private pageAt(pgid: number): Page {
    if (this.last !== undefined && this.last.pgid === pgid && this.lastReads === this.db.reads) return this.last;
    const p = this.db.page(pgid);
    this.last = p;
    this.lastReads = this.db.reads;
    return p;
  }

  private inlinePage(f: WalkFrame): Page {
    const holder = f.own ?? this.pageAt(f.pgid).bytes;
    return BoltFile.pageOf(holder.subarray(f.off, f.off + f.len));
  }
}

function frame(leaves: LeafCursor | undefined, pgid: number, off: number, len: number, own: Uint8Array | undefined): WalkFrame {
  return { leaves, pgid, off, len, own, index: 0, page: undefined, advance: true, reached: false };
}

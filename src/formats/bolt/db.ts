import { DatarootError } from '../errors.js';
import { compareBytes, view } from '../bytes.js';
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
      return new DatarootError(
        'BOLT_BAD_META',
        `meta checksum error: stored ${m.checksum.toString(16)}, computed ${m.computedChecksum.toString(16)}`,
        details,
      );
    default:
      return new DatarootError(
        'BOLT_NOT_BOLT',
        `invalid database: magic at offset 16 is ${m.magic.toString(16).padStart(8, '0')}, expected ed0cdaed`,
        details,
      );
  }
}

function u64(v: DataView, off: number): { n: number; big: bigint } {
  const big = v.getBigUint64(off, true);
  const n = big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : -1;
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
    const order: [Meta, 0 | 1][] = meta1.txid > meta0.txid ? [[meta1, 1], [meta0, 0]] : [[meta0, 0], [meta1, 1]];
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

  private details(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.file === undefined ? extra : { file: this.file, ...extra };
  }

  /** The 16-byte header of a page, or an error when the page is outside the file. */
  header(pgid: number): { headerId: bigint; flags: number; count: number; overflow: number } {
    if (!Number.isSafeInteger(pgid) || pgid < 0 || pgid >= this.pagesInFile) {
      throw corrupt(`page ${pgid} is outside the file (${this.pagesInFile} pages)`, this.details({ page: pgid }));
    }
    const v = view(this.src.read(pgid * this.pageSize, PAGE_HEADER_SIZE));
    return { headerId: v.getBigUint64(0, true), flags: v.getUint16(8, true), count: v.getUint16(10, true), overflow: v.getUint32(12, true) };
  }

  /** Reads a logical page, with its overflow span, after checking that the span lies inside the file. */
  page(pgid: number): Page {
    const h = this.header(pgid);
    if (pgid + h.overflow + 1 > this.pagesInFile) {
      throw corrupt(
        `page ${pgid} claims ${h.overflow} overflow pages, past the end of the file (${this.pagesInFile} pages)`,
        this.details({ page: pgid, offset: pgid * this.pageSize + 12 }),
      );
    }
    const bytes = this.src.read(pgid * this.pageSize, (h.overflow + 1) * this.pageSize);
    return { pgid, ...h, bytes, view: view(bytes) };
  }

  /** The raw bytes of `n` consecutive pages from `pgid`, for sequential scans. */
  readPages(pgid: number, n: number): Uint8Array {
    if (pgid < 0 || n < 0 || pgid + n > this.pagesInFile) {
      throw corrupt(`pages ${pgid}..${pgid + n} are outside the file (${this.pagesInFile} pages)`, this.details({ page: pgid }));
    }
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
      throw corrupt(
        `leaf page ${p.pgid}: element ${i} points to bytes ${start}..${end}, past the page (${len} bytes)`,
        this.details({ page: p.pgid }),
      );
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

  /** Interprets the value of a bucket entry. */
  openBucket(value: Uint8Array, where = 'bucket'): BucketRef {
    if (value.length < BUCKET_HEADER_SIZE) {
      throw corrupt(`${where}: bucket value is ${value.length} bytes, shorter than the 16-byte bucket header`, this.details());
    }
    const v = view(value);
    const root = u64(v, 0);
    const sequence = v.getBigUint64(8, true);
    if (root.big !== 0n) return { root: root.n, rootBig: root.big, sequence, inline: undefined };
    const inlineBytes = value.subarray(BUCKET_HEADER_SIZE);
    if (inlineBytes.length < PAGE_HEADER_SIZE) {
      throw corrupt(`${where}: inline bucket of ${value.length} bytes has no room for its page header`, this.details());
    }
    const inline = BoltFile.pageOf(inlineBytes);
    if (inline.flags !== FLAG_LEAF) {
      throw corrupt(`${where}: inline bucket page has flags ${inline.flags.toString(16)}, expected a leaf (2)`, this.details());
    }
    return { root: 0, rootBig: 0n, sequence, inline };
  }

  /**
   * Calls `leaf` for every leaf page of a bucket in key order (an inline bucket: its one page).
   * `seen` marks pages already visited in this walk: a page reached twice (a cycle or a
   * shared subtree) is corruption and stops the walk.
   */
  forEachLeaf(b: BucketRef, seen: Uint8Array | undefined, leaf: (p: Page) => void): void {
    if (b.inline !== undefined) {
      leaf(b.inline);
      return;
    }
    this.descend(b.root, seen, leaf, 0);
  }

  private descend(pgid: number, seen: Uint8Array | undefined, leaf: (p: Page) => void, depth: number): void {
    if (pgid < 2 || pgid >= this.hwm) {
      throw corrupt(`page ${pgid === -1 ? 'id beyond 2^53' : pgid} is not a data page (high-water mark ${this.hwm})`, this.details({ page: pgid }));
    }
    if (seen !== undefined) {
      if (seen[pgid] === 1) throw corrupt(`page ${pgid} is referenced more than once (cycle or shared subtree)`, this.details({ page: pgid }));
      seen[pgid] = 1;
    }
    if (depth > 64) throw corrupt(`page ${pgid}: tree deeper than 64 levels`, this.details({ page: pgid }));
    const p = this.page(pgid);
    if (p.flags === FLAG_LEAF) {
      leaf(p);
    } else if (p.flags === FLAG_BRANCH) {
      // Child ids are read before descending: a page source may reuse page memory.
      const kids = new Array<number>(p.count);
      for (let i = 0; i < p.count; i++) kids[i] = this.branchEntry(p, i).pgid;
      for (const k of kids) this.descend(k, seen, leaf, depth + 1);
    } else {
      throw corrupt(`page ${pgid}: invalid page type ${pageTypeName(p.flags)} inside a bucket tree`, this.details({ page: pgid }));
    }
  }

  newSeen(): Uint8Array {
    return new Uint8Array(this.hwm);
  }

  /** Every entry of a bucket, in key order (bucket entries included, flagged). */
  forEachEntry(b: BucketRef, seen: Uint8Array | undefined, fn: (e: LeafEntry) => void): void {
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
      if (n < 0 || start + 8 + n * 8 > p.bytes.length) throw corrupt(`freelist page ${id} claims ${n} ids, more than its span holds`, this.details({ page: id }));
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
    const mark = (b: BucketRef): void => {
      if (b.inline !== undefined) return;
      this.descendPages(b.root, seen, 0);
      this.forEachEntry(b, undefined, (e) => {
        if (isBucketEntry(e)) mark(this.openBucket(e.value));
      });
    };
    mark(this.rootBucket());
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

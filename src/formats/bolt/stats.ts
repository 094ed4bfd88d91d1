import { FLAG_BRANCH, FLAG_LEAF, PAGE_HEADER_SIZE, ELEMENT_SIZE } from './constants.js';
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

/**
 * Bucket.Stats() of bbolt for one bucket: every page of its tree visited once, sub-buckets
 * recursed through the leaves of non-inline buckets only.
 */
export function bucketStats(db: BoltFile, b: BucketRef, seen: Uint8Array): BucketStats {
  const s = emptyStats();
  const sub = emptyStats();
  s.BucketN = 1;
  if (b.inline !== undefined) {
    s.InlineBucketN = 1;
    s.KeyN += b.inline.count;
    s.InlineBucketInuse += leafUsed(b.inline);
    s.Depth = 1;
  } else {
    const visit = (pgid: number, depth: number): void => {
      if (pgid < 2 || pgid >= db.hwm) throw new DatarootError('BOLT_CORRUPT', `page ${pgid} is outside the data pages`, { page: pgid });
      if (seen[pgid] === 1) throw new DatarootError('BOLT_CORRUPT', `page ${pgid} is referenced more than once`, { page: pgid });
      seen[pgid] = 1;
      const p = db.page(pgid);
      if (p.flags === FLAG_LEAF) {
        s.KeyN += p.count;
        s.LeafPageN++;
        s.LeafInuse += leafUsed(p);
        s.LeafOverflowN += p.overflow;
        // Sub-bucket values are copied before recursing: a page source may reuse page memory.
        const children: Uint8Array[] = [];
        const v = p.view;
        for (let i = 0; i < p.count; i++) {
          const e = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
          if (e + ELEMENT_SIZE > p.bytes.length) db.leafEntry(p, i);
          if ((v.getUint32(e, true) & 1) === 0) continue;
          const entry = db.leafEntry(p, i);
          if (isBucketEntry(entry)) children.push(copyBytes(entry.value));
        }
        for (const c of children) addStats(sub, bucketStats(db, db.openBucket(c), seen));
      } else if (p.flags === FLAG_BRANCH) {
        s.BranchPageN++;
        s.BranchInuse += branchUsed(p);
        s.BranchOverflowN += p.overflow;
        const kids: number[] = [];
        for (let i = 0; i < p.count; i++) kids.push(db.branchEntry(p, i).pgid);
        for (const k of kids) visit(k, depth + 1);
      } else {
        throw new DatarootError('BOLT_CORRUPT', `page ${pgid}: invalid page type ${p.flags} inside a bucket tree`, { page: pgid });
      }
      s.Depth = Math.max(s.Depth, depth + 1);
    };
    visit(b.root, 0);
  }
  s.BranchAlloc = (s.BranchPageN + s.BranchOverflowN) * db.pageSize;
  s.LeafAlloc = (s.LeafPageN + s.LeafOverflowN) * db.pageSize;
  s.Depth += sub.Depth;
  addStats(s, sub);
  return s;
}

/** `bbolt stats [prefix]`: the aggregate over top-level buckets whose name starts with prefix. */
export function dbStats(db: BoltFile, prefix: Uint8Array = new Uint8Array()): { buckets: number; stats: BucketStats } {
  const total = emptyStats();
  let buckets = 0;
  const seen = db.newSeen();
  const tops: Uint8Array[] = [];
  db.forEachEntry(db.rootBucket(), db.newSeen(), (e) => {
    if (!isBucketEntry(e)) return;
    if (e.key.length < prefix.length || compareBytes(e.key.subarray(0, prefix.length), prefix) !== 0) return;
    tops.push(copyBytes(e.value));
  });
  for (const t of tops) {
    buckets++;
    addStats(total, bucketStats(db, db.openBucket(t), seen));
  }
  return { buckets, stats: total };
}

/** Go's int(float32(a) * 100.0 / float32(b)), 0 when b is 0. */
export function goPercent(a: number, b: number): number {
  if (b === 0) return 0;
  return Math.trunc(Math.fround(Math.fround(Math.fround(a) * 100) / Math.fround(b)));
}

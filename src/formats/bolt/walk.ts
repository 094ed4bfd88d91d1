import { DatarootError } from '../errors.js';
import { BoltFile, isBucketEntry, type BucketRef, type Page } from './db.js';
import { FLAG_BRANCH, FLAG_LEAF, pageTypeName } from './constants.js';
import { MAX_BUCKET_DEPTH, type BoltVisitor } from './write.js';

/** Page-tree levels a bucket may have (as the reader's other walks). */
const MAX_TREE_DEPTH = 64;

interface PagePos {
  page: Page;
  index: number;
}

interface BucketCursor {
  pages: PagePos[];
}

/**
 * Walks every bucket and key of a file, depth-first in key order, into a visitor (`bucket` before
 * a bucket's contents, `end` after them), without recursion: an explicit stack of bucket cursors,
 * each a stack of page positions. Every page is checked (inside the data pages, leaf or branch,
 * reached once in the whole walk, at most 64 levels deep) and bucket nesting is bounded by
 * MAX_BUCKET_DEPTH (250,000, the writer's memory bound), so a hostile file ends in a coded error.
 *
 * Keys and values handed to the visitor are views of the pages read: the source must not reuse
 * page memory (a FileSource without `recycle`), since a writer keeps them until its page is full.
 */
export function walkBolt(db: BoltFile, v: BoltVisitor): void {
  const seen = db.newSeen();
  const details = (page: number): Record<string, unknown> => (db.file === undefined ? { page } : { file: db.file, page });
  const load = (pgid: number, depth: number): PagePos => {
    if (pgid < 2 || pgid >= db.hwm) {
      throw new DatarootError('BOLT_CORRUPT', `page ${pgid === -1 ? 'id beyond 2^53' : pgid} is not a data page (high-water mark ${db.hwm})`, details(pgid));
    }
    if (seen[pgid] === 1) throw new DatarootError('BOLT_CORRUPT', `page ${pgid} is referenced more than once (cycle or shared subtree)`, details(pgid));
    seen[pgid] = 1;
    if (depth > MAX_TREE_DEPTH) throw new DatarootError('BOLT_CORRUPT', `page ${pgid}: tree deeper than ${MAX_TREE_DEPTH} levels`, details(pgid));
    const page = db.page(pgid);
    if (page.flags !== FLAG_LEAF && page.flags !== FLAG_BRANCH) {
      throw new DatarootError('BOLT_CORRUPT', `page ${pgid}: invalid page type ${pageTypeName(page.flags)} inside a bucket tree`, details(pgid));
    }
    return { page, index: 0 };
  };
  const open = (b: BucketRef): BucketCursor => (b.inline !== undefined ? { pages: [{ page: b.inline, index: 0 }] } : { pages: [load(b.root, 0)] });

  const buckets: BucketCursor[] = [open(db.rootBucket())];
  while (buckets.length > 0) {
    const cur = buckets[buckets.length - 1]!;
    const pos = cur.pages[cur.pages.length - 1];
    if (pos === undefined) {
      buckets.pop();
      if (buckets.length > 0) v.end();
      continue;
    }
    const p = pos.page;
    if (pos.index >= p.count) {
      cur.pages.pop();
      const up = cur.pages[cur.pages.length - 1];
      if (up !== undefined) up.index++;
      continue;
    }
    if (p.flags === FLAG_BRANCH) {
      cur.pages.push(load(db.branchEntry(p, pos.index).pgid, cur.pages.length));
      continue;
    }
    const e = db.leafEntry(p, pos.index++);
    if (!isBucketEntry(e)) {
      v.put(e.key, e.value);
      continue;
    }
    if (buckets.length > MAX_BUCKET_DEPTH) {
      throw new DatarootError('BOLT_TOO_DEEP', `buckets nested deeper than ${MAX_BUCKET_DEPTH} levels`, db.file === undefined ? {} : { file: db.file });
    }
    const child = db.openBucket(e.value);
    v.bucket(e.key, child.sequence);
    buckets.push(open(child));
  }
}

import { DatarootError } from '../errors.js';
import { compareBytes, printableText, toHex } from '../bytes.js';
import { FLAG_BRANCH, FLAG_LEAF, pageTypeName } from './constants.js';
import { hasFreelist } from './meta.js';
import { BoltFile, isBucketEntry, type BucketRef, type Page } from './db.js';

export interface CheckProblem {
  /** Page the problem is about, when there is one. */
  page: number | undefined;
  message: string;
}

const keyText = (k: Uint8Array): string => printableText(k) ?? toHex(k);

/**
 * What bbolt's `tx.Check()` verifies, in its order and with its messages: freelist duplicates
 * ("already freed"), per bucket depth-first the page reachability problems (out of bounds,
 * multiple references, reachable freed, invalid type) followed by key-order problems, and finally
 * "unreachable unfreed" pages. Unlike bbolt, a page reached twice is not walked again, so a cycle
 * ends the walk instead of looping; structural damage that bbolt would panic on becomes a problem
 * with its page id.
 */
export function checkBolt(db: BoltFile): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const add = (page: number | undefined, message: string): void => {
    problems.push({ page, message });
  };
  const hwm = db.hwm;
  const freed = new Uint8Array(hwm + 1);
  const reachable = new Uint8Array(hwm + 1);

  let freeIds: number[];
  try {
    freeIds = db.freePages();
  } catch (e) {
    if (e instanceof DatarootError) {
      const page = typeof e.details.page === 'number' ? e.details.page : undefined;
      add(page, `freelist: ${e.message}`);
      return problems;
    }
    throw e;
  }
  for (const id of freeIds) {
    const slot = id >= 0 && id <= hwm ? id : hwm;
    if (id >= 0 && id <= hwm && freed[slot] === 1) add(id, `page ${id}: already freed`);
    if (id >= 0 && id <= hwm) freed[slot] = 1;
  }

  reachable[0] = 1;
  reachable[1] = 1;
  if (hasFreelist(db.meta)) {
    const fl = Number(db.meta.freelist);
    const h = db.header(fl);
    for (let i = 0; i <= h.overflow && fl + i <= hwm; i++) reachable[fl + i] = 1;
  }

  // A bucket root reached twice (a sub-bucket pointing back into its own tree) is walked once:
  // its pages already report "multiple references", and walking it again would never end.
  const bucketRoots = new Set<number>();
  const checkBucket = (b: BucketRef, label: string): void => {
    if (b.inline !== undefined) return;
    if (bucketRoots.has(b.root)) {
      add(b.root, `page ${b.root}: multiple references`);
      return;
    }
    bucketRoots.add(b.root);
    const stack: number[] = [];
    const visit = (pgid: number): void => {
      if (pgid < 0 || pgid >= db.pagesInFile) {
        add(pgid, `page ${pgid < 0 ? 'beyond 2^53' : pgid}: out of bounds: ${hwm} (stack: [${stack.join(' ')}])`);
        return;
      }
      let p: Page;
      try {
        p = db.page(pgid);
      } catch (e) {
        if (e instanceof DatarootError) {
          add(pgid, `page ${pgid}: ${e.message}`);
          return;
        }
        throw e;
      }
      const id = p.headerId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(p.headerId) : -1;
      if (id !== pgid) add(pgid, `page ${pgid}: header says page ${p.headerId}`);
      if (pgid > hwm) add(pgid, `page ${pgid}: out of bounds: ${hwm}`);
      let again = false;
      for (let i = 0; i <= p.overflow; i++) {
        const x = pgid + i;
        if (x > hwm) break;
        if (reachable[x] === 1) {
          add(x, `page ${x}: multiple references`);
          again = true;
        }
        reachable[x] = 1;
      }
      if (pgid <= hwm && freed[pgid] === 1) add(pgid, `page ${pgid}: reachable freed`);
      else if (p.flags !== FLAG_BRANCH && p.flags !== FLAG_LEAF) {
        add(pgid, `page ${pgid}: invalid type: ${pageTypeName(p.flags)}`);
        return;
      }
      if (again) return; // never walk a page twice: a cycle would not end
      if (p.flags === FLAG_BRANCH) {
        stack.push(pgid);
        for (let i = 0; i < p.count; i++) {
          let child: number;
          try {
            child = db.branchEntry(p, i).pgid;
          } catch (e) {
            if (e instanceof DatarootError) {
              add(pgid, e.message);
              break;
            }
            throw e;
          }
          visit(child);
        }
        stack.pop();
      }
    };
    visit(b.root);
    checkKeyOrder(db, b.root, add);
    // Then every sub-bucket, in key order; entries that cannot be read end this bucket's list.
    const children: [Uint8Array, Uint8Array][] = [];
    try {
      db.forEachEntry(b, db.newSeen(), (e) => {
        if (isBucketEntry(e)) children.push([e.key, e.value]);
      });
    } catch (e) {
      if (e instanceof DatarootError) add(typeof e.details.page === 'number' ? e.details.page : undefined, `bucket ${label}: ${e.message}`);
      else throw e;
    }
    for (const [k, v] of children) {
      let child: BucketRef;
      try {
        child = db.openBucket(v, `bucket ${label}/${keyText(k)}`);
      } catch (e) {
        if (e instanceof DatarootError) {
          add(undefined, e.message);
          continue;
        }
        throw e;
      }
      checkBucket(child, `${label}/${keyText(k)}`);
    }
  };
  checkBucket(db.rootBucket(), '');

  for (let i = 0; i < hwm; i++) {
    if (reachable[i] !== 1 && freed[i] !== 1) add(i, `page ${i}: unreachable unfreed`);
  }
  return problems;
}

/** HEAD bbolt's key-order walk: keys strictly increasing within and across pages of one tree. */
function checkKeyOrder(db: BoltFile, root: number, add: (page: number | undefined, message: string) => void): void {
  const seen = db.newSeen();
  const walk = (pgid: number, min: Uint8Array | undefined, max: Uint8Array | undefined, stack: number[]): Uint8Array | undefined => {
    if (pgid < 2 || pgid >= db.hwm || seen[pgid] === 1) return min;
    seen[pgid] = 1;
    let p: Page;
    try {
      p = db.page(pgid);
    } catch {
      return min;
    }
    const st = [...stack, pgid];
    const verify = (kind: string, i: number, key: Uint8Array, prev: Uint8Array | undefined): void => {
      const s = `[${st.join(' ')}]`;
      if (i === 0 && prev !== undefined && compareBytes(prev, key) > 0) {
        add(pgid, `the first key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be >= the key in the ancestor (${keyText(prev)}). Stack: ${s}`);
      }
      if (i > 0 && prev !== undefined) {
        const c = compareBytes(prev, key);
        if (c > 0) add(pgid, `key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be > (found <) than previous element (hex)${keyText(prev)}. Stack: ${s}`);
        else if (c === 0) add(pgid, `key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be > (found =) than previous element (hex)${keyText(prev)}. Stack: ${s}`);
      }
      if (max !== undefined && compareBytes(key, max) >= 0) {
        add(pgid, `key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be < than key of the next element in ancestor (hex)${keyText(prev ?? new Uint8Array())}. Pages stack: ${s}`);
      }
    };
    try {
      if (p.flags === FLAG_BRANCH) {
        let running = min;
        for (let i = 0; i < p.count; i++) {
          const e = db.branchEntry(p, i);
          verify('branch', i, e.key, running);
          const next = i + 1 < p.count ? db.branchEntry(p, i + 1).key : max;
          running = walk(e.pgid, e.key, next, st) ?? running;
        }
        return running;
      }
      if (p.flags === FLAG_LEAF) {
        let running = min;
        for (let i = 0; i < p.count; i++) {
          const e = db.leafEntry(p, i);
          verify('leaf', i, e.key, running);
          running = e.key;
        }
        return running;
      }
    } catch (e) {
      if (e instanceof DatarootError) add(pgid, e.message);
      else throw e;
      return min;
    }
    add(pgid, `unexpected page type (flags: ${p.flags.toString(16)}) for pgId:${pgid}`);
    return min;
  };
  walk(root, undefined, undefined, []);
}

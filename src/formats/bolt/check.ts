import { DatarootError } from '../errors.js';
import { compareBytes, copyBytes, printableText, toHex } from '../bytes.js';
import { FLAG_BRANCH, FLAG_LEAF, pageTypeName } from './constants.js';
import { hasFreelist } from './meta.js';
import { BoltFile, PageMarks, isBucketEntry, type BucketRef, type Page } from './db.js';

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

  // Buckets are checked depth-first with an explicit stack of frames (each the sub-buckets of one
  // bucket, in key order), and pages with an explicit stack too: a file may nest buckets and
  // branch pages as deep as it likes. Labels are built only for a message.
  interface BucketFrame {
    /** The sub-buckets' keys and values (copies: the page memory may be reused). */
    children: [Uint8Array, Uint8Array][];
    next: number;
  }
  const frames: BucketFrame[] = [];
  const labelKeys: Uint8Array[] = [];
  const label = (extra?: Uint8Array): string => {
    let s = '';
    for (const k of labelKeys) s += `/${keyText(k)}`;
    return extra === undefined ? s : `${s}/${keyText(extra)}`;
  };
  const orderMarks = new PageMarks(db.hwm);
  const entryMarks = new PageMarks(db.hwm);

  // A bucket root reached twice (a sub-bucket pointing back into its own tree) is walked once:
  // its pages already report "multiple references", and walking it again would never end.
  const bucketRoots = new Set<number>();
  /** Checks one bucket's pages and key order; true (with its frame pushed) when it has sub-buckets to check. */
  const checkBucket = (b: BucketRef): boolean => {
    if (b.inline !== undefined) return false;
    if (bucketRoots.has(b.root)) {
      add(b.root, `page ${b.root}: multiple references`);
      return false;
    }
    bucketRoots.add(b.root);
    visitPages(b.root);
    orderMarks.clear();
    checkKeyOrder(db, b.root, add, orderMarks);
    // Then every sub-bucket, in key order; entries that cannot be read end this bucket's list.
    const children: [Uint8Array, Uint8Array][] = [];
    entryMarks.clear();
    try {
      db.forEachEntry(b, entryMarks, (e) => {
        if (isBucketEntry(e)) children.push([copyBytes(e.key), copyBytes(e.value)]);
      });
    } catch (e) {
      if (e instanceof DatarootError) add(typeof e.details.page === 'number' ? e.details.page : undefined, `bucket ${label()}: ${e.message}`);
      else throw e;
    }
    if (children.length === 0) return false;
    frames.push({ children, next: 0 });
    return true;
  };

  /** bbolt's page walk of one bucket tree: reachability, header ids, freed and type problems. */
  interface PageFrame {
    pgid: number;
    kids: number[];
    next: number;
    /** The branch entry that could not be read after the last kid, reported once the kids are walked. */
    error: string | undefined;
  }
  const visitPages = (root: number): void => {
    const pageFrames: PageFrame[] = [];
    /** The branch pages above the page being visited, for the messages. */
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
        // The child ids are read now; one that cannot be read ends the list, and is reported
        // after the children before it are walked.
        const kids: number[] = [];
        let error: string | undefined;
        for (let i = 0; i < p.count; i++) {
          try {
            kids.push(db.branchEntry(p, i).pgid);
          } catch (e) {
            if (e instanceof DatarootError) {
              error = e.message;
              break;
            }
            throw e;
          }
        }
        stack.push(pgid);
        pageFrames.push({ pgid, kids, next: 0, error });
      }
    };
    visit(root);
    while (pageFrames.length > 0) {
      const f = pageFrames[pageFrames.length - 1]!;
      if (f.next < f.kids.length) {
        visit(f.kids[f.next++]!);
        continue;
      }
      if (f.error !== undefined) add(f.pgid, f.error);
      pageFrames.pop();
      stack.pop();
    }
  };

  // labelKeys holds the keys from the root to the bucket whose sub-buckets the top frame lists.
  checkBucket(db.rootBucket());
  while (frames.length > 0) {
    const f = frames[frames.length - 1]!;
    if (f.next >= f.children.length) {
      frames.pop();
      labelKeys.pop();
      continue;
    }
    const [k, v] = f.children[f.next++]!;
    let child: BucketRef;
    try {
      child = db.openBucket(v, () => `bucket ${label(k)}`);
    } catch (e) {
      if (e instanceof DatarootError) {
        add(undefined, e.message);
        continue;
      }
      throw e;
    }
    labelKeys.push(k);
    if (!checkBucket(child)) labelKeys.pop();
  }

  for (let i = 0; i < hwm; i++) {
    if (reachable[i] !== 1 && freed[i] !== 1) add(i, `page ${i}: unreachable unfreed`);
  }
  return problems;
}

/**
 * HEAD bbolt's key-order walk: keys strictly increasing within and across pages of one tree.
 * Branch pages are walked with an explicit stack: `marks` (cleared by the caller) stops a cycle,
 * nothing bounds the depth of a hostile tree.
 */
function checkKeyOrder(db: BoltFile, root: number, add: (page: number | undefined, message: string) => void, marks: PageMarks): void {
  /** The pages from the tree's root to the page being checked, for the messages. */
  const st: number[] = [];
  const verify = (pgid: number, max: Uint8Array | undefined, kind: string, i: number, key: Uint8Array, prev: Uint8Array | undefined): void => {
    // The stack is written out only into a message: joining it for every key costs depth × keys.
    const s = (): string => `[${st.join(' ')}]`;
    if (i === 0 && prev !== undefined && compareBytes(prev, key) > 0) {
      add(pgid, `the first key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be >= the key in the ancestor (${keyText(prev)}). Stack: ${s()}`);
    }
    if (i > 0 && prev !== undefined) {
      const c = compareBytes(prev, key);
      if (c > 0)
        add(pgid, `key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be > (found <) than previous element (hex)${keyText(prev)}. Stack: ${s()}`);
      else if (c === 0)
        add(pgid, `key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be > (found =) than previous element (hex)${keyText(prev)}. Stack: ${s()}`);
    }
    if (max !== undefined && compareBytes(key, max) >= 0) {
      add(
        pgid,
        `key[${i}]=(hex)${keyText(key)} on ${kind} page(${pgid}) needs to be < than key of the next element in ancestor (hex)${keyText(prev ?? new Uint8Array())}. Pages stack: ${s()}`,
      );
    }
  };
  /** A branch page whose children are being walked; `running` is the last key seen below it. */
  interface Frame {
    pgid: number;
    p: Page;
    i: number;
    min: Uint8Array | undefined;
    max: Uint8Array | undefined;
    running: Uint8Array | undefined;
  }
  const frames: Frame[] = [];
  const PENDING = Symbol('pending');
  /** Starts the walk of a page: the last key below it, or PENDING when it is a branch (a frame pushed). */
  const start = (pgid: number, min: Uint8Array | undefined, max: Uint8Array | undefined): Uint8Array | undefined | typeof PENDING => {
    if (pgid < 2 || pgid >= db.hwm || !marks.add(pgid)) return min;
    let p: Page;
    try {
      p = db.page(pgid);
    } catch {
      return min;
    }
    st.push(pgid);
    if (p.flags === FLAG_BRANCH) {
      frames.push({ pgid, p, i: 0, min, max, running: min });
      return PENDING;
    }
    let result = min;
    if (p.flags === FLAG_LEAF) {
      try {
        let running = min;
        for (let i = 0; i < p.count; i++) {
          const e = db.leafEntry(p, i);
          verify(pgid, max, 'leaf', i, e.key, running);
          running = e.key;
        }
        result = running;
      } catch (e) {
        if (e instanceof DatarootError) add(pgid, e.message);
        else throw e;
      }
    } else add(pgid, `unexpected page type (flags: ${p.flags.toString(16)}) for pgId:${pgid}`);
    st.pop();
    return result;
  };
  /** Hands a finished page's result to the branch above it. */
  const deliver = (r: Uint8Array | undefined): void => {
    const parent = frames[frames.length - 1];
    if (parent !== undefined) parent.running = r ?? parent.running;
  };
  const first = start(root, undefined, undefined);
  if (first === PENDING) {
    while (frames.length > 0) {
      const f = frames[frames.length - 1]!;
      if (f.i < f.p.count) {
        let child: number;
        let key: Uint8Array;
        let next: Uint8Array | undefined;
        try {
          const e = db.branchEntry(f.p, f.i);
          verify(f.pgid, f.max, 'branch', f.i, e.key, f.running);
          next = f.i + 1 < f.p.count ? db.branchEntry(f.p, f.i + 1).key : f.max;
          child = e.pgid;
          key = e.key;
        } catch (e) {
          if (!(e instanceof DatarootError)) throw e;
          add(f.pgid, e.message);
          frames.pop();
          st.pop();
          deliver(f.min);
          continue;
        }
        f.i++;
        const r = start(child, key, next);
        if (r !== PENDING) f.running = r ?? f.running;
        continue;
      }
      const result = f.running;
      frames.pop();
      st.pop();
      deliver(result);
    }
  }
}

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
  return new BoltChecker(db).run();
}

/** The sub-buckets of one bucket, in key order (copies: the page memory may be reused), and the next to check. */
interface BucketFrame {
  children: [Uint8Array, Uint8Array][];
  next: number;
}

/** A branch page on the way down a bucket's page tree: its child ids and the next to visit. */
interface PageFrame {
  pgid: number;
  kids: number[];
  next: number;
  /** The branch entry that could not be read after the last kid, reported once the kids are walked. */
  error: string | undefined;
}

/**
 * One run of the check. Buckets are checked depth-first with an explicit stack of frames, and
 * pages with an explicit stack too: a file may nest buckets and branch pages as deep as it likes.
 * Labels are built only for a message.
 */
class BoltChecker {
  private readonly problems: CheckProblem[] = [];
  private readonly hwm: number;
  private readonly freed: Uint8Array;
  private readonly reachable: Uint8Array;
  private readonly frames: BucketFrame[] = [];
  /** The keys from the root to the bucket whose sub-buckets the top frame lists. */
  private readonly labelKeys: Uint8Array[] = [];
  private readonly orderMarks: PageMarks;
  private readonly entryMarks: PageMarks;
  /** A bucket root reached twice (a sub-bucket pointing back into its own tree) is walked once. */
  private readonly bucketRoots = new Set<number>();

  constructor(private readonly db: BoltFile) {
    this.hwm = db.hwm;
    this.freed = new Uint8Array(this.hwm + 1);
    this.reachable = new Uint8Array(this.hwm + 1);
    this.orderMarks = new PageMarks(db.hwm);
    this.entryMarks = new PageMarks(db.hwm);
  }

  run(): CheckProblem[] {
    if (!this.markFreed()) return this.problems;
    this.markMeta();
    this.walkBuckets();
    for (let i = 0; i < this.hwm; i++) if (this.reachable[i] !== 1 && this.freed[i] !== 1) this.add(i, `page ${i}: unreachable unfreed`);
    return this.problems;
  }

  private readonly add = (page: number | undefined, message: string): void => {
    this.problems.push({ page, message });
  };

  private label(extra?: Uint8Array): string {
    let s = '';
    for (const k of this.labelKeys) s += `/${keyText(k)}`;
    return extra === undefined ? s : `${s}/${keyText(extra)}`;
  }

  /** The free page set, its duplicates reported ("already freed"); false when it cannot be read. */
  private markFreed(): boolean {
    let freeIds: number[];
    try {
      freeIds = this.db.freePages();
    } catch (e) {
      if (e instanceof DatarootError) {
        const page = typeof e.details.page === 'number' ? e.details.page : undefined;
        this.add(page, `freelist: ${e.message}`);
        return false;
      }
      throw e;
    }
    const hwm = this.hwm;
    for (const id of freeIds) {
      const slot = id >= 0 && id <= hwm ? id : hwm;
      if (id >= 0 && id <= hwm && this.freed[slot] === 1) this.add(id, `page ${id}: already freed`);
      if (id >= 0 && id <= hwm) this.freed[slot] = 1;
    }
    return true;
  }

  /** The meta pages and the freelist's span are reachable. */
  private markMeta(): void {
    this.reachable[0] = 1;
    this.reachable[1] = 1;
    if (hasFreelist(this.db.meta)) {
      const fl = Number(this.db.meta.freelist);
      const h = this.db.header(fl);
      for (let i = 0; i <= h.overflow && fl + i <= this.hwm; i++) this.reachable[fl + i] = 1;
    }
  }

  /** Every bucket from the root, depth-first in key order. */
  private walkBuckets(): void {
    const db = this.db;
    this.checkBucket(db.rootBucket());
    while (this.frames.length > 0) {
      const f = this.frames[this.frames.length - 1]!;
      if (f.next >= f.children.length) {
        this.frames.pop();
        this.labelKeys.pop();
        continue;
      }
      const [k, v] = f.children[f.next++]!;
      let child: BucketRef;
      try {
        child = db.openBucket(v, () => `bucket ${this.label(k)}`);
      } catch (e) {
        if (e instanceof DatarootError) {
          this.add(undefined, e.message);
          continue;
        }
        throw e;
      }
      this.labelKeys.push(k);
      if (!this.checkBucket(child)) this.labelKeys.pop();
    }
  }

  /** Checks one bucket's pages and key order; true (with its frame pushed) when it has sub-buckets to check. */
  private checkBucket(b: BucketRef): boolean {
    if (b.inline !== undefined) return false;
    if (this.bucketRoots.has(b.root)) {
      // Its pages already report "multiple references"; walking it again would never end.
      this.add(b.root, `page ${b.root}: multiple references`);
      return false;
    }
    this.bucketRoots.add(b.root);
    this.visitPages(b.root);
    this.orderMarks.clear();
    checkKeyOrder(this.db, b.root, this.add, this.orderMarks);
    // Then every sub-bucket, in key order; entries that cannot be read end this bucket's list.
    const children: [Uint8Array, Uint8Array][] = [];
    this.entryMarks.clear();
    try {
      this.db.forEachEntry(b, this.entryMarks, (e) => {
        if (isBucketEntry(e)) children.push([copyBytes(e.key), copyBytes(e.value)]);
      });
    } catch (e) {
      if (e instanceof DatarootError) this.add(typeof e.details.page === 'number' ? e.details.page : undefined, `bucket ${this.label()}: ${e.message}`);
      else throw e;
    }
    if (children.length === 0) return false;
    this.frames.push({ children, next: 0 });
    return true;
  }

  /** bbolt's page walk of one bucket tree: reachability, header ids, freed and type problems. */
  private visitPages(root: number): void {
    const pageFrames: PageFrame[] = [];
    /** The branch pages above the page being visited, for the messages. */
    const stack: number[] = [];
    this.visit(root, stack, pageFrames);
    while (pageFrames.length > 0) {
      const f = pageFrames[pageFrames.length - 1]!;
      if (f.next < f.kids.length) {
        this.visit(f.kids[f.next++]!, stack, pageFrames);
        continue;
      }
      if (f.error !== undefined) this.add(f.pgid, f.error);
      pageFrames.pop();
      stack.pop();
    }
  }

  /** One page: its problems; a branch page's children pushed to be visited. */
  private visit(pgid: number, stack: number[], pageFrames: PageFrame[]): void {
    const db = this.db;
    const hwm = this.hwm;
    if (pgid < 0 || pgid >= db.pagesInFile) {
      this.add(pgid, `page ${pgid < 0 ? 'beyond 2^53' : pgid}: out of bounds: ${hwm} (stack: [${stack.join(' ')}])`);
      return;
    }
    let p: Page;
    try {
      p = db.page(pgid);
    } catch (e) {
      if (e instanceof DatarootError) {
        this.add(pgid, `page ${pgid}: ${e.message}`);
        return;
      }
      throw e;
    }
    const id = p.headerId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(p.headerId) : -1;
    if (id !== pgid) this.add(pgid, `page ${pgid}: header says page ${p.headerId}`);
    if (pgid > hwm) this.add(pgid, `page ${pgid}: out of bounds: ${hwm}`);
    let again = false;
    for (let i = 0; i <= p.overflow; i++) {
      const x = pgid + i;
      if (x > hwm) break;
      if (this.reachable[x] === 1) {
        this.add(x, `page ${x}: multiple references`);
        again = true;
      }
      this.reachable[x] = 1;
    }
    if (pgid <= hwm && this.freed[pgid] === 1) this.add(pgid, `page ${pgid}: reachable freed`);
    else if (p.flags !== FLAG_BRANCH && p.flags !== FLAG_LEAF) {
      this.add(pgid, `page ${pgid}: invalid type: ${pageTypeName(p.flags)}`);
      return;
    }
    if (again) return; // never walk a page twice: a cycle would not end
    if (p.flags !== FLAG_BRANCH) return;
    // The child ids are read now; one that cannot be read ends the list, and is reported after
    // the children before it are walked.
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

import { DatarootError } from '../errors.js';
import { bytesEqual, compareBytes, toHex } from '../bytes.js';
import type { BoltVisitor } from './write.js';
import type { ErrorCode } from '../errorcodes.js';

/**
 * Changes to a key tree, applied while a depth-first walk of the old tree streams into a writer
 * (so a file is edited by rewriting it, in memory bounded by the writer's, however large it is).
 *
 * - `put`: sets a value (created, or replaced when the key holds a value);
 * - `bucket`: creates an empty bucket (its contents may follow as further edits under its path);
 * - `delete`: removes a value; `deleteBucket`: removes a bucket and everything in it;
 * - `sequence`: sets the sequence of an existing bucket.
 *
 * Each edit names the bucket path it applies in; that bucket must exist in the old tree or be
 * created by a `bucket` edit of the same list. Every edit must apply: a missing key, a value
 * where a bucket is expected and the reverse are coded errors (as bbolt's ErrBucketNotFound,
 * ErrIncompatibleValue, ErrBucketExists), and nothing is written.
 */
export type BoltEdit =
  | { op: 'put'; path: Uint8Array[]; key: Uint8Array; value: Uint8Array }
  | { op: 'bucket'; path: Uint8Array[]; key: Uint8Array; sequence?: bigint }
  | { op: 'delete'; path: Uint8Array[]; key: Uint8Array }
  | { op: 'deleteBucket'; path: Uint8Array[]; key: Uint8Array }
  | { op: 'sequence'; path: Uint8Array[]; key: Uint8Array; sequence: bigint };

interface Pending {
  edit: BoltEdit;
  /** path ++ [key] */
  tuple: Uint8Array[];
}

/** Tuple order: component by component, a prefix first (the order of a depth-first walk). */
export function compareTuples(a: readonly Uint8Array[], b: readonly Uint8Array[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareBytes(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function showTuple(t: readonly Uint8Array[]): string {
  return t.map((k) => toHex(k)).join('/');
}

function err(code: ErrorCode, message: string, t: readonly Uint8Array[]): DatarootError {
  return new DatarootError(code, `${message}: ${showTuple(t)} (hex)`, { key: showTuple(t) });
}

/** Sorts and checks a list of edits: no two on one key, none under a key another edit makes a value or removes. */
function prepare(edits: readonly BoltEdit[]): Pending[] {
  const list = edits.map((edit) => ({ edit, tuple: [...edit.path, edit.key] }));
  list.sort((a, b) => compareTuples(a.tuple, b.tuple));
  // Sorted, the tuples inside a key follow it directly: the last value or removal before a tuple
  // is the only one it can be inside (a check linear in the path, however deep).
  let leaf: Uint8Array[] | undefined;
  for (let i = 0; i < list.length; i++) {
    const { edit, tuple } = list[i]!;
    if (edit.key.length === 0) throw err('BOLT_EDIT_EMPTY_KEY', 'an edit names an empty key', tuple);
    if ((edit.op === 'put' || edit.op === 'delete') && edit.path.length === 0) {
      throw err('BOLT_EDIT_TOP_LEVEL_VALUE', 'bbolt keeps only buckets at the top level; a value needs a bucket path', tuple);
    }
    if (i > 0 && compareTuples(list[i - 1]!.tuple, tuple) === 0) throw err('BOLT_EDIT_CONFLICT', 'two edits of the same key', tuple);
    if (leaf !== undefined && leaf.length < tuple.length && leaf.every((k, j) => bytesEqual(k, tuple[j]!))) {
      throw err('BOLT_EDIT_CONFLICT', 'an edit inside a key that another edit sets as a value or removes', tuple);
    }
    if (edit.op !== 'bucket' && edit.op !== 'sequence') leaf = tuple;
  }
  return list;
}

export class EditVisitor implements BoltVisitor {
  private readonly edits: Pending[];
  private i = 0;
  /** The open buckets of the old tree, then those created by edits (`virtual` of them). */
  private readonly stack: Uint8Array[] = [];
  private virtual = 0;
  /** Depth inside a bucket being deleted. */
  private suppress = 0;
  /** Edits applied, by kind. */
  readonly applied = { put: 0, replaced: 0, bucket: 0, delete: 0, deleteBucket: 0, sequence: 0 };

  constructor(
    private readonly out: BoltVisitor,
    edits: readonly BoltEdit[],
  ) {
    this.edits = prepare(edits);
  }

  private get next(): Pending | undefined {
    return this.edits[this.i];
  }

  /**
   * How many leading names the open buckets (created ones included) share with the next edit's
   * tuple; -1 when not known. Kept up to date as buckets open and close, and recomputed once per
   * edit, so a walk of buckets nested N deep costs O(N) per edit, not O(N) per key.
   */
  private shared = -1;

  private common(): number {
    if (this.shared < 0) {
      const s = this.stack;
      const t = this.next?.tuple ?? [];
      const n = Math.min(s.length, t.length);
      let j = 0;
      while (j < n && bytesEqual(s[j]!, t[j]!)) j++;
      this.shared = j;
    }
    return this.shared;
  }

  private advance(): void {
    this.i++;
    this.shared = -1;
  }

  private push(key: Uint8Array): void {
    const s = this.stack;
    if (this.shared >= 0 && this.shared === s.length) {
      const t = this.next?.tuple;
      if (t !== undefined && t.length > s.length && bytesEqual(t[s.length]!, key)) this.shared++;
    }
    s.push(key);
  }

  private pop(): void {
    this.stack.pop();
    if (this.shared > this.stack.length) this.shared = this.stack.length;
  }

  /** Whether the tuple (the next edit's) lies inside the current bucket of the old tree (created buckets aside). */
  private inside(t: readonly Uint8Array[]): boolean {
    const n = this.stack.length - this.virtual;
    return t.length > n && this.common() >= n;
  }

  private is(t: readonly Uint8Array[], key: Uint8Array): boolean {
    return t.length === this.stack.length + 1 && this.inside(t) && bytesEqual(t[this.stack.length]!, key);
  }

  /** Whether the tuple goes below `key` of the current bucket. */
  private below(t: readonly Uint8Array[], key: Uint8Array): boolean {
    return t.length > this.stack.length + 1 && this.inside(t) && bytesEqual(t[this.stack.length]!, key);
  }

  /**
   * Applies the edits that come before `key` in the current bucket (before its end when `key` is
   * undefined): new keys and buckets; an edit of an existing key is left for the caller.
   */
  private flush(key: Uint8Array | undefined): void {
    const base = this.stack.length; // no created bucket is open between flushes
    for (let p = this.next; p !== undefined; p = this.next) {
      const t = p.tuple;
      if (!this.inside(t)) break;
      if (key !== undefined && compareBytes(t[base]!, key) >= 0) break;
      // Close created buckets the edit is not in.
      while (this.virtual > 0 && !this.onPath(p.edit.path)) {
        this.out.end();
        this.pop();
        this.virtual--;
      }
      if (!this.onPath(p.edit.path) || p.edit.path.length !== this.stack.length) {
        throw err('BOLT_BUCKET_NOT_FOUND', 'bucket not found', p.edit.path.slice(0, this.stack.length + 1));
      }
      const e = p.edit;
      switch (e.op) {
        case 'put':
          this.out.put(e.key, e.value);
          this.applied.put++;
          break;
        case 'bucket':
          this.out.bucket(e.key, e.sequence ?? 0n);
          this.push(e.key);
          this.virtual++;
          this.applied.bucket++;
          break;
        case 'delete':
          throw err('BOLT_KEY_NOT_FOUND', 'key not found', t);
        case 'deleteBucket':
        case 'sequence':
          throw err('BOLT_BUCKET_NOT_FOUND', 'bucket not found', t);
        default:
          throw new Error(`unknown edit ${(e as { op: string }).op}`);
      }
      this.advance();
    }
    while (this.virtual > 0) {
      this.out.end();
      this.pop();
      this.virtual--;
    }
  }

  /** Whether the path (the next edit's) goes through every open bucket. */
  private onPath(path: readonly Uint8Array[]): boolean {
    return path.length >= this.stack.length && this.common() >= this.stack.length;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    if (this.suppress > 0) return;
    if (this.next === undefined) return this.out.put(key, value);
    this.flush(key);
    const p = this.next;
    if (p !== undefined && this.is(p.tuple, key)) {
      const e = p.edit;
      if (e.op === 'put') {
        this.out.put(key, e.value);
        this.applied.replaced++;
      } else if (e.op === 'delete') this.applied.delete++;
      else if (e.op === 'bucket') throw err('BOLT_KEY_EXISTS', 'cannot create a bucket: the key holds a value', p.tuple);
      else throw err('BOLT_NOT_A_BUCKET', 'the key holds a value, not a bucket', p.tuple);
      this.advance();
    } else this.out.put(key, value);
    const q = this.next;
    if (q !== undefined && this.below(q.tuple, key)) throw err('BOLT_NOT_A_BUCKET', 'a bucket path goes through a key that holds a value', q.edit.path);
  }

  bucket(key: Uint8Array, sequence: bigint): void {
    if (this.suppress > 0) {
      this.suppress++;
      return;
    }
    if (this.next !== undefined) {
      this.flush(key);
      const p = this.next;
      if (p !== undefined && this.is(p.tuple, key)) {
        const e = p.edit;
        this.advance();
        if (e.op === 'deleteBucket') {
          this.applied.deleteBucket++;
          this.suppress = 1;
          return;
        }
        if (e.op === 'sequence') {
          sequence = e.sequence;
          this.applied.sequence++;
        } else if (e.op === 'bucket') throw err('BOLT_BUCKET_EXISTS', 'the bucket already exists', p.tuple);
        else throw err('BOLT_KEY_IS_BUCKET', 'the key is a bucket, not a value', p.tuple);
      }
    }
    this.out.bucket(key, sequence);
    this.push(key);
  }

  end(): void {
    if (this.suppress > 0) {
      this.suppress--;
      return;
    }
    if (this.next !== undefined) this.flush(undefined);
    this.out.end();
    this.pop();
  }

  /** Applies what is left at the top level; call after the walk, before the writer's finish(). */
  finish(): void {
    if (this.stack.length !== 0) throw new DatarootError('BOLT_WRITE_STATE', 'finish() inside a bucket');
    this.flush(undefined);
    const p = this.next;
    if (p !== undefined) throw err('BOLT_BUCKET_NOT_FOUND', 'bucket not found', p.edit.path);
  }
}

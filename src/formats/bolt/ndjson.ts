import { DatarootError } from '../errors.js';
import { concatBytes, toHex } from '../bytes.js';
import type { BoltVisitor } from './write.js';

/**
 * Reading `bolt dump --format ndjson` back: one JSON object a line,
 *   {"path":[hex…],"key":hex,"value":hex}
 *   {"path":[hex…],"key":hex,"bucket":true,"sequence":N}   (N a number, or a decimal string above 2^53; default 0)
 * in any order. Every bucket a key lives in must have its own bucket line; a key may appear once
 * per bucket. The records are kept in a byte arena (not one object per record), so a dump of
 * millions of keys costs about its decoded size plus ~40 bytes a record, then they are sorted per
 * bucket and walked depth-first into a writer.
 */

const CHUNK = 16 << 20;
/** Longest line read: a JavaScript string cannot be much longer (so values up to ~256 MiB). */
export const MAX_LINE_BYTES = (1 << 29) - 64;
const U64_MAX = (1n << 64n) - 1n;
const NO_VALUE = 0xffffffff;
const EMPTY = new Uint8Array(0);
const ALLOWED = new Set(['path', 'key', 'value', 'bucket', 'sequence']);

function bad(line: number, message: string): DatarootError {
  return new DatarootError('BOLT_LOAD_BAD_LINE', `line ${line}: ${message}`, { line });
}

const HEXVAL = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEXVAL[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEXVAL[97 + i] = 10 + i;
  HEXVAL[65 + i] = 10 + i;
}

class GrowF64 {
  a = new Float64Array(1024);
  n = 0;
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
}

class GrowU32 {
  a = new Uint32Array(1024);
  n = 0;
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Uint32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
}

interface Group {
  /** Lowercase hex path, components joined by '/'; '' for the root bucket. */
  path: string;
  ids: number[];
  /** Line of the first record in this bucket (for a missing-bucket error). */
  line: number;
}

export class DumpRecords {
  private chunks: Uint8Array[] = [];
  private used = CHUNK;
  private readonly keyOff = new GrowF64();
  private readonly keyLen = new GrowU32();
  private readonly valOff = new GrowF64();
  private readonly valLen = new GrowU32();
  private readonly lines = new GrowU32();
  private readonly sequences = new Map<number, bigint>();
  private readonly groups = new Map<string, Group>();
  /** Paths of the buckets that have a bucket line. */
  private readonly declared = new Set<string>();
  private prepared = false;

  get size(): number {
    return this.keyLen.n;
  }

  /** Copies hex into the arena; returns its offset (chunk * CHUNK + position). */
  private hex(s: string, line: number, what: string): { off: number; len: number } {
    if (s.length % 2 !== 0) throw bad(line, `${what} is not hex (odd length)`);
    const len = s.length / 2;
    if (len === 0) return { off: 0, len: 0 };
    let chunk: Uint8Array;
    let pos: number;
    if (len > CHUNK) {
      chunk = new Uint8Array(len);
      this.chunks.push(chunk);
      this.used = CHUNK;
      pos = 0;
    } else {
      if (this.used + len > CHUNK) {
        this.chunks.push(new Uint8Array(CHUNK));
        this.used = 0;
      }
      chunk = this.chunks[this.chunks.length - 1]!;
      pos = this.used;
      this.used += len;
    }
    for (let i = 0; i < len; i++) {
      const a = s.charCodeAt(2 * i);
      const b = s.charCodeAt(2 * i + 1);
      const x = a < 128 ? HEXVAL[a]! : -1;
      const y = b < 128 ? HEXVAL[b]! : -1;
      if (x < 0 || y < 0) throw bad(line, `${what} is not hex`);
      chunk[pos + i] = (x << 4) | y;
    }
    return { off: (this.chunks.length - 1) * CHUNK + pos, len };
  }

  private bytes(off: number, len: number): Uint8Array {
    if (len === 0) return EMPTY;
    const c = Math.floor(off / CHUNK);
    const p = off - c * CHUNK;
    return this.chunks[c]!.subarray(p, p + len);
  }

  /** Parses one line (1-based number for messages); blank lines are skipped. */
  addLine(text: string, line: number): void {
    if (text.trim() === '') return;
    if (this.prepared) throw new DatarootError('BOLT_WRITE_STATE', 'records added after prepare()');
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch (e) {
      throw bad(line, `not JSON (${(e as Error).message})`);
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad(line, 'not a JSON object');
    const r = o as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!ALLOWED.has(k)) throw bad(line, `unknown field "${k}" (expected path, key, value, bucket, sequence)`);
    const path = r['path'];
    if (!Array.isArray(path)) throw bad(line, '"path" must be an array of hex strings');
    const parts: string[] = [];
    for (const p of path) {
      if (typeof p !== 'string' || p.length === 0 || p.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(p)) {
        throw bad(line, '"path" must hold non-empty hex strings');
      }
      parts.push(p.toLowerCase());
    }
    const keyHex = r['key'];
    if (typeof keyHex !== 'string' || keyHex.length === 0) throw bad(line, '"key" must be a non-empty hex string');
    const isBucket = r['bucket'];
    if (isBucket !== undefined && isBucket !== true) throw bad(line, '"bucket" must be true when present');
    let seq = 0n;
    if (isBucket === true) {
      if (r['value'] !== undefined) throw bad(line, 'a bucket line has no "value"');
      seq = parseSequence(r['sequence'], line);
    } else {
      if (r['sequence'] !== undefined) throw bad(line, '"sequence" belongs to bucket lines');
      if (typeof r['value'] !== 'string') throw bad(line, 'a key line needs "value" (hex; "" for an empty value)');
      if (parts.length === 0) {
        throw new DatarootError('BOLT_LOAD_TOP_LEVEL_VALUE', `line ${line}: a value at the top level; bbolt keeps only buckets there`, { line });
      }
    }
    const key = this.hex(keyHex, line, '"key"');
    const id = this.keyLen.n;
    this.keyOff.push(key.off);
    this.keyLen.push(key.len);
    if (isBucket === true) {
      this.valOff.push(0);
      this.valLen.push(NO_VALUE);
      if (seq !== 0n) this.sequences.set(id, seq);
      const self = [...parts, keyHex.toLowerCase()].join('/');
      this.declared.add(self);
    } else {
      const v = this.hex(r['value'] as string, line, '"value"');
      this.valOff.push(v.off);
      this.valLen.push(v.len);
    }
    this.lines.push(line);
    const gpath = parts.join('/');
    let g = this.groups.get(gpath);
    if (g === undefined) this.groups.set(gpath, (g = { path: gpath, ids: [], line }));
    g.ids.push(id);
  }

  private compare(a: number, b: number): number {
    const x = this.bytes(this.keyOff.a[a]!, this.keyLen.a[a]!);
    const y = this.bytes(this.keyOff.a[b]!, this.keyLen.a[b]!);
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) {
      const d = x[i]! - y[i]!;
      if (d !== 0) return d;
    }
    return x.length - y.length;
  }

  /** Sorts every bucket's keys; refuses duplicates and keys of buckets that have no bucket line. */
  prepare(): void {
    if (this.prepared) return;
    for (const g of this.groups.values()) {
      if (g.path !== '' && !this.declared.has(g.path)) {
        throw new DatarootError(
          'BOLT_LOAD_MISSING_BUCKET',
          `line ${g.line}: bucket ${g.path} (hex path) has no bucket line {"path":[…],"key":…,"bucket":true}`,
          { line: g.line },
        );
      }
      g.ids.sort((a, b) => this.compare(a, b));
      for (let i = 1; i < g.ids.length; i++) {
        const a = g.ids[i - 1]!;
        const b = g.ids[i]!;
        if (this.compare(a, b) === 0) {
          const la = this.lines.a[a]!;
          const lb = this.lines.a[b]!;
          throw new DatarootError(
            'BOLT_LOAD_DUPLICATE_KEY',
            `lines ${Math.min(la, lb)} and ${Math.max(la, lb)}: key ${toHex(this.bytes(this.keyOff.a[a]!, this.keyLen.a[a]!))} appears twice in bucket ${g.path === '' ? '(top level)' : g.path}`,
            { line: Math.max(la, lb) },
          );
        }
      }
    }
    this.prepared = true;
  }

  /** Walks the records depth-first in key order into a visitor (after prepare()). */
  visit(v: BoltVisitor): void {
    this.prepare();
    const empty: number[] = [];
    const root = this.groups.get('')?.ids ?? empty;
    const stack: { path: string; ids: number[]; i: number }[] = [{ path: '', ids: root, i: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.i >= top.ids.length) {
        stack.pop();
        if (stack.length > 0) v.end();
        continue;
      }
      const id = top.ids[top.i++]!;
      const key = this.bytes(this.keyOff.a[id]!, this.keyLen.a[id]!);
      const vl = this.valLen.a[id]!;
      if (vl !== NO_VALUE) {
        v.put(key, this.bytes(this.valOff.a[id]!, vl));
        continue;
      }
      v.bucket(key, this.sequences.get(id) ?? 0n);
      const path = top.path === '' ? toHex(key) : `${top.path}/${toHex(key)}`;
      stack.push({ path, ids: this.groups.get(path)?.ids ?? empty, i: 0 });
    }
  }
}

function parseSequence(s: unknown, line: number): bigint {
  if (s === undefined) return 0n;
  let n: bigint;
  if (typeof s === 'number') {
    if (!Number.isSafeInteger(s) || s < 0) throw bad(line, '"sequence" must be a non-negative integer (a decimal string above 2^53)');
    n = BigInt(s);
  } else if (typeof s === 'string' && /^[0-9]{1,20}$/.test(s)) n = BigInt(s);
  else throw bad(line, '"sequence" must be a non-negative integer (a decimal string above 2^53)');
  if (n > U64_MAX) throw bad(line, '"sequence" is above 2^64-1');
  return n;
}

/**
 * Splits a byte stream into lines and feeds them to a record set. Lines longer than
 * MAX_LINE_BYTES and text that is not UTF-8 are refused with the line number.
 */
export async function readDumpRecords(input: AsyncIterable<Uint8Array>, into = new DumpRecords()): Promise<DumpRecords> {
  const dec = new TextDecoder('utf-8', { fatal: true });
  let parts: Uint8Array[] = [];
  let partLen = 0;
  let line = 0;
  const take = (bytes: Uint8Array): void => {
    line++;
    let text: string;
    try {
      text = dec.decode(bytes);
    } catch {
      throw bad(line, 'not UTF-8 text');
    }
    into.addLine(text.endsWith('\r') ? text.slice(0, -1) : text, line);
  };
  for await (const chunk of input) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      const end = nl < 0 ? chunk.length : nl;
      if (partLen + (end - start) > MAX_LINE_BYTES) {
        throw new DatarootError('BOLT_LOAD_LINE_TOO_LONG', `line ${line + 1} is longer than ${MAX_LINE_BYTES} bytes`, { line: line + 1 });
      }
      if (nl < 0) {
        if (end > start) {
          parts.push(chunk.slice(start, end));
          partLen += end - start;
        }
        break;
      }
      if (partLen === 0) take(chunk.subarray(start, end));
      else {
        parts.push(chunk.subarray(start, end));
        take(concatBytes(parts, partLen + (end - start)));
        parts = [];
        partLen = 0;
      }
      start = nl + 1;
    }
  }
  if (partLen > 0) take(concatBytes(parts, partLen));
  return into;
}

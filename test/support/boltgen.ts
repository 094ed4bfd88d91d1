import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { BoltTreeBucket, BoltTreeEntry } from '../../src/formats/bolt/write.js';
import { compareBytes, toHex } from '../../src/formats/bytes.js';
import { buildOracleAsync } from './gobolt.js';

/**
 * Random key trees for the writer's fuzzer and its differential tests, the NDJSON dump they must
 * read back as, and the batch runner of the Go oracle's `verify`.
 */

export type Rnd = () => number;

/** Page sizes bbolt is run with here: the x86-64 default most often, every power of two from 512 to 64 KiB. */
export const FUZZ_PAGE_SIZES = [512, 1024, 1024, 2048, 2048, 4096, 4096, 4096, 4096, 4096, 4096, 8192, 8192, 16384, 32768, 65536];

const int = (rnd: Rnd, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

function bytes(rnd: Rnd, n: number): Uint8Array {
  const b = new Uint8Array(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const x = (rnd() * 2 ** 32) >>> 0;
    b[i] = x;
    b[i + 1] = x >>> 8;
    b[i + 2] = x >>> 16;
    b[i + 3] = x >>> 24;
  }
  for (; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function text(rnd: Rnd, n: number): Uint8Array {
  const al = 'abcdefghijklmnopqrstuvwxyz0123456789-_./:';
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = al.charCodeAt(Math.floor(rnd() * al.length));
  return b;
}

function key(rnd: Rnd): Uint8Array {
  const r = rnd();
  const n = r < 0.6 ? int(rnd, 1, 16) : r < 0.95 ? int(rnd, 17, 120) : r < 0.995 ? int(rnd, 121, 2000) : int(rnd, 2001, 32768);
  return rnd() < 0.5 ? text(rnd, n) : bytes(rnd, n);
}

function value(rnd: Rnd, ps: number, budget: Budget): Uint8Array {
  const r = rnd();
  if (r < 0.15) return new Uint8Array(0);
  if (r < 0.6) return bytes(rnd, int(rnd, 1, 40));
  if (r < 0.85) return text(rnd, int(rnd, 41, 400));
  if (r < 0.93) return bytes(rnd, int(rnd, Math.floor(ps / 4) - 40, Math.floor(ps / 4) + 40));
  // values of 100 KB to 1.1 MB only in the trees given a large budget (1 in 100)
  if (r < 0.999 || budget.bytes < 1_100_000) return bytes(rnd, int(rnd, ps - 64, ps <= 4096 ? 3 * ps : ps + 8192));
  return bytes(rnd, int(rnd, 100_000, 1_100_000));
}

function sequence(rnd: Rnd): bigint {
  const r = rnd();
  if (r < 0.7) return 0n;
  if (r < 0.85) return BigInt(int(rnd, 1, 1000));
  return pick(rnd, [2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 7n, 2n ** 64n - 1n, 2n ** 63n]);
}

/** A bucket whose inline size (16 + Σ(16 + key + value)) is exactly `size` (size >= 16). */
function sizedBucket(rnd: Rnd, size: number): BoltTreeBucket {
  const entries: BoltTreeEntry[] = [];
  let left = size - 16;
  let i = 0;
  while (left > 0) {
    const k = new Uint8Array([0x61 + (i % 26), ...text(rnd, 1 + (i >> 4))]);
    const room = left - 16 - k.length;
    if (room < 0) {
      // not enough for another element: lengthen the last value
      const last = entries[entries.length - 1] as { key: Uint8Array; value: Uint8Array };
      last.value = new Uint8Array(last.value.length + left);
      break;
    }
    const vlen = room <= 200 ? room : int(rnd, 0, 200);
    entries.push({ key: k, value: bytes(rnd, vlen) });
    left -= 16 + k.length + vlen;
    i++;
  }
  return { sequence: sequence(rnd), entries };
}

interface Budget {
  bytes: number;
}

function bucket(rnd: Rnd, ps: number, depth: number, maxDepth: number, budget: Budget): BoltTreeBucket {
  const r = rnd();
  const n = r < 0.15 ? 0 : r < 0.6 ? int(rnd, 1, 8) : r < 0.93 ? int(rnd, 9, 60) : int(rnd, 61, 600);
  const subP = depth >= maxDepth ? 0 : depth < 2 ? 0.15 : 0.06;
  const seen = new Set<string>();
  const entries: BoltTreeEntry[] = [];
  for (let i = 0; i < n && budget.bytes > 0; i++) {
    const k = key(rnd);
    const h = toHex(k);
    if (seen.has(h)) continue;
    seen.add(h);
    const s = rnd();
    if (s < subP) entries.push({ key: k, bucket: bucket(rnd, ps, depth + 1, maxDepth, budget) });
    else if (s < subP + 0.01) entries.push({ key: k, bucket: sizedBucket(rnd, Math.floor(ps / 4) + int(rnd, -1, 1)) });
    else {
      const v = value(rnd, ps, budget);
      budget.bytes -= 16 + k.length + v.length;
      entries.push({ key: k, value: v });
    }
  }
  return { sequence: sequence(rnd), entries };
}

/** A random tree: top-level buckets only, nested buckets, binary and text keys, empty to overflowing values. */
export function randomTree(rnd: Rnd, ps: number): BoltTreeBucket {
  const b = rnd();
  const budget = { bytes: b < 0.01 ? 4 << 20 : b < 0.08 ? 150_000 : 20_000 };
  const maxDepth = rnd() < 0.05 ? int(rnd, 8, 40) : int(rnd, 1, 4);
  const top = int(rnd, 0, 6);
  const seen = new Set<string>();
  const entries: BoltTreeEntry[] = [];
  for (let i = 0; i < top; i++) {
    const k = key(rnd);
    const h = toHex(k);
    if (seen.has(h)) continue;
    seen.add(h);
    entries.push({ key: k, bucket: bucket(rnd, ps, 1, maxDepth, budget) });
  }
  if (maxDepth > 6 && entries.length > 0) {
    // a chain of buckets nested maxDepth deep
    let b = (entries[0] as { bucket: BoltTreeBucket }).bucket;
    for (let d = 0; d < maxDepth; d++) {
      const next: BoltTreeBucket = { entries: [{ key: text(rnd, 3), value: bytes(rnd, 5) }] };
      b.entries = b.entries.filter((e) => compareBytes(e.key, new Uint8Array([0xff, d])) !== 0);
      b.entries.push({ key: new Uint8Array([0xff, d]), bucket: next });
      b = next;
    }
  }
  return { entries };
}

function seqJson(s: bigint): string {
  return s <= 2n ** 53n - 1n ? s.toString() : `"${s}"`;
}

/** The NDJSON dump (`bolt dump --format ndjson`, the oracle's dump) a tree must read back as. */
export function dumpOf(root: BoltTreeBucket): string {
  let out = '';
  const stack: { entries: BoltTreeEntry[]; i: number; path: string }[] = [{ entries: sortedEntries(root), i: 0, path: '' }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.entries.length) {
      stack.pop();
      continue;
    }
    const e = top.entries[top.i++]!;
    const kh = hexOf(e.key);
    if ('bucket' in e) {
      out += `{"path":[${top.path}],"key":"${kh}","bucket":true,"sequence":${seqJson(e.bucket.sequence ?? 0n)}}\n`;
      stack.push({ entries: sortedEntries(e.bucket), i: 0, path: top.path === '' ? `"${kh}"` : `${top.path},"${kh}"` });
    } else out += `{"path":[${top.path}],"key":"${kh}","value":"${hexOf(e.value)}"}\n`;
  }
  return out;
}

/** sha256 (hex) and length of dumpOf(root), computed record by record (no large string). */
export function dumpHash(root: BoltTreeBucket): string {
  const h = createHash('sha256');
  let len = 0;
  const put = (s: string): void => {
    h.update(s, 'latin1');
    len += s.length;
  };
  const stack: { entries: BoltTreeEntry[]; i: number; path: string }[] = [{ entries: sortedEntries(root), i: 0, path: '' }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.entries.length) {
      stack.pop();
      continue;
    }
    const e = top.entries[top.i++]!;
    const kh = hexOf(e.key);
    if ('bucket' in e) {
      put(`{"path":[${top.path}],"key":"${kh}","bucket":true,"sequence":${seqJson(e.bucket.sequence ?? 0n)}}\n`);
      stack.push({ entries: sortedEntries(e.bucket), i: 0, path: top.path === '' ? `"${kh}"` : `${top.path},"${kh}"` });
    } else {
      put(`{"path":[${top.path}],"key":"${kh}","value":"`);
      put(hexOf(e.value));
      put('"}\n');
    }
  }
  return `${h.digest('hex')} ${len}`;
}

export function sortedEntries(b: BoltTreeBucket): BoltTreeEntry[] {
  return [...b.entries].sort((x, y) => compareBytes(x.key, y.key));
}

export interface Verified {
  file: string;
  check: string;
  dump: string;
  /** With `hash`: sha256 (hex) and length of the dump instead of the dump. */
  dumpHash: string | undefined;
  /** With `touch`: tx.Check() after Go wrote to a copy of the file ("OK" when sound). */
  touch: string | undefined;
  /** 'equal', 'differs' (with both shapes in `shapes`), or undefined without -shape. */
  shape: string | undefined;
  shapes: string;
  error: string | undefined;
}

/**
 * Runs the oracle's `verify` on files (asynchronously: the event loop keeps turning). `shape`
 * compares each file's pages with bolt.Compact's; `hash` returns the dump's sha256 and length
 * (`${hex} ${bytes}`) instead of the dump.
 */
export async function verifyBatch(files: string[], o: { shape?: boolean; hash?: boolean; touch?: boolean } = {}): Promise<Verified[]> {
  const bin = await buildOracleAsync();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['verify', ...(o.shape ? ['-shape'] : []), ...(o.hash ? ['-hash'] : []), ...(o.touch ? ['-touch'] : []), ...files], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`boltoracle verify exited ${code}: ${Buffer.concat(err).toString()}`));
      resolve(parseVerify(Buffer.concat(out).toString('utf8')));
    });
  });
}

function parseVerify(text: string): Verified[] {
  const res: Verified[] = [];
  let cur: Verified | undefined;
  let mode: 'check' | 'dump' | 'shapes' | 'touch' = 'check';
  for (const line of text.split('\n')) {
    if (line.startsWith('#file ')) {
      cur = { file: line.slice(6), check: '', dump: '', dumpHash: undefined, touch: undefined, shape: undefined, shapes: '', error: undefined };
      mode = 'check';
      continue;
    }
    if (cur === undefined) continue;
    if (line === '#end') {
      res.push(cur);
      cur = undefined;
      continue;
    }
    if (line.startsWith('#error ')) cur.error = line.slice(7);
    else if (line.startsWith('#dump ')) cur.dumpHash = line.slice(6);
    else if (line.startsWith('#touch ')) {
      cur.touch = line.slice(7);
      mode = 'touch';
    } else if (mode === 'touch') cur.touch += `\n${line}`;
    else if (line === '#shape equal') cur.shape = 'equal';
    else if (line === '#shape differs') {
      cur.shape = 'differs';
      mode = 'shapes';
    } else if (mode === 'shapes') cur.shapes += `${line}\n`;
    else if (mode === 'check') {
      cur.check += `${line}\n`;
      if (line === 'OK' || / errors found$/.test(line)) mode = 'dump';
    } else cur.dump += `${line}\n`;
  }
  return res;
}

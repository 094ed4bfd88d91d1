import { BoltFile } from '../../src/formats/bolt/db.js';
import { BufferSource } from '../../src/formats/bolt/source.js';
import { checkBolt } from '../../src/formats/bolt/check.js';
import { dbStats } from '../../src/formats/bolt/stats.js';
import { fnv1a64 } from '../../src/formats/bolt/meta.js';
import { DatarootError } from '../../src/formats/errors.js';
import { ChunkWriter, dumpNdjson, dumpTree } from '../../src/ops/bolt.js';
import { renderPages, renderPage } from '../../src/commands/bolt.js';

/** The seeded mutator and the exercise of every read path, shared by the fuzz test and its replays. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const EDGE32 = [0, 1, 2, 15, 16, 17, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0xfffffffe, 0xffffffff];
export const EDGE64 = [0n, 1n, 2n, 3n, 4n, 0xffffn, 0xffffffffn, 0x1fffffffffffffn, 0x20000000000000n, 0xfffffffffffffffen, 0xffffffffffffffffn];

export function mutate(base: Uint8Array, rnd: () => number): Uint8Array {
  const f = new Uint8Array(base);
  const v = new DataView(f.buffer);
  const ps = v.getUint32(24, true) || 4096;
  const pages = Math.max(1, Math.floor(f.length / ps));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const page = () => Math.floor(rnd() * pages) * ps;
  const n = 1 + Math.floor(rnd() * 3);
  for (let m = 0; m < n; m++) {
    const kind = Math.floor(rnd() * 7);
    if (kind === 0) return f.subarray(0, Math.floor(rnd() * f.length));
    if (kind === 1) {
      for (let i = 0; i < 1 + rnd() * 8; i++) f[Math.floor(rnd() * f.length)]! ^= 1 << Math.floor(rnd() * 8);
    } else if (kind === 2) {
      const p = page() + (rnd() < 0.5 ? 0 : 0); // page header fields
      const field = Math.floor(rnd() * 4);
      if (field === 0) v.setBigUint64(p, pick(EDGE64), true);
      else if (field === 1) v.setUint16(p + 8, pick([0, 1, 2, 3, 4, 0x10, 0x20, 0xffff]), true);
      else if (field === 2) v.setUint16(p + 10, pick([0, 1, 2, 100, 0xfffe, 0xffff]), true);
      else v.setUint32(p + 12, pick(EDGE32), true);
    } else if (kind === 3) {
      // an element of a page: pos/ksize/vsize or a branch pgid
      const p = page();
      const count = v.getUint16(p + 10, true);
      if (count === 0) continue;
      const e = p + 16 + 16 * Math.floor(rnd() * Math.min(count, (ps - 16) / 16));
      const off = pick([0, 4, 8, 12]);
      if (off === 8 && rnd() < 0.5) v.setBigUint64(e + 8, pick(EDGE64.concat([BigInt(Math.floor(rnd() * pages))])), true);
      else if (e + off + 4 <= f.length) v.setUint32(e + off, rnd() < 0.5 ? pick(EDGE32) : Math.floor(rnd() * ps * 2), true);
    } else if (kind === 4 || kind === 5) {
      // meta fields with a valid checksum, so open accepts them
      const meta = rnd() < 0.5 ? 0 : ps;
      if (meta + 80 > f.length) continue;
      const field = pick([32, 40, 48, 56, 24]);
      if (field === 24) v.setUint32(meta + 24, pick([512, 1024, 4096, 65536, 3000, 0]), true);
      else v.setBigUint64(meta + field, rnd() < 0.5 ? pick(EDGE64) : BigInt(Math.floor(rnd() * pages * 1.2)), true);
      v.setBigUint64(meta + 64, BigInt(1000 + Math.floor(rnd() * 10)), true); // make it the newest
      v.setBigUint64(meta + 72, fnv1a64(f.subarray(meta + 16, meta + 72)), true);
    } else {
      // the freelist: count escape and ids
      const p = page();
      v.setUint16(p + 8, 0x10, true);
      v.setUint16(p + 10, pick([0xffff, 3, 0]), true);
      if (p + 24 <= f.length) v.setBigUint64(p + 16, pick(EDGE64), true);
    }
  }
  return f;
}

/** Everything a user can ask of a file; returns the error code or 'ok'. */
export async function exercise(bytes: Uint8Array): Promise<string> {
  try {
    const db = BoltFile.open(new BufferSource(bytes));
    const results: string[] = [];
    const steps: (() => unknown)[] = [
      () => dumpNdjson(db, new ChunkWriter(() => {}, 1 << 16)),
      () => dumpTree(db, { values: 'auto', docker: true, kind: 'generic' }),
      () => checkBolt(db),
      () => dbStats(db),
      () => renderPages(db),
      // The root bucket's root page: always in use in a valid file (a fixed id such as 3 may be a
      // free page holding stale bytes, and its garbage header an honest BOLT_CORRUPT).
      () => renderPage(db, db.rootBucket().root, 'auto'),
    ];
    for (const step of steps) {
      try {
        // (dbStats is async: its outcome counts only once it settles.)
        await step();
        results.push('ok');
      } catch (e) {
        if (!(e instanceof DatarootError)) throw e;
        results.push(e.code);
      }
    }
    return results.join(',');
  } catch (e) {
    if (e instanceof DatarootError) return e.code;
    throw e;
  }
}

/** A valid file cut to its high-water mark: the growth padding bbolt leaves adds nothing to fuzz. */
export function toHighWaterMark(bytes: Uint8Array): Uint8Array {
  const db = BoltFile.open(new BufferSource(bytes));
  return bytes.slice(0, db.hwm * db.pageSize);
}

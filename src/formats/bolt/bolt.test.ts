import { describe, expect, it } from 'vitest';
import { BoltFile, isBucketEntry } from './db.js';
import { BufferSource } from './source.js';
import { fnv1a64 } from './meta.js';
import { checkBolt } from './check.js';
import { dbStats } from './stats.js';
import { errorCode } from '../../../test/support/errors.js';

const enc = (s: string) => new TextEncoder().encode(s);

/** Writes a meta page by hand, per the table in bbolt-format.md §3, with its FNV-1a checksum. */
function putMeta(file: Uint8Array, page: number, ps: number, f: { root: number; freelist: bigint; pgid: number; txid: number }): void {
  const off = page * ps;
  const v = new DataView(file.buffer, off, ps);
  v.setBigUint64(0, BigInt(page), true); // header id
  v.setUint16(8, 0x04, true); // meta flag
  v.setUint32(16, 0xed0cdaed, true);
  v.setUint32(20, 2, true);
  v.setUint32(24, ps, true);
  v.setBigUint64(32, BigInt(f.root), true);
  v.setBigUint64(48, f.freelist, true);
  v.setBigUint64(56, BigInt(f.pgid), true);
  v.setBigUint64(64, BigInt(f.txid), true);
  v.setBigUint64(72, fnv1a64(file.subarray(off + 16, off + 72)), true);
}

/** The 4-page file bbolt's init() writes: two metas, an empty freelist (page 2), an empty root leaf (page 3). */
function emptyDb(ps = 4096): Uint8Array {
  const f = new Uint8Array(4 * ps);
  putMeta(f, 0, ps, { root: 3, freelist: 2n, pgid: 4, txid: 0 });
  putMeta(f, 1, ps, { root: 3, freelist: 2n, pgid: 4, txid: 1 });
  const v = new DataView(f.buffer);
  v.setBigUint64(2 * ps, 2n, true);
  v.setUint16(2 * ps + 8, 0x10, true);
  v.setBigUint64(3 * ps, 3n, true);
  v.setUint16(3 * ps + 8, 0x02, true);
  return f;
}

describe('FNV-1a 64 (the meta checksum)', () => {
  it.each([
    ['', 0xcbf29ce484222325n],
    ['a', 0xaf63dc4c8601ec8cn],
    ['foobar', 0x85944171f73967e8n],
  ])('fnv1a64(%j) is the published test vector', (s, want) => {
    expect(fnv1a64(enc(s))).toBe(want);
  });
});

describe('BoltFile.open on hand-built bytes', () => {
  it('reads the initial 4-page file: meta 1 (txid 1) selected, no buckets, check OK', () => {
    const db = BoltFile.open(new BufferSource(emptyDb()));
    expect(db.pageSize).toBe(4096);
    expect(db.metaIndex).toBe(1);
    expect(db.hwm).toBe(4);
    expect(db.freePages()).toEqual([]);
    const keys: string[] = [];
    db.forEachEntry(db.rootBucket(), db.newSeen(), (e) => keys.push(String(e.key)));
    expect(keys).toEqual([]);
    expect(checkBolt(db)).toEqual([]);
  });

  it('a torn meta 1 (bad checksum) falls back to meta 0', () => {
    const f = emptyDb();
    f[4096 + 72] = f[4096 + 72]! ^ 0xff;
    const db = BoltFile.open(new BufferSource(f));
    expect(db.metaIndex).toBe(0);
    expect(db.metas[1]?.problem).toBe('checksum error');
  });

  it('reads a 1 KiB page file found through meta 0', () => {
    const db = BoltFile.open(new BufferSource(emptyDb(1024)));
    expect(db.pageSize).toBe(1024);
  });

  it.each([
    ['empty file', () => new Uint8Array(0), 'BOLT_TRUNCATED'],
    ['not a bolt file', () => enc('x'.repeat(8192)), 'BOLT_NOT_BOLT'],
    [
      'big-endian magic',
      () => {
        const f = emptyDb();
        f.set([0xed, 0x0c, 0xda, 0xed], 16);
        f.set([0xed, 0x0c, 0xda, 0xed], 4096 + 16);
        return f;
      },
      'BOLT_BIG_ENDIAN',
    ],
    ['truncated below the high-water mark', () => emptyDb().subarray(0, 3 * 4096), 'BOLT_TRUNCATED'],
    [
      'both metas with bad checksums',
      () => {
        const f = emptyDb();
        f[72] = f[72]! ^ 1;
        f[4096 + 72] = f[4096 + 72]! ^ 1;
        return f;
      },
      'BOLT_BAD_META',
    ],
  ])('%s is a coded error', (_name, make, want) => {
    expect(errorCode(() => BoltFile.open(new BufferSource(make())))).toBe(want);
  });

  it('reads an inline bucket whose leaf page sits inside a value at an odd offset', async () => {
    // Root leaf (page 3) with one bucket entry: key "bkt" (3 bytes, so the value starts at an odd
    // offset), value = bucket header {root 0, seq 7} + inline leaf {count 1} + element + "k" + "val".
    const f = emptyDb();
    const v = new DataView(f.buffer);
    const p = 3 * 4096;
    v.setUint16(p + 10, 1, true); // count
    const inline = 16 + 16 + 16 + 1 + 3; // bucket hdr + page hdr + element + key + value
    v.setUint32(p + 16, 1, true); // flags: bucket
    v.setUint32(p + 20, 16, true); // pos: right after the element
    v.setUint32(p + 24, 3, true); // ksize
    v.setUint32(p + 28, inline, true); // vsize
    f.set(enc('bkt'), p + 32);
    const val = p + 35; // odd offset
    v.setBigUint64(val + 8, 7n, true); // sequence
    v.setUint16(val + 16 + 8, 0x02, true); // inline page: leaf
    v.setUint16(val + 16 + 10, 1, true); // count 1
    const el = val + 32;
    v.setUint32(el + 4, 16, true); // pos
    v.setUint32(el + 8, 1, true); // ksize
    v.setUint32(el + 12, 3, true); // vsize
    f.set(enc('kval'), el + 16);
    const db = BoltFile.open(new BufferSource(f));
    const b = db.bucketAt([enc('bkt')]);
    expect(b?.inline).toBeDefined();
    expect(b?.sequence).toBe(7n);
    const e = db.lookup(b!, enc('k'));
    expect(e && new TextDecoder().decode(e.value)).toBe('val');
    expect(e && isBucketEntry(e)).toBe(false);
    expect(checkBolt(db)).toEqual([]);
    const s = (await dbStats(db)).stats;
    expect([s.BucketN, s.InlineBucketN, s.KeyN]).toEqual([1, 1, 1]);
  });

  it('a branch page that points to itself ends in BOLT_CORRUPT, not an endless walk', () => {
    const f = emptyDb();
    const v = new DataView(f.buffer);
    const p = 3 * 4096;
    v.setUint16(p + 8, 0x01, true); // branch
    v.setUint16(p + 10, 1, true);
    v.setUint32(p + 16, 16, true); // pos
    v.setUint32(p + 20, 1, true); // ksize
    v.setBigUint64(p + 24, 3n, true); // child: itself
    f[p + 32] = 0x61;
    const db = BoltFile.open(new BufferSource(f));
    expect(errorCode(() => db.forEachEntry(db.rootBucket(), db.newSeen(), () => {}))).toBe('BOLT_CORRUPT');
    const problems = checkBolt(db).map((x) => x.message);
    expect(problems).toContain('page 3: multiple references');
  });

  it('check of a sub-bucket whose root is its own parent page terminates (fuzz case 13190)', async () => {
    // Root leaf (page 3) holding a bucket entry whose root is page 3 again.
    const f = emptyDb();
    const v = new DataView(f.buffer);
    const p = 3 * 4096;
    v.setUint16(p + 10, 1, true);
    v.setUint32(p + 16, 1, true); // bucket flag
    v.setUint32(p + 20, 16, true); // pos
    v.setUint32(p + 24, 1, true); // ksize
    v.setUint32(p + 28, 16, true); // vsize
    f[p + 32] = 0x62; // "b"
    v.setBigUint64(p + 33, 3n, true); // root: page 3
    const db = BoltFile.open(new BufferSource(f));
    const problems = checkBolt(db).map((x) => x.message);
    expect(problems).toContain('page 3: multiple references');
    await expect(dbStats(db)).rejects.toMatchObject({ code: 'BOLT_CORRUPT' });
  });
});

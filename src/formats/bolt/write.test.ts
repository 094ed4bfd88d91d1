import { describe, expect, it } from 'vitest';
import { BoltWriter, MemorySink, buildBolt, type BoltTreeBucket, type BoltVisitor, MAX_KEY_SIZE, MAX_BUCKET_DEPTH } from './write.js';
import { BoltFile } from './db.js';
import { BufferSource } from './source.js';
import { checkBolt } from './check.js';
import { fnv1a64 } from './meta.js';
import { walkBolt } from './walk.js';
import { EditVisitor, type BoltEdit } from './edit.js';
import { DumpRecords, readDumpRecords } from './ndjson.js';
import { DatarootError } from '../errors.js';
import { toHex } from '../bytes.js';
import { errorCode, errorCodeAsync } from '../../../test/support/errors.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (s: string): Uint8Array => new Uint8Array((s.replace(/\s+/g, '').match(/../g) ?? []).map((h) => parseInt(h, 16)));

/** Every entry of a file as NDJSON lines, read with the reader (a visitor that prints). */
function dumpLines(bytes: Uint8Array): string[] {
  const db = BoltFile.open(new BufferSource(bytes));
  const out: string[] = [];
  const path: string[] = [];
  walkBolt(db, {
    bucket: (k, s) => {
      out.push(`B ${path.join('/')} ${toHex(k)} ${s}`);
      path.push(toHex(k));
    },
    put: (k, v) => out.push(`V ${path.join('/')} ${toHex(k)} ${toHex(v)}`),
    end: () => void path.pop(),
  });
  return out;
}

describe('hand-checked bytes (bbolt-format.md §2-§5)', () => {
  it('one inline bucket "a" (sequence 7) holding k=v, page size 512: six pages checked field by field, padded to 4096 bytes', () => {
    const file = buildBolt({ entries: [{ key: enc('a'), bucket: { sequence: 7n, entries: [{ key: enc('k'), value: enc('v') }] } }] }, { pageSize: 512 });
    // bbolt reads 4096 bytes at offset 0 before anything else: a smaller file is refused, so 4 pages of 512 are padded.
    expect(file.length).toBe(4096);
    expect(file.subarray(2048).every((b) => b === 0)).toBe(true);
    const page = (n: number): Uint8Array => file.subarray(n * 512, (n + 1) * 512);
    const meta = (id: number, txid: number): Uint8Array => {
      const m = hex(`
        ${id.toString(16).padStart(2, '0')}00000000000000 0400 0000 00000000
        edda0ced 02000000 00020000 00000000
        0300000000000000 0000000000000000
        0200000000000000 0400000000000000
        ${txid.toString(16).padStart(2, '0')}00000000000000`);
      const out = new Uint8Array(80);
      out.set(m);
      new DataView(out.buffer).setBigUint64(72, fnv1a64(out.subarray(16, 72)), true);
      return out;
    };
    // Page 0: meta, txid 2 (the newer meta sits on page txid % 2); page 1: the same tree at txid 1.
    // Header id/flags=meta(0x04)/count/overflow; magic ed0cdaed LE; version 2; page size 0x200; flags 0;
    // root {pgid 3, sequence 0}; freelist page 2; high-water mark 4; txid; FNV-1a checksum of bytes 16..72.
    expect(toHex(page(0).subarray(0, 80))).toBe(toHex(meta(0, 2)));
    expect(toHex(page(1).subarray(0, 80))).toBe(toHex(meta(1, 1)));
    expect(
      page(0)
        .subarray(80)
        .every((b) => b === 0),
    ).toBe(true);
    // Page 2: the freelist, empty: id 2, flags 0x10, count 0.
    expect(toHex(page(2).subarray(0, 16))).toBe('0200000000000000' + '1000' + '0000' + '00000000');
    expect(
      page(2)
        .subarray(16)
        .every((b) => b === 0),
    ).toBe(true);
    // Page 3: the root bucket's leaf: one element, flagged bucket (1), pos 16 (its data follows the
    // element array: 16 + 16 = 32, minus the element's own offset 16), ksize 1, vsize 50;
    // then "a" and the inline bucket: bucket header {root 0, sequence 7}, its page header
    // (id 0, leaf, count 1, overflow 0), its element (flags 0, pos 16, ksize 1, vsize 1), "k" "v".
    const want = hex(`
      0300000000000000 0200 0100 00000000
      01000000 10000000 01000000 32000000
      61
      0000000000000000 0700000000000000
      0000000000000000 0200 0100 00000000
      00000000 10000000 01000000 01000000
      6b 76`);
    expect(toHex(page(3).subarray(0, want.length))).toBe(toHex(want));
    expect(
      page(3)
        .subarray(want.length)
        .every((b) => b === 0),
    ).toBe(true);
    expect(checkBolt(BoltFile.open(new BufferSource(file)))).toEqual([]);
  });

  it('an empty database is four pages: two metas, an empty freelist, an empty root leaf (as bbolt init writes them)', () => {
    const file = buildBolt({ entries: [] }, { pageSize: 4096 });
    expect(file.length).toBe(4 * 4096);
    expect(toHex(file.subarray(3 * 4096, 3 * 4096 + 16))).toBe('0300000000000000' + '0200' + '0000' + '00000000');
    const db = BoltFile.open(new BufferSource(file));
    expect(db.meta.txid).toBe(2n);
    expect(db.metaIndex).toBe(0);
    expect(db.metas[1]!.txid).toBe(1n);
    expect(db.metas[1]!.problem).toBeUndefined();
  });
});

describe('the split rule', () => {
  /** Values sized so that each leaf element takes `el` bytes (16 + 4-byte key + value). */
  function fixed(n: number, el: number): BoltTreeBucket {
    const entries = Array.from({ length: n }, (_, i) => ({ key: enc(String(i).padStart(4, '0')), value: new Uint8Array(el - 20) }));
    return { entries: [{ key: enc('b'), bucket: { entries } }] };
  }
  function leafCounts(bytes: Uint8Array): number[] {
    const db = BoltFile.open(new BufferSource(bytes));
    const b = db.bucketAt([enc('b')])!;
    const counts: number[] = [];
    db.forEachLeaf(b, undefined, (p) => counts.push(p.count));
    return counts;
  }

  it('fill 1.0: 100-byte elements on 1024-byte pages go 10 to a page (16 + 10*100 <= 1024), the last page keeps at least 2', () => {
    // 25 elements: cut at 10, then 10, then the last 5 fit in a page (16 + 500 < 1024).
    expect(leafCounts(buildBolt(fixed(25, 100), { pageSize: 1024 }))).toEqual([10, 10, 5]);
    // 21 elements: 10 (the 11th would make 1116 > 1024); the 11 left still do not fit (1116 >= 1024),
    // but splitIndex only looks at i < 11 - 2 = 9, finds no element passing the threshold and
    // returns its last index, 8 (bbolt's quirk): 8, and 3 on the last page.
    expect(leafCounts(buildBolt(fixed(21, 100), { pageSize: 1024 }))).toEqual([10, 8, 3]);
  });

  it('a node of at most 4 elements is never split, however large (one page with overflow)', () => {
    const big = {
      entries: [{ key: enc('b'), bucket: { entries: Array.from({ length: 4 }, (_, i) => ({ key: enc(`k${i}`), value: new Uint8Array(3000) })) } }],
    };
    const db = BoltFile.open(new BufferSource(buildBolt(big, { pageSize: 1024 })));
    const p = db.page(db.bucketAt([enc('b')])!.root);
    expect([p.count, p.overflow]).toEqual([4, Math.ceil((16 + 4 * (16 + 2 + 3000)) / 1024) - 1]);
  });

  it('inline exactly when 16 + Σ(16 + key + value) <= pageSize / 4 and there are no sub-buckets', () => {
    const sized = (total: number): BoltTreeBucket => ({
      entries: [{ key: enc('b'), bucket: { entries: [{ key: enc('k'), value: new Uint8Array(total - 16 - 16 - 1) }] } }],
    });
    const inline = (t: BoltTreeBucket): boolean => BoltFile.open(new BufferSource(buildBolt(t, { pageSize: 4096 }))).bucketAt([enc('b')])!.inline !== undefined;
    expect(inline(sized(1024))).toBe(true);
    expect(inline(sized(1025))).toBe(false);
    expect(inline({ entries: [{ key: enc('b'), bucket: { entries: [{ key: enc('c'), bucket: { entries: [] } }] } }] })).toBe(false);
    expect(inline({ entries: [{ key: enc('b'), bucket: { entries: [] } }] })).toBe(true);
  });
});

describe('writer input checks: coded errors', () => {
  const w = (): BoltWriter => new BoltWriter(new MemorySink(), { pageSize: 4096 });
  it.each<[string, (v: BoltWriter) => void, string]>([
    ['an empty key', (v) => v.bucket(new Uint8Array(0), 0n), 'BOLT_WRITE_EMPTY_KEY'],
    ['a key over 32768 bytes', (v) => (v.bucket(enc('b'), 0n), v.put(new Uint8Array(MAX_KEY_SIZE + 1), enc(''))), 'BOLT_WRITE_KEY_TOO_LARGE'],
    ['a duplicate key', (v) => (v.bucket(enc('b'), 0n), v.put(enc('k'), enc('1')), v.put(enc('k'), enc('2'))), 'BOLT_WRITE_DUPLICATE_KEY'],
    ['a bucket named like a key', (v) => (v.bucket(enc('b'), 0n), v.put(enc('k'), enc('1')), v.bucket(enc('k'), 0n)), 'BOLT_WRITE_DUPLICATE_KEY'],
    ['keys out of order', (v) => (v.bucket(enc('b'), 0n), v.put(enc('k2'), enc('1')), v.put(enc('k1'), enc('2'))), 'BOLT_WRITE_UNSORTED'],
    ['a value at the top level', (v) => v.put(enc('k'), enc('1')), 'BOLT_WRITE_TOP_LEVEL_VALUE'],
    ['a sequence over 2^64-1', (v) => v.bucket(enc('b'), 2n ** 64n), 'BOLT_WRITE_BAD_SEQUENCE'],
    ['end() at the top level', (v) => v.end(), 'BOLT_WRITE_STATE'],
    ['finish() with a bucket open', (v) => (v.bucket(enc('b'), 0n), v.finish()), 'BOLT_WRITE_STATE'],
    [
      'too many elements for one page',
      (v) => {
        const x = new BoltWriter(new MemorySink(), { pageSize: 1 << 24 });
        x.bucket(enc('b'), 0n);
        for (let i = 0; i < 70000; i++) x.put(new Uint8Array([i >> 16, (i >> 8) & 255, i & 255]), new Uint8Array(0));
        x.end();
        void v;
        x.finish();
      },
      'BOLT_WRITE_PAGE_ELEMENTS',
    ],
  ])('%s', (_name, fn, want) => {
    expect(errorCode(() => fn(w()))).toBe(want);
  });

  it.each([[0], [100], [3000], [1 << 25]])('page size %i is refused', (ps) => {
    expect(errorCode(() => new BoltWriter(new MemorySink(), { pageSize: ps }))).toBe('BOLT_WRITE_BAD_PAGE_SIZE');
  });

  it(`buckets nested deeper than ${MAX_BUCKET_DEPTH} levels are refused, without recursion`, () => {
    const v = w();
    let opened = 0;
    expect(
      errorCode(() => {
        for (let i = 0; i <= MAX_BUCKET_DEPTH; i++) {
          v.bucket(enc('d'), 0n);
          opened++;
        }
      }),
    ).toBe('BOLT_WRITE_TOO_DEEP');
    expect(opened).toBe(MAX_BUCKET_DEPTH);
  }, 120_000);

  it('buckets nested 5,000 deep round-trip through the (non-recursive) writer and walker', () => {
    const DEPTH = 5000;
    const deep: BoltTreeBucket = { entries: [] };
    let b = deep;
    for (let i = 0; i < DEPTH; i++) {
      const next: BoltTreeBucket = { entries: [] };
      b.entries.push({ key: enc('d'), value: enc('x') }, { key: enc('e'), bucket: next });
      b = next;
    }
    deep.entries = deep.entries.filter((e) => 'bucket' in e);
    const lines = dumpLines(buildBolt(deep, { pageSize: 4096 }));
    expect(lines.filter((l) => l.startsWith('B')).length).toBe(DEPTH);
  });
});

describe('edits streamed through a rewrite', () => {
  const base: BoltTreeBucket = {
    entries: [
      {
        key: enc('a'),
        bucket: {
          sequence: 3n,
          entries: [
            { key: enc('k1'), value: enc('v1') },
            { key: enc('k3'), value: enc('v3') },
            { key: enc('sub'), bucket: { entries: [{ key: enc('x'), value: enc('1') }] } },
          ],
        },
      },
      { key: enc('c'), bucket: { entries: [] } },
    ],
  };
  const file = buildBolt(base, { pageSize: 4096 });
  const apply = (edits: BoltEdit[]): Uint8Array => {
    const sink = new MemorySink();
    const w = new BoltWriter(sink, { pageSize: 4096 });
    const ev = new EditVisitor(w, edits);
    walkBolt(BoltFile.open(new BufferSource(file)), ev);
    ev.finish();
    const r = w.finish();
    return sink.bytes().subarray(0, r.size);
  };
  const p = (...s: string[]): Uint8Array[] => s.map(enc);

  it('put, replace, delete, delete a bucket, create buckets with contents, set a sequence: the same bytes as writing the edited tree', () => {
    const got = apply([
      { op: 'put', path: p('a'), key: enc('k2'), value: enc('v2') },
      { op: 'put', path: p('a'), key: enc('k3'), value: enc('V3') },
      { op: 'delete', path: p('a'), key: enc('k1') },
      { op: 'deleteBucket', path: p('a'), key: enc('sub') },
      { op: 'bucket', path: p(), key: enc('b'), sequence: 9n },
      { op: 'bucket', path: p('b'), key: enc('n') },
      { op: 'put', path: p('b', 'n'), key: enc('deep'), value: enc('') },
      { op: 'put', path: p('b'), key: enc('z'), value: enc('last') },
      { op: 'sequence', path: p(), key: enc('c'), sequence: 2n ** 64n - 1n },
      { op: 'bucket', path: p(), key: enc('d') },
    ]);
    const want = buildBolt(
      {
        entries: [
          {
            key: enc('a'),
            bucket: {
              sequence: 3n,
              entries: [
                { key: enc('k2'), value: enc('v2') },
                { key: enc('k3'), value: enc('V3') },
              ],
            },
          },
          {
            key: enc('b'),
            bucket: {
              sequence: 9n,
              entries: [
                { key: enc('n'), bucket: { entries: [{ key: enc('deep'), value: enc('') }] } },
                { key: enc('z'), value: enc('last') },
              ],
            },
          },
          { key: enc('c'), bucket: { sequence: 2n ** 64n - 1n, entries: [] } },
          { key: enc('d'), bucket: { entries: [] } },
        ],
      },
      { pageSize: 4096 },
    );
    expect(toHex(got)).toBe(toHex(want));
  });

  it.each<[string, BoltEdit[], string]>([
    ['a put into a missing bucket', [{ op: 'put', path: p('nope'), key: enc('k'), value: enc('') }], 'BOLT_BUCKET_NOT_FOUND'],
    ['a put below a missing bucket', [{ op: 'put', path: p('a', 'nope'), key: enc('k'), value: enc('') }], 'BOLT_BUCKET_NOT_FOUND'],
    ['a put through a value', [{ op: 'put', path: p('a', 'k1'), key: enc('k'), value: enc('') }], 'BOLT_NOT_A_BUCKET'],
    ['a put on a bucket', [{ op: 'put', path: p('a'), key: enc('sub'), value: enc('') }], 'BOLT_KEY_IS_BUCKET'],
    ['a delete of a missing key', [{ op: 'delete', path: p('a'), key: enc('k2') }], 'BOLT_KEY_NOT_FOUND'],
    ['a delete of a bucket as a value', [{ op: 'delete', path: p('a'), key: enc('sub') }], 'BOLT_KEY_IS_BUCKET'],
    ['a bucket delete of a value', [{ op: 'deleteBucket', path: p('a'), key: enc('k1') }], 'BOLT_NOT_A_BUCKET'],
    ['a bucket that exists', [{ op: 'bucket', path: p(), key: enc('a') }], 'BOLT_BUCKET_EXISTS'],
    ['a bucket over a value', [{ op: 'bucket', path: p('a'), key: enc('k1') }], 'BOLT_KEY_EXISTS'],
    ['a missing bucket deleted', [{ op: 'deleteBucket', path: p(), key: enc('zz') }], 'BOLT_BUCKET_NOT_FOUND'],
    ['a value at the top level', [{ op: 'put', path: p(), key: enc('v'), value: enc('') }], 'BOLT_EDIT_TOP_LEVEL_VALUE'],
    [
      'two edits of one key',
      [
        { op: 'delete', path: p('a'), key: enc('k1') },
        { op: 'put', path: p('a'), key: enc('k1'), value: enc('') },
      ],
      'BOLT_EDIT_CONFLICT',
    ],
    [
      'an edit inside a deleted bucket',
      [
        { op: 'deleteBucket', path: p('a'), key: enc('sub') },
        { op: 'put', path: p('a', 'sub'), key: enc('y'), value: enc('') },
      ],
      'BOLT_EDIT_CONFLICT',
    ],
  ])('%s', (_n, edits, want) => {
    expect(errorCode(() => apply(edits))).toBe(want);
  });
});

describe('NDJSON dumps read back', () => {
  const load = async (text: string): Promise<Uint8Array> => {
    const recs = await readDumpRecords(
      (async function* () {
        // fed one byte at a time, as every stream reader is tested
        const b = enc(text);
        for (let i = 0; i < b.length; i++) yield b.subarray(i, i + 1);
      })(),
    );
    const sink = new MemorySink();
    const w = new BoltWriter(sink, { pageSize: 1024 });
    recs.visit(w);
    const r = w.finish();
    return sink.bytes().subarray(0, r.size);
  };

  it('lines in any order, sequences above 2^53 as strings, CRLF and blank lines: the same bytes as the sorted tree', async () => {
    const text = [
      '{"path":["62"],"key":"6b32","value":""}',
      '',
      '{"path":[],"key":"62","bucket":true,"sequence":"18446744073709551615"}\r',
      '{"path":["62"],"key":"6B31","value":"00FF"}',
      '{"path":["62","73"],"key":"78","value":"01"}',
      '{"path":["62"],"key":"73","bucket":true}',
      '{"path":[],"key":"61","bucket":true,"sequence":5}',
    ].join('\n');
    const want = buildBolt(
      {
        entries: [
          { key: enc('a'), bucket: { sequence: 5n, entries: [] } },
          {
            key: enc('b'),
            bucket: {
              sequence: 2n ** 64n - 1n,
              entries: [
                { key: enc('k1'), value: hex('00ff') },
                { key: enc('k2'), value: enc('') },
                { key: enc('s'), bucket: { entries: [{ key: enc('x'), value: hex('01') }] } },
              ],
            },
          },
        ],
      },
      { pageSize: 1024 },
    );
    expect(toHex(await load(text))).toBe(toHex(want));
  });

  it.each<[string, string, string]>([
    ['not JSON', '{"path":[],"key":"61","bucket":true', 'BOLT_LOAD_BAD_LINE'],
    ['an unknown field', '{"path":[],"key":"61","bucket":true,"vaule":"00"}', 'BOLT_LOAD_BAD_LINE'],
    ['a key that is not hex', '{"path":[],"key":"6g","bucket":true}', 'BOLT_LOAD_BAD_LINE'],
    ['an odd-length value', '{"path":[],"key":"61","bucket":true}\n{"path":["61"],"key":"6b","value":"abc"}', 'BOLT_LOAD_BAD_LINE'],
    ['an empty key', '{"path":[],"key":"","bucket":true}', 'BOLT_LOAD_BAD_LINE'],
    ['a negative sequence', '{"path":[],"key":"61","bucket":true,"sequence":-1}', 'BOLT_LOAD_BAD_LINE'],
    ['a sequence over 2^64-1', '{"path":[],"key":"61","bucket":true,"sequence":"18446744073709551616"}', 'BOLT_LOAD_BAD_LINE'],
    ['a value line without a value', '{"path":[],"key":"61","bucket":true}\n{"path":["61"],"key":"6b"}', 'BOLT_LOAD_BAD_LINE'],
    ['a value at the top level', '{"path":[],"key":"61","value":"00"}', 'BOLT_LOAD_TOP_LEVEL_VALUE'],
    [
      'a duplicate key',
      '{"path":[],"key":"61","bucket":true}\n{"path":["61"],"key":"6b","value":"00"}\n{"path":["61"],"key":"6B","value":"01"}',
      'BOLT_LOAD_DUPLICATE_KEY',
    ],
    [
      'a key and a bucket of one name',
      '{"path":[],"key":"61","bucket":true}\n{"path":["61"],"key":"6b","value":"00"}\n{"path":["61"],"key":"6b","bucket":true}',
      'BOLT_LOAD_DUPLICATE_KEY',
    ],
    ['a key in a bucket with no bucket line', '{"path":["61"],"key":"6b","value":"00"}', 'BOLT_LOAD_MISSING_BUCKET'],
    ['text that is not UTF-8', '{"path":[],"key":"61","bucket":true}\n\xff', 'BOLT_LOAD_BAD_LINE'],
  ])('%s', async (_n, text, want) => {
    const bytes = text.includes('\xff') ? new Uint8Array([...enc(text.replace('\xff', '')), 0xff]) : enc(text);
    expect(
      await errorCodeAsync(async () => {
        const r = await readDumpRecords(
          (async function* () {
            yield bytes;
          })(),
        );
        r.prepare();
      }),
    ).toBe(want);
  });

  it('a line number is given for a bad line', async () => {
    const r = new DumpRecords();
    let e: unknown;
    try {
      r.addLine('{"path":[]}', 42);
    } catch (x) {
      e = x;
    }
    expect((e as DatarootError).details['line']).toBe(42);
  });
});

describe('the tree walker on hostile files', () => {
  it('a page that two branches share is refused (BOLT_CORRUPT), not walked twice', () => {
    const entries = Array.from({ length: 400 }, (_, i) => ({ key: enc(String(i).padStart(5, '0')), value: new Uint8Array(40) }));
    const file = new Uint8Array(buildBolt({ entries: [{ key: enc('b'), bucket: { entries } }] }, { pageSize: 1024 }));
    const db = BoltFile.open(new BufferSource(file));
    const root = db.page(db.bucketAt([enc('b')])!.root);
    expect(root.flags).toBe(0x01);
    // point branch element 1 at the child of element 0
    const v = new DataView(file.buffer, root.pgid * 1024);
    v.setBigUint64(16 + 16 + 8, v.getBigUint64(16 + 8, true), true);
    const visitor: BoltVisitor = { bucket: () => {}, put: () => {}, end: () => {} };
    expect(errorCode(() => walkBolt(BoltFile.open(new BufferSource(file)), visitor))).toBe('BOLT_CORRUPT');
  });
});

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBolt, BoltWriter, MemorySink, type BoltTreeBucket, type BoltTreeEntry } from '../src/formats/bolt/write.js';
import { BoltFile } from '../src/formats/bolt/db.js';
import { BufferSource } from '../src/formats/bolt/source.js';
import { walkBolt } from '../src/formats/bolt/walk.js';
import { EditVisitor, type BoltEdit } from '../src/formats/bolt/edit.js';
import { readDumpRecords } from '../src/formats/bolt/ndjson.js';
import { bytesEqual, compareBytes, toHex } from '../src/formats/bytes.js';
import { needs } from './support/env.js';
import { buildOracleAsync } from './support/gobolt.js';
import { mulberry32 } from './support/fuzz.js';
import { dumpHash, dumpOf, FUZZ_PAGE_SIZES, randomTree, verifyBatch, type Rnd, type Verified } from './support/boltgen.js';

/**
 * The writer against Go's bbolt on random trees: each tree is written by our writer and handed to
 * the Go oracle in batches (one process per batch), which runs tx.Check(), dumps the file and
 * compares its page shape with what bolt.Compact (one transaction) makes of it; in one batch of
 * five, bbolt also writes to a copy of each file (a bucket added, keys deleted) and checks it. Every tenth tree
 * is also rebuilt from a shuffled NDJSON dump and, with random edits, through the edit stream:
 * both must give the same bytes as writing the expected tree directly.
 * DATAROOT_WRITER_FUZZ_CASES and DATAROOT_WRITER_FUZZ_SEED replay or widen a run.
 */
const CASES = Number(process.env['DATAROOT_WRITER_FUZZ_CASES'] ?? 5000);
const SEED = Number(process.env['DATAROOT_WRITER_FUZZ_SEED'] ?? 0xb017);
const BATCH = 100;

const pause = (): Promise<void> => new Promise((r) => setImmediate(r));

function clone(b: BoltTreeBucket): BoltTreeBucket {
  return {
    ...(b.sequence !== undefined ? { sequence: b.sequence } : {}),
    entries: b.entries.map((e) => ('bucket' in e ? { key: e.key, bucket: clone(e.bucket) } : { key: e.key, value: e.value })),
  };
}

/** Random edits of disjoint keys of a tree, and the tree they should give. */
function randomEdits(rnd: Rnd, tree: BoltTreeBucket): { edits: BoltEdit[]; edited: BoltTreeBucket } {
  const edited = clone(tree);
  const edits: BoltEdit[] = [];
  const taken: Uint8Array[][] = [];
  const clash = (t: Uint8Array[]): boolean =>
    taken.some((u) => {
      const n = Math.min(u.length, t.length);
      for (let i = 0; i < n; i++) if (!bytesEqual(u[i]!, t[i]!)) return false;
      return true;
    });
  const n = 1 + Math.floor(rnd() * 5);
  for (let tries = 0; edits.length < n && tries < 50; tries++) {
    // a random bucket: walk down from the root
    let b = edited;
    const path: Uint8Array[] = [];
    while (rnd() < 0.6) {
      const subs = b.entries.filter((e): e is { key: Uint8Array; bucket: BoltTreeBucket } => 'bucket' in e);
      if (subs.length === 0) break;
      const s = subs[Math.floor(rnd() * subs.length)]!;
      path.push(s.key);
      b = s.bucket;
    }
    const values = b.entries.filter((e): e is { key: Uint8Array; value: Uint8Array } => 'value' in e);
    const buckets = b.entries.filter((e): e is { key: Uint8Array; bucket: BoltTreeBucket } => 'bucket' in e);
    const fresh = new Uint8Array([0xfe, ...Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => Math.floor(rnd() * 256))]);
    const op = Math.floor(rnd() * 6);
    const target = (k: Uint8Array): Uint8Array[] | undefined => {
      const t = [...path, k];
      if (clash(t)) return undefined;
      taken.push(t);
      return t;
    };
    const val = new Uint8Array(Math.floor(rnd() * 3) === 0 ? 0 : Math.floor(rnd() * 3000));
    if (op === 0 && path.length > 0 && !b.entries.some((e) => bytesEqual(e.key, fresh)) && target(fresh)) {
      edits.push({ op: 'put', path, key: fresh, value: val });
      b.entries.push({ key: fresh, value: val });
    } else if (op === 1 && values.length > 0) {
      const e = values[Math.floor(rnd() * values.length)]!;
      if (!target(e.key)) continue;
      edits.push({ op: 'put', path, key: e.key, value: val });
      e.value = val;
    } else if (op === 2 && values.length > 0) {
      const e = values[Math.floor(rnd() * values.length)]!;
      if (!target(e.key)) continue;
      edits.push({ op: 'delete', path, key: e.key });
      b.entries = b.entries.filter((x) => x !== e);
    } else if (op === 3 && buckets.length > 0) {
      const e = buckets[Math.floor(rnd() * buckets.length)]!;
      if (!target(e.key)) continue;
      edits.push({ op: 'deleteBucket', path, key: e.key });
      b.entries = b.entries.filter((x) => x !== e);
    } else if (op === 4 && !b.entries.some((e) => bytesEqual(e.key, fresh)) && target(fresh)) {
      const seq = BigInt(Math.floor(rnd() * 100));
      const inner: BoltTreeEntry[] = [];
      edits.push({ op: 'bucket', path, key: fresh, sequence: seq });
      for (let i = 0; i < Math.floor(rnd() * 3); i++) {
        const k = new Uint8Array([i + 1]);
        edits.push({ op: 'put', path: [...path, fresh], key: k, value: val });
        inner.push({ key: k, value: val });
      }
      b.entries.push({ key: fresh, bucket: { sequence: seq, entries: inner } });
    } else if (op === 5 && buckets.length > 0) {
      const e = buckets[Math.floor(rnd() * buckets.length)]!;
      if (!target(e.key)) continue;
      const seq = BigInt(Math.floor(rnd() * 2 ** 40));
      edits.push({ op: 'sequence', path, key: e.key, sequence: seq });
      e.bucket.sequence = seq;
    }
  }
  return { edits, edited };
}

function viaEdits(file: Uint8Array, ps: number, edits: BoltEdit[]): Uint8Array {
  const sink = new MemorySink();
  const w = new BoltWriter(sink, { pageSize: ps });
  const ev = new EditVisitor(w, edits);
  walkBolt(BoltFile.open(new BufferSource(file)), ev);
  ev.finish();
  const r = w.finish();
  return sink.bytes().subarray(0, r.size);
}

async function viaNdjson(tree: BoltTreeBucket, ps: number, rnd: Rnd): Promise<Uint8Array> {
  const lines = dumpOf(tree)
    .split('\n')
    .filter((l) => l !== '');
  for (let i = lines.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
  }
  const recs = await readDumpRecords(
    (async function* () {
      yield new TextEncoder().encode(lines.join('\n'));
    })(),
  );
  const sink = new MemorySink();
  const w = new BoltWriter(sink, { pageSize: ps });
  recs.visit(w);
  const r = w.finish();
  return sink.bytes().subarray(0, r.size);
}

interface Case {
  n: number;
  seed: number;
  ps: number;
  file: string;
  /** sha256 and length of the dump Go must print */
  want: string;
}

describe.runIf(needs('go'))('bolt writer fuzz vs Go bbolt', () => {
  // Files live for one batch: in memory (tmpfs) when the machine has it, so no disk writeback competes.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'dataroot-writer-fuzz-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`${CASES} random trees: Go's tx.Check() passes, Go dumps the tree, the pages are those bolt.Compact makes; NDJSON and edit paths give the same bytes`, async () => {
    const building = buildOracleAsync(); // compiles (once) while the first batch is generated
    const rnd = mulberry32(SEED);
    const failures: string[] = [];
    const seen = { pageSizes: new Set<number>(), overflow: 0, branch: 0, bytes: 0, edited: 0, loaded: 0 };
    const t0 = performance.now();
    let goMs = 0;
    let touched = 0;
    let pending: Promise<void> = Promise.resolve();
    const check = (batch: Case[], results: Verified[]): void => {
      expect(results.length).toBe(batch.length);
      batch.forEach((c, i) => {
        const v = results[i]!;
        const id = `case ${c.n} (seed ${c.seed}, page size ${c.ps})`;
        if (v.error !== undefined) failures.push(`${id}: oracle error ${v.error}`);
        else if (v.check !== 'OK\n') failures.push(`${id}: tx.Check(): ${v.check}`);
        else if (v.dumpHash !== c.want)
          failures.push(`${id}: Go's dump differs (sha256 and length ${v.dumpHash}, expected ${c.want}); the file is kept: ${c.file}`);
        else if (v.shape !== 'equal') failures.push(`${id}: pages differ from bolt.Compact's:\n${v.shapes.slice(0, 2000)}`);
        else if (v.touch !== undefined && v.touch !== 'OK') failures.push(`${id}: after bbolt wrote to it: ${v.touch}`);
        if (v.touch === 'OK') touched++;
        if (failures.length === 0) rmSync(c.file, { force: true });
      });
    };
    for (let start = 0; start < CASES; start += BATCH) {
      const batch: Case[] = [];
      for (let n = start; n < Math.min(CASES, start + BATCH); n++) {
        const seed = Math.floor(rnd() * 2 ** 32);
        const r = mulberry32(seed);
        const ps = FUZZ_PAGE_SIZES[Math.floor(r() * FUZZ_PAGE_SIZES.length)]!;
        const tree = randomTree(r, ps);
        const bytes = buildBolt(tree, { pageSize: ps });
        const file = join(dir, `t${n}.db`);
        writeFileSync(file, bytes);
        batch.push({ n, seed, ps, file, want: dumpHash(tree) });
        seen.pageSizes.add(ps);
        seen.bytes += bytes.length;
        const db = BoltFile.open(new BufferSource(bytes));
        if (db.hwm > 4) {
          const st = { overflow: 0, branch: 0 };
          for (let id = 3; id < db.hwm;) {
            const h = db.header(id);
            if (h.flags === 0x01) st.branch++;
            if (h.overflow > 0) st.overflow++;
            id += 1 + h.overflow;
          }
          if (st.overflow > 0) seen.overflow++;
          if (st.branch > 0) seen.branch++;
        }
        if (n % 10 === 0) {
          const { edits, edited } = randomEdits(r, tree);
          if (!bytesEqual(viaEdits(bytes, ps, edits), buildBolt(edited, { pageSize: ps })))
            failures.push(`case ${n} (seed ${seed}): the edit stream differs from writing the edited tree`);
          seen.edited++;
        }
        if (n % 10 === 5) {
          if (!bytesEqual(await viaNdjson(tree, ps, r), bytes)) failures.push(`case ${n} (seed ${seed}): the tree loaded from a shuffled dump differs`);
          seen.loaded++;
        }
        if (failures.length > 5) break;
        await pause();
      }
      await pending;
      const g0 = performance.now();
      pending = verifyBatch(
        batch.map((c) => c.file),
        // one batch in five also has bbolt write to a copy of each file and check it again
        { shape: true, hash: true, touch: (start / BATCH) % 5 === 0 },
      ).then((res) => {
        goMs += performance.now() - g0;
        check(batch, res);
      });
      if (failures.length > 5) break;
    }
    await pending;
    await building;
    const ms = performance.now() - t0;
    console.log(
      `writer fuzz: ${CASES} trees (${(seen.bytes / 2 ** 20).toFixed(0)} MiB written), page sizes ${[...seen.pageSizes].sort((a, b) => a - b).join(',')}; ` +
        `${seen.overflow} with overflow pages, ${seen.branch} with branch pages; ${seen.edited} edited, ${seen.loaded} loaded from NDJSON, ${touched} written to by bbolt; ` +
        `${(ms / 1000).toFixed(1)} s in all, Go batches busy ${(goMs / 1000).toFixed(1)} s`,
    );
    expect(failures).toEqual([]);
    expect(touched).toBeGreaterThanOrEqual(Math.floor(CASES / BATCH / 5) * BATCH);
    // the generator reaches what it is meant to
    expect(seen.pageSizes.size).toBeGreaterThanOrEqual(CASES >= 1000 ? 8 : 1);
    if (CASES >= 1000) {
      expect(seen.overflow).toBeGreaterThan(CASES / 20);
      expect(seen.branch).toBeGreaterThan(CASES / 20);
    }
  }, 600_000);

  it('keys compare as bytes (an empty-prefix and a 0xff key sort where bytes.Compare puts them)', () => {
    const keys = [new Uint8Array([0xff]), new Uint8Array([0x00]), new Uint8Array([0x00, 0x00]), new Uint8Array([0x7f, 0xff])];
    keys.sort(compareBytes);
    expect(keys.map(toHex)).toEqual(['00', '0000', '7fff', 'ff']);
  });
});

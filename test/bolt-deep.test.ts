import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { BoltFile } from '../src/formats/bolt/db.js';
import { fnv1a64 } from '../src/formats/bolt/meta.js';
import { FileSource } from '../src/io/pagesource.js';
import { MAX_BUCKET_DEPTH } from '../src/formats/bolt/write.js';
import { MAX_TREE_DEPTH } from '../src/ops/bolt.js';
import { needs } from './support/env.js';
import { buildOracle, oracle } from './support/gobolt.js';
import { run, SAMPLES } from './support/cli.js';
import { untar } from './support/untar.js';

/**
 * Buckets nested as deep as a file likes (issue #13, item 8: "no recursion on depth an attacker
 * controls"). Go's bbolt opens any depth; 1,500 nested buckets used to end dataroot's bolt
 * commands in a stack overflow. The files come from the Go oracle's `nested` scenario: "nest",
 * then a chain of N buckets "b"; levels 1, N/3, 2N/3 and N hold a value "v" ("seed S level D") and
 * an inline bucket "a" with a value "x" (0x00 "x S D"). The full NDJSON dump repeats the path in
 * every record, so it grows as N² (6 GB at 50,000): it is compared whole at 1,500 and 10,000
 * levels, and at 50,000 from level 49,990 on, against the records Go printed for those levels.
 */

const HEX_NEST = Buffer.from('nest').toString('hex');
/** For the tests that read 50,000 levels or 250 MB (the machines are shared and often busy). */
const SLOW = 600_000;
const bs = (n: number): string[] => new Array<string>(n).fill('b');
const SPECIAL = (n: number): number[] => [1, Math.floor(n / 3), Math.floor((2 * n) / 3), n];

interface Deep {
  n: number;
  file: string;
  /** The same structure written with seed 2. */
  other: string;
  /** What the generator printed: Go's NDJSON records below level n-10. */
  tail: string;
}

/** Runs the CLI in-process with stdout fed to a sha256 (for outputs of hundreds of MB). */
async function runHashed(args: string[]): Promise<{ code: number; sha256: string; bytes: number; stderr: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  const err: Buffer[] = [];
  const stdout = {
    write: (c: string | Uint8Array) => {
      h.update(c);
      bytes += typeof c === 'string' ? Buffer.byteLength(c) : c.length;
      return true;
    },
  };
  const code = await main(['node', 'dataroot', ...args], { stdout, stderr: { write: (c: string | Uint8Array) => err.push(Buffer.from(c)) }, env: {} });
  return { code, sha256: h.digest('hex'), bytes, stderr: Buffer.concat(err).toString() };
}

/** Go's NDJSON dump of a file, hashed as it streams. */
function goDumpHashed(file: string): Promise<{ sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    const child = spawn(buildOracle(), ['dump', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (d: Buffer) => {
      h.update(d);
      bytes += d.length;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ sha256: h.digest('hex'), bytes }) : reject(new Error(`boltoracle dump exited ${code}`))));
  });
}

/**
 * A file bbolt itself never writes but reads: a chain of `depth` inline buckets, each inside the
 * one before, all in the one (overflowing) leaf page of a top-level inline bucket "deep". Each
 * level holds the next level as bucket "i" and a value "j" = "x" after it (so a walk must come
 * back into each inline page); the innermost holds "k" = `last`. Pages: 0 and 1 meta, 2 an empty
 * freelist, 3 the root leaf and its overflow.
 */
function inlineChain(depth: number, last: string, ps = 4096): Uint8Array {
  const size = (level: number) => (depth - level) * 67 + 34; // bytes of the inline page of a level
  const pages = 4 + Math.ceil((52 + size(0)) / ps) - 1;
  const f = new Uint8Array(pages * ps);
  const v = new DataView(f.buffer);
  metasAndFreelist(f, ps, pages);
  const r = 3 * ps;
  v.setBigUint64(r, 3n, true);
  v.setUint16(r + 8, 0x02, true);
  v.setUint16(r + 10, 1, true);
  v.setUint32(r + 12, pages - 4, true); // overflow
  // element: flags (bucket), pos, ksize, vsize; then "deep", a zero bucket header (inline), level 0
  v.setUint32(r + 16, 1, true);
  v.setUint32(r + 20, 16, true);
  v.setUint32(r + 24, 4, true);
  v.setUint32(r + 28, 16 + size(0), true);
  f.set(Buffer.from('deep'), r + 32);
  for (let level = 0; level < depth; level++) {
    const p = r + 52 + 65 * level;
    const child = size(level + 1);
    v.setUint16(p + 8, 0x02, true);
    v.setUint16(p + 10, 2, true);
    v.setUint32(p + 16, 1, true); // "i": a bucket, key at +48, then its header and the next level
    v.setUint32(p + 20, 32, true);
    v.setUint32(p + 24, 1, true);
    v.setUint32(p + 28, 16 + child, true);
    v.setUint32(p + 36, 33 + child, true); // "j": key right after the next level
    v.setUint32(p + 40, 1, true);
    v.setUint32(p + 44, 1, true);
    f[p + 48] = 0x69;
    f[p + 65 + child] = 0x6a;
    f[p + 66 + child] = 0x78;
  }
  const p = r + 52 + 65 * depth;
  v.setUint16(p + 8, 0x02, true);
  v.setUint16(p + 10, 1, true);
  v.setUint32(p + 20, 16, true);
  v.setUint32(p + 24, 1, true);
  v.setUint32(p + 28, 1, true);
  f[p + 32] = 0x6b;
  f[p + 33] = last.charCodeAt(0);
  return f;
}

/** Meta pages 0 and 1 (root bucket at page 3, freelist at page 2, `pages` in use) and an empty freelist. */
function metasAndFreelist(f: Uint8Array, ps: number, pages: number): void {
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  for (const m of [0, 1]) {
    const o = m * ps;
    v.setBigUint64(o, BigInt(m), true);
    v.setUint16(o + 8, 0x04, true);
    const x = o + 16;
    v.setUint32(x, 0xed0cdaed, true); // magic
    v.setUint32(x + 4, 2, true); // version
    v.setUint32(x + 8, ps, true);
    v.setBigUint64(x + 16, 3n, true); // root bucket's page
    v.setBigUint64(x + 32, 2n, true); // freelist page
    v.setBigUint64(x + 40, BigInt(pages), true); // high-water mark
    v.setBigUint64(x + 48, BigInt(m + 1), true); // txid
    v.setBigUint64(x + 56, fnv1a64(f.subarray(x, x + 56)), true);
  }
  v.setBigUint64(2 * ps, 2n, true);
  v.setUint16(2 * ps + 8, 0x10, true);
}

/**
 * A bucket "x" whose page tree is a chain of `levels` branch pages (one child each) above one
 * leaf: far deeper than any tree bbolt writes (its B+trees are a few levels deep).
 */
function branchChain(levels: number, ps = 512): Uint8Array {
  const pages = 4 + levels + 1;
  const f = new Uint8Array(pages * ps);
  const v = new DataView(f.buffer);
  metasAndFreelist(f, ps, pages);
  const r = 3 * ps; // the root bucket's leaf: bucket "x", its tree at page 4
  v.setBigUint64(r, 3n, true);
  v.setUint16(r + 8, 0x02, true);
  v.setUint16(r + 10, 1, true);
  v.setUint32(r + 16, 1, true);
  v.setUint32(r + 20, 16, true);
  v.setUint32(r + 24, 1, true);
  v.setUint32(r + 28, 16, true);
  f[r + 32] = 0x78;
  v.setBigUint64(r + 33, 4n, true);
  for (let id = 4; id < 4 + levels; id++) {
    const p = id * ps; // element: pos, ksize, child id; key "a"
    v.setBigUint64(p, BigInt(id), true);
    v.setUint16(p + 8, 0x01, true);
    v.setUint16(p + 10, 1, true);
    v.setUint32(p + 16, 16, true);
    v.setUint32(p + 20, 1, true);
    v.setBigUint64(p + 24, BigInt(id + 1), true);
    f[p + 32] = 0x61;
  }
  const id = 4 + levels;
  const p = id * ps; // the leaf: "a" = "b"
  v.setBigUint64(p, BigInt(id), true);
  v.setUint16(p + 8, 0x02, true);
  v.setUint16(p + 10, 1, true);
  v.setUint32(p + 20, 16, true);
  v.setUint32(p + 24, 1, true);
  v.setUint32(p + 28, 1, true);
  f[p + 32] = 0x61;
  f[p + 33] = 0x62;
  return f;
}

describe.runIf(needs('go'))('buckets nested 1,500 and 50,000 deep', () => {
  let dir: string;
  const deep = new Map<number, Deep>();
  const make = (n: number, pageSize: number): Deep => {
    const file = join(dir, `nested-${n}.db`);
    const other = join(dir, `nested-${n}-seed2.db`);
    const r = oracle(['gen', file, '1', 'nested', String(pageSize), String(n)]);
    if (r.status !== 0) throw new Error(`oracle gen nested ${n}: ${r.stderr}`);
    const r2 = oracle(['gen', other, '2', 'nested', String(pageSize), String(n)]);
    if (r2.status !== 0) throw new Error(`oracle gen nested ${n}: ${r2.stderr}`);
    return { n, file, other, tail: r.stdout };
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-bolt-deep-'));
    deep.set(1500, make(1500, 4096));
    // 512-byte pages: every bucket that holds a bucket has a page of its own (bbolt inlines only leaves).
    deep.set(50000, make(50000, 512));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const get = (n: number): Deep => deep.get(n)!;

  it('1,500 levels: dump --format ndjson equals Go dump, byte for byte', async () => {
    const d = get(1500);
    const want = oracle(['dump', d.file]);
    expect(want.status).toBe(0);
    const got = await run(['bolt', 'dump', '--format', 'ndjson', d.file]);
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    // "nest", 1,500 "b" and 4 "a" buckets, 4 "v" and 4 "x" values: one record each.
    expect(got.stdout.split('\n').length).toBe(1 + 1500 + 4 + 8 + 1);
    expect(got.stdout).toBe(want.stdout);
  });

  it(
    '10,000 levels: dump --format ndjson equals Go dump (250 MB, compared by sha256)',
    async () => {
      const file = join(dir, 'nested-10000.db');
      const r = oracle(['gen', file, '3', 'nested', '512', '10000']);
      expect(r.status).toBe(0);
      // One after the other: Go's bbolt holds a shared flock while it reads, which dataroot would report.
      const got = await runHashed(['bolt', 'dump', '--format', 'ndjson', file]);
      const want = await goDumpHashed(file);
      expect(got.stderr).toBe('');
      expect(got.code).toBe(0);
      expect(want.bytes).toBeGreaterThan(200e6);
      expect(got.bytes).toBe(want.bytes);
      expect(got.sha256).toBe(want.sha256);
    },
    SLOW,
  );

  it(
    '50,000 levels: dump --format ndjson from level 49,990 equals the records Go printed for it',
    async () => {
      const d = get(50000);
      // The buckets of levels 49,991 to 50,000, then level 50,000's "a" (with its "x") and "v".
      expect(d.tail.split('\n').length).toBe(10 + 3 + 1);
      const got = await run(['bolt', 'dump', '--format', 'ndjson', d.file, 'nest', ...bs(49990)]);
      expect(got.stderr).toBe('');
      expect(got.code).toBe(0);
      expect(got.stdout).toBe(d.tail);
      // The path is printed whole: "nest" and 49,990 "b" before the key of each record.
      expect(got.stdout.startsWith(`{"path":["${HEX_NEST}",${'"62",'.repeat(49989)}"62"],"key":"62","bucket":true`)).toBe(true);
    },
    SLOW,
  );

  it.each([1500, 50000])(
    '%i levels: bolt check prints what tx.Check() prints (OK)',
    async (n) => {
      const d = get(n);
      const want = oracle(['check', d.file]);
      expect(want.stdout).toBe('OK\n');
      const got = await run(['bolt', 'check', d.file]);
      expect(got.stderr).toBe('');
      expect(got.stdout).toBe(want.stdout);
      expect(got.code).toBe(want.status);
    },
    SLOW,
  );

  it.each([1500, 50000])(
    '%i levels: bolt stats equals the bbolt CLI stats report',
    async (n) => {
      const d = get(n);
      const want = oracle(['stats', d.file]);
      expect(want.status).toBe(0);
      expect(want.stdout).toContain(`Total number of buckets: ${n + 1 + 4}\n`);
      const got = await run(['bolt', 'stats', d.file]);
      expect(got.stderr).toBe('');
      expect(got.stdout).toBe(want.stdout);
    },
    SLOW,
  );

  it(
    '50,000 levels: the pages reached from the root are exactly those the freelist does not hold',
    () => {
      // reachablePages is what `bolt pages`, `check` and `stats` use on files without a freelist.
      const d = get(50000);
      const src = FileSource.open(d.file);
      try {
        const db = BoltFile.open(src, { file: d.file });
        const reach = db.reachablePages();
        const free = new Set(db.freelistIds());
        const fl = Number(db.meta.freelist);
        const flSpan = db.header(fl).overflow + 1;
        let reached = 0;
        const wrong: number[] = [];
        for (let id = 0; id < db.hwm; id++) {
          const isFreelist = id >= fl && id < fl + flSpan;
          if ((reach[id] === 1) !== (!free.has(id) && !isFreelist)) wrong.push(id);
          if (reach[id] === 1) reached++;
        }
        expect(wrong).toEqual([]);
        expect(reached).toBeGreaterThan(50000);
      } finally {
        src.close();
      }
    },
    SLOW,
  );

  /** The changes between the seed-1 and seed-2 files, level by level, in the order of the NDJSON walk. */
  function expectedChanges(n: number): { change: string; path: string[]; key: string; left: unknown; right: unknown }[] {
    const x = (seed: number, level: number) => ({ hex: Buffer.from(`\u0000x ${seed} ${level}`).toString('hex') });
    const at = (level: number) => ['nest', ...bs(level)];
    const levels = SPECIAL(n);
    // Inside level D: "a" (its "x") sorts before "b" (everything deeper), and "v" comes after both.
    return [
      ...levels.map((l) => ({ change: 'changed', path: [...at(l), 'a'], key: 'x', left: x(1, l), right: x(2, l) })),
      ...[...levels].reverse().map((l) => ({ change: 'changed', path: at(l), key: 'v', left: `seed 1 level ${l}`, right: `seed 2 level ${l}` })),
    ];
  }

  it('the expected differences are the values Go wrote (1,500 levels, from both Go dumps)', () => {
    const d = get(1500);
    const values = (file: string): Map<string, string> => {
      const out = oracle(['dump', file]);
      const m = new Map<string, string>();
      for (const line of out.stdout.split('\n').filter(Boolean)) {
        const r = JSON.parse(line) as { path: string[]; key: string; value?: string };
        if (r.value !== undefined) m.set(`${r.path.length}:${r.path.at(-1)}:${r.key}`, r.value);
      }
      return m;
    };
    const written1 = values(d.file);
    const written2 = values(d.other);
    const hex = (s: string) => Buffer.from(s).toString('hex');
    const want = new Map<string, [string, string]>();
    for (const c of expectedChanges(1500)) {
      const left = c.left as string | { hex: string };
      const right = c.right as string | { hex: string };
      const lk = `${c.path.length}:${hex(c.path.at(-1)!)}:${hex(c.key)}`;
      want.set(lk, [typeof left === 'string' ? hex(left) : left.hex, typeof right === 'string' ? hex(right) : right.hex]);
    }
    expect(written1.size).toBe(8);
    expect(want.size).toBe(8);
    for (const [k, [l, r]] of want) {
      expect(written1.get(k), k).toBe(l);
      expect(written2.get(k), k).toBe(r);
    }
  });

  it.each([1500, 50000])(
    '%i levels: bolt diff lists the 8 changed values with their full paths, in walk order',
    async (n) => {
      const d = get(n);
      const got = await run(['--json', 'bolt', 'diff', d.file, d.other]);
      expect(got.stderr).toBe('');
      expect(got.code).toBe(1);
      const r = JSON.parse(got.stdout) as { equal: boolean; changes: unknown[] };
      expect(r.equal).toBe(false);
      expect(r.changes).toEqual(expectedChanges(n));
      const same = await run(['bolt', 'diff', d.file, d.file]);
      expect(same.stdout).toBe('no differences\n');
      expect(same.code).toBe(0);
    },
    SLOW,
  );

  it(
    '50,000 levels: keys, get and buckets at any depth',
    async () => {
      const d = get(50000);
      expect((await run(['bolt', 'buckets', d.file])).stdout).toBe('nest\n');
      const third = Math.floor(50000 / 3);
      const keys = await run(['--json', 'bolt', 'keys', d.file, 'nest', ...bs(third)]);
      expect(keys.code).toBe(0);
      expect(JSON.parse(keys.stdout)).toEqual([
        { key: 'a', bucket: true },
        { key: 'b', bucket: true },
        { key: 'v', bucket: false },
      ]);
      expect((await run(['bolt', 'keys', d.file, 'nest', ...bs(50000)])).stdout).toBe('a\nv\n');
      expect((await run(['bolt', 'keys', d.file, 'nest', ...bs(49999)])).stdout).toBe('b\n');
      expect((await run(['bolt', 'keys', d.file, 'nest', ...bs(50000), 'a'])).stdout).toBe('x\n');
      const v = await run(['bolt', 'get', d.file, 'nest', ...bs(50000), 'v']);
      expect(v.stdout).toBe('seed 1 level 50000\n');
      const missing = await run(['bolt', 'keys', d.file, 'nest', ...bs(50001)]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/^dataroot: BOLT_BUCKET_NOT_FOUND: /);
    },
    SLOW,
  );

  it.each([1500, 50000])(
    `%i levels: dump --format json stops with BOLT_TOO_DEEP (exit 2, one coded line), past ${MAX_TREE_DEPTH} levels`,
    async (n) => {
      const d = get(n);
      const got = await run(['bolt', 'dump', d.file]);
      expect(got.code).toBe(2);
      expect(got.stdout).toBe('');
      expect(got.stderr).toMatch(/^dataroot: BOLT_TOO_DEEP: [^\n]*--format ndjson[^\n]*\n$/);
      const json = await run(['--json', 'bolt', 'dump', d.file]);
      expect(json.code).toBe(2);
      expect(json.stdout).toBe('');
      expect(json.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(JSON.parse(json.stderr).error.code).toBe('BOLT_TOO_DEEP');
    },
    SLOW,
  );

  it(`dump --format json prints a tree ${MAX_TREE_DEPTH} buckets deep, and not one more`, async () => {
    const d = get(1500);
    // From "b" at level 501, the deepest bucket ("a" in level 1,500) is 1,000 levels down.
    const start = 1500 + 1 - MAX_TREE_DEPTH;
    const got = await run(['bolt', 'dump', d.file, 'nest', ...bs(start)]);
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    type Node = { bucket: Record<string, Node | string | { hex: string }>; sequence?: number };
    let node = JSON.parse(got.stdout) as Node;
    const seen: Record<number, unknown> = {};
    for (let level = start; ; level++) {
      if (SPECIAL(1500).includes(level)) seen[level] = [node.bucket['v'], (node.bucket['a'] as Node).bucket['x']];
      if (level % 1000 === 7) expect(node.sequence, `level ${level}`).toBe(level);
      if (!('b' in node.bucket)) {
        expect(level).toBe(1500);
        break;
      }
      node = node.bucket['b'] as Node;
    }
    const x = (level: number) => ({ hex: Buffer.from(`\u0000x 1 ${level}`).toString('hex') });
    expect(seen).toEqual({ 1000: ['seed 1 level 1000', x(1000)], 1500: ['seed 1 level 1500', x(1500)] });
    const over = await run(['bolt', 'dump', d.file, 'nest', ...bs(start - 1)]);
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/^dataroot: BOLT_TOO_DEEP: /);
  });

  it(
    'verify and files on a root whose buildkit/cache.db nests 50,000 buckets: no crash, the file checks clean',
    async () => {
      const u = untar(join(SAMPLES, 'fresh.tar.gz'));
      try {
        copyFileSync(get(50000).file, join(u.dir, 'buildkit/cache.db'));
        const v = await run(['--json', 'verify', '--root', u.dir]);
        expect(v.stderr).toBe('');
        expect(v.code).toBe(0);
        const report = JSON.parse(v.stdout) as { findings: { code: string; subject?: string }[]; checked: { boltFiles: number } };
        expect(report.checked.boltFiles).toBeGreaterThanOrEqual(1);
        expect(report.findings).toEqual([]);
        const f = await run(['files', '--root', u.dir, '--type', 'bolt']);
        expect(f.stderr).toBe('');
        expect(f.code).toBe(0);
        expect(f.stdout).toMatch(new RegExp(`^bolt\\s+${statSync(get(50000).file).size}\\s.*buildkit/cache\\.db$`, 'm'));
      } finally {
        u.cleanup();
      }
    },
    SLOW,
  );
  it(
    'a page tree 50,000 branch pages deep: check walks it (no recursion) and reports the depth; dump and stats refuse it',
    async () => {
      const file = join(dir, 'branch-chain.db');
      writeFileSync(file, branchChain(50000));
      // Go's tx.Check() walks any depth and says OK; dataroot reads at most 64 levels of a page
      // tree, so it lists the bucket's entries as far as that and names the first page below.
      const check = await run(['bolt', 'check', file]);
      expect(check.stderr).toBe('');
      expect(check.stdout).toBe('bucket /x: page 69: tree deeper than 64 levels\n1 errors found\n');
      expect(check.code).toBe(1);
      for (const args of [
        ['bolt', 'dump', '--format', 'ndjson', file],
        ['bolt', 'stats', file],
        ['bolt', 'keys', file, 'x'],
      ]) {
        const r = await run(args);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr, args.join(' ')).toMatch(/^dataroot: BOLT_CORRUPT: page 69: tree deeper than 64 levels/);
      }
    },
    SLOW,
  );
});

describe.runIf(needs('go'))('inline buckets nested inside one page (a hostile shape bbolt reads but never writes)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-bolt-chain-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const chain = (depth: number, last: string): string => {
    const file = join(dir, `chain-${depth}-${last}.db`);
    writeFileSync(file, inlineChain(depth, last));
    return file;
  };

  it('2,000 levels: dump --format ndjson, check and stats equal Go', async () => {
    const file = chain(2000, 'v');
    const want = oracle(['dump', file]);
    expect(want.status).toBe(0);
    const got = await run(['bolt', 'dump', '--format', 'ndjson', file]);
    expect(got.stderr).toBe('');
    // "deep" and 2,000 "i" buckets, 2,000 "j" values and "k": one record each.
    expect(got.stdout.split('\n').length).toBe(1 + 2000 + 2000 + 1 + 1);
    expect(got.stdout).toBe(want.stdout);
    for (const cmd of ['check', 'stats']) {
      const w = oracle([cmd, file]);
      expect(w.status).toBe(0);
      expect((await run(['bolt', cmd, file])).stdout).toBe(w.stdout);
    }
  });

  it(
    '100,000 levels: diff finds the innermost change, check and stats equal Go, json stops with BOLT_TOO_DEEP',
    async () => {
      const a = chain(100000, 'v');
      const b = chain(100000, 'w');
      const diff = await run(['--json', 'bolt', 'diff', a, b]);
      expect(diff.stderr).toBe('');
      expect(diff.code).toBe(1);
      expect(JSON.parse(diff.stdout).changes).toEqual([
        { change: 'changed', path: ['deep', ...new Array<string>(100000).fill('i')], key: 'k', left: 'v', right: 'w' },
      ]);
      for (const cmd of ['check', 'stats']) {
        const w = oracle([cmd, a]);
        expect(w.status).toBe(0);
        expect((await run(['bolt', cmd, a])).stdout).toBe(w.stdout);
      }
      const keys = await run(['bolt', 'keys', a, 'deep', ...new Array<string>(100000).fill('i')]);
      expect(keys.stdout).toBe('k\n');
      const tree = await run(['bolt', 'dump', a]);
      expect(tree.code).toBe(2);
      expect(tree.stderr).toMatch(/^dataroot: BOLT_TOO_DEEP: /);
    },
    SLOW,
  );

  it(
    '2,000 levels: bolt compact packs what bbolt compact packs (Go: check OK, equal stats, no difference)',
    async () => {
      const a = chain(2000, 'v');
      const ours = join(dir, 'chain-2000.ours.db');
      const go = join(dir, 'chain-2000.go.db');
      // 512-byte pages; bolt.Compact in one transaction (TXMAX 0), as the writer packs
      const c = await run(['bolt', 'compact', a, '-o', ours, '--page-size', '512']);
      expect(c.stderr).toBe('');
      expect(c.code).toBe(0);
      const g = oracle(['compact', go, a, '0', '512']);
      expect(g.status, g.stderr).toBe(0);
      expect(oracle(['check', ours]).stdout).toBe('OK\n');
      const want = oracle(['stats', go]);
      expect(want.status).toBe(0);
      expect(want.stdout).toContain('Total number of buckets: 2001\n');
      expect(oracle(['stats', ours]).stdout).toBe(want.stdout);
      const same = await run(['--json', 'bolt', 'diff', a, ours]);
      expect(JSON.parse(same.stdout).changes).toEqual([]);
      expect(same.code).toBe(0);
    },
    SLOW,
  );

  // Go's bolt.Compact of this chain takes gigabytes (9 GB and still going at 100,000 levels), so
  // the compacted file is checked by Go's tx.Check and stats, with the figures counted by hand.
  it(
    '100,000 levels: bolt compact (Go: check OK, stats as counted), then put and delete at the innermost level',
    async () => {
      const a = chain(100000, 'v');
      const b = chain(100000, 'w');
      const ours = join(dir, 'chain-100000.ours.db');
      const c = await run(['bolt', 'compact', a, '-o', ours, '--page-size', '512']);
      expect(c.stderr).toBe('');
      expect(c.code).toBe(0);
      expect(oracle(['check', ours]).stdout).toBe('OK\n');
      const stats = oracle(['stats', ours]).stdout;
      // "deep" and the 100,000 "i" but the innermost hold a bucket: a 512-byte leaf page each, with
      // 16 + (16+1+16) + (16+1+1) = 67 bytes used; the innermost is inline: 16 + (16+1+1) = 34 bytes
      for (const line of [
        'Number of logical leaf pages: 100000',
        'Number of logical branch pages: 0',
        'Number of keys/value pairs: 200001',
        'Number of levels in B+tree: 100001',
        'Bytes allocated for physical leaf pages: 51200000',
        'Bytes actually used for leaf data: 6700034 (13%)',
        'Total number of buckets: 100001',
        'Total number on inlined buckets: 1 (0%)',
        'Bytes used for inlined buckets: 34 (0%)',
      ]) {
        expect(stats).toContain(`\t${line}\n`);
      }
      const same = await run(['--json', 'bolt', 'diff', a, ours]);
      expect(same.stderr).toBe('');
      expect(JSON.parse(same.stdout).changes).toEqual([]);
      expect(same.code).toBe(0);

      // put through the edit walk, 100,000 buckets down: the file then holds what b holds
      const path = ['deep', ...new Array<string>(100000).fill('i')];
      const put = await run(['bolt', 'put', ours, ...path, 'k', 'w']);
      expect(put.stderr).toBe('');
      expect(put.code).toBe(0);
      expect(oracle(['check', ours]).stdout).toBe('OK\n');
      const now = await run(['--json', 'bolt', 'diff', b, ours]);
      expect(JSON.parse(now.stdout).changes).toEqual([]);
      const del = await run(['bolt', 'delete', ours, ...path, 'k']);
      expect(del.stderr).toBe('');
      expect(del.code).toBe(0);
      const gone = await run(['--json', 'bolt', 'diff', b, ours]);
      expect(JSON.parse(gone.stdout).changes).toEqual([{ change: 'removed', path, key: 'k', left: 'w' }]);
      expect(oracle(['check', ours]).stdout).toBe('OK\n');
    },
    SLOW,
  );

  it(
    `${MAX_BUCKET_DEPTH + 1} levels: compact stops with BOLT_TOO_DEEP and leaves no file`,
    async () => {
      const a = chain(MAX_BUCKET_DEPTH + 1, 'v');
      const out = join(dir, 'too-deep.db');
      const r = await run(['bolt', 'compact', a, '-o', out]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dataroot: BOLT_TOO_DEEP: buckets nested deeper than 250000 levels/);
      expect(readdirSync(dir).filter((f) => f.startsWith('too-deep'))).toEqual([]);
    },
    SLOW,
  );
});

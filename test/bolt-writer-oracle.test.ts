import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoltFile } from '../src/formats/bolt/db.js';
import { BufferSource } from '../src/formats/bolt/source.js';
import { untar as unpackTar } from './support/untar.js';
import { needs } from './support/env.js';
import { gen, oracle } from './support/gobolt.js';
import { run, SAMPLES } from './support/cli.js';
import { verifyBatch, type Verified } from './support/boltgen.js';
import { Containerd } from './support/containerd.js';
import { mulberry32 } from './support/fuzz.js';

/**
 * `dataroot bolt compact`, `put` and `delete` against Go's bbolt 1.3.6 (Debian), on the generated
 * databases of the reader's oracle suite and on real files (Docker's local-kv.db and
 * volumes/metadata.db, BuildKit's files, containerd's meta.db and a snapshotter metadata.db
 * written by a private containerd). Each output must pass tx.Check(), dump (read by Go) exactly
 * as its source, hold the pages bolt.Compact makes in one transaction, take further writes by
 * bbolt, and be no larger than 1.05 times what `bbolt compact` (its default -tx-max-size 65536,
 * the same page size) writes. The containerd files are also handed back to containerd.
 */
const SCENARIOS = ['basic', 'deep', 'many', 'inline', 'bigvalues', 'binary', 'deletes', 'growshrink', 'nofreelist', 'sequences', 'mixed'];
const PAGE_SIZES = [1024, 4096, 16384, 65536];
const GENERATED = SCENARIOS.flatMap((s, i) => PAGE_SIZES.map((ps, j) => ({ name: `${s}-${ps}`, scenario: s, pageSize: ps, seed: 1000 + i * 10 + j })));
GENERATED.push({ name: 'bigfreelist-1024', scenario: 'bigfreelist', pageSize: 1024, seed: 7 });

const SAMPLE_FILES = [
  'network/files/local-kv.db',
  'volumes/metadata.db',
  'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db',
  'buildkit/cache.db',
  'buildkit/metadata_v2.db',
  'buildkit/snapshots.db',
  'buildkit/containerdmeta.db',
];

interface Compared {
  name: string;
  source: Verified;
  ours: Verified;
  oursSize: number;
  /** bbolt compact's output: pages in use (hwm) times page size, its free pages, its size on disk */
  goUsed: number;
  goLive: number;
  oursLive: number;
  goOnDisk: number;
}

/** Compacts each file with dataroot and with bbolt's compact, and has Go verify both. */
async function compareAll(dir: string, files: { name: string; path: string }[]): Promise<Map<string, Compared>> {
  const jobs: { name: string; src: string; ours: string; go: string; ps: number }[] = [];
  for (const f of files) {
    const ours = join(dir, `${f.name}.ours.db`);
    const go = join(dir, `${f.name}.go.db`);
    const r = await run(['bolt', 'compact', f.path, '-o', ours]);
    if (r.code !== 0) throw new Error(`compact ${f.name}: ${r.stderr}`);
    const ps = BoltFile.open(new BufferSource(new Uint8Array(readFileSync(f.path)))).pageSize;
    const g = oracle(['compact', go, f.path, '65536', String(ps)]);
    if (g.status !== 0) throw new Error(`oracle compact ${f.name}: ${g.stderr}`);
    jobs.push({ name: f.name, src: f.path, ours, go, ps });
  }
  const srcs = await verifyBatch(
    jobs.map((j) => j.src),
    { hash: true },
  );
  const outs = await verifyBatch(
    jobs.map((j) => j.ours),
    { hash: true, shape: true, touch: true },
  );
  const res = new Map<string, Compared>();
  jobs.forEach((j, i) => {
    const godb = BoltFile.open(new BufferSource(new Uint8Array(readFileSync(j.go))));
    const ourdb = BoltFile.open(new BufferSource(new Uint8Array(readFileSync(j.ours))));
    res.set(j.name, {
      name: j.name,
      source: srcs[i]!,
      ours: outs[i]!,
      oursSize: statSync(j.ours).size,
      goUsed: godb.hwm * godb.pageSize,
      goLive: godb.hwm - godb.freePages().length,
      oursLive: ourdb.hwm - ourdb.freePages().length,
      goOnDisk: statSync(j.go).size,
    });
    rmSync(j.go);
  });
  return res;
}

function expectCompacted(c: Compared | undefined): void {
  expect(c).toBeDefined();
  const { source, ours } = c!;
  expect(source.error).toBeUndefined();
  expect(ours.error).toBeUndefined();
  expect(ours.check).toBe('OK\n');
  expect(ours.dumpHash).toBe(source.dumpHash);
  expect(ours.shape, ours.shapes.slice(0, 3000)).toBe('equal');
  // and bbolt goes on writing to it (new bucket, deletes, freelist used) and still checks it clean
  expect(ours.touch).toBe('OK');
  expect(c!.oursSize).toBeLessThanOrEqual(c!.goUsed * 1.05);
  // no more live pages than bbolt compact's (it also leaves free pages behind its intermediate commits)
  expect(c!.oursLive).toBeLessThanOrEqual(Math.ceil(c!.goLive * 1.05));
}

const ratios: { name: string; used: number; onDisk: number; live: number }[] = [];
function record(c: Compared): void {
  ratios.push({ name: c.name, used: c.oursSize / c.goUsed, onDisk: c.oursSize / c.goOnDisk, live: c.oursLive / c.goLive });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

afterAll(() => {
  if (ratios.length === 0) return;
  const f = (xs: number[]): string => `max ${Math.max(...xs).toFixed(3)}, median ${median(xs).toFixed(3)}, min ${Math.min(...xs).toFixed(3)}`;
  console.log(
    `bolt compact vs bbolt compact over ${ratios.length} files: size / bbolt's pages in use: ${f(ratios.map((r) => r.used))}; ` +
      `size / bbolt's file size: ${f(ratios.map((r) => r.onDisk))}; live pages / bbolt's live pages: ${f(ratios.map((r) => r.live))}`,
  );
});

describe.runIf(needs('go'))('bolt compact vs Go bbolt', () => {
  let dir: string;
  let generated: Map<string, Compared>;
  let samples: Map<string, Compared>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-writer-oracle-'));
    const files: { name: string; path: string }[] = [];
    for (const c of GENERATED) {
      const p = join(dir, `${c.name}.db`);
      gen(p, c.seed, c.scenario, c.pageSize);
      files.push({ name: c.name, path: p });
    }
    generated = await compareAll(dir, files);
    for (const c of generated.values()) rmSync(join(dir, `${c.name}.db`));
    const u = unpackTar(join(SAMPLES, 'after-build.tar.gz'));
    try {
      samples = await compareAll(
        dir,
        SAMPLE_FILES.map((rel) => ({ name: rel.replace(/\//g, '_'), path: join(u.dir, rel) })),
      );
    } finally {
      u.cleanup();
    }
  }, 900_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`covers at least 40 generated databases (${GENERATED.length}) and ${SAMPLE_FILES.length} real files`, () => {
    expect(GENERATED.length).toBeGreaterThanOrEqual(40);
    expect(generated.size).toBe(GENERATED.length);
    expect(samples.size).toBe(SAMPLE_FILES.length);
  });

  it.each(GENERATED.map((g) => g.name))(
    "%s: Go checks it, dumps it as the source, finds bolt.Compact's pages, and it is no larger than bbolt compact's",
    (name) => {
      const c = generated.get(name)!;
      expectCompacted(c);
      record(c);
    },
  );

  it.each(SAMPLE_FILES)('sample %s: the same', (rel) => {
    const c = samples.get(rel.replace(/\//g, '_'))!;
    expectCompacted(c);
    record(c);
  });

  it('a 4096-byte-page file compacted to 16384-byte pages and to 1024-byte pages reads the same in Go', async () => {
    const src = join(dir, 'repage.db');
    gen(src, 77, 'inline', 4096);
    const want = (await verifyBatch([src], { hash: true }))[0]!;
    for (const ps of [16384, 1024, 512]) {
      const out = join(dir, `repage-${ps}.db`);
      const r = await run(['bolt', 'compact', src, '-o', out, '--page-size', String(ps)]);
      expect(r.code, r.stderr).toBe(0);
      const v = (await verifyBatch([out], { hash: true, shape: true }))[0]!;
      expect([v.check, v.dumpHash, v.shape]).toEqual(['OK\n', want.dumpHash, 'equal']);
      expect(BoltFile.open(new BufferSource(new Uint8Array(readFileSync(out)))).pageSize).toBe(ps);
    }
  });
});

describe.runIf(needs('go') && needs('containerd', 'ctr'))('real containerd files (a private containerd 1.6)', () => {
  let ctd: Containerd;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-writer-ctd-'));
    mkdirSync(join(dir, 'layer'));
    writeFileSync(join(dir, 'layer', 'hello.txt'), 'hello\n');
    const packed = await run(['pack', '-o', join(dir, 'img.tar'), '--layer', `${join(dir, 'layer')}:/`, '-t', 'hello:1']);
    expect(packed.code, packed.stderr).toBe(0);
    ctd = new Containerd(join(dir, 'ctd'));
    await ctd.start();
    try {
      ctd.ctr(['images', 'import', join(dir, 'img.tar')]);
    } finally {
      await ctd.stop();
    }
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('meta.db and the overlayfs snapshotter metadata.db (its snapshots bucket sequence kept): compact, put and delete read back in Go', async () => {
    const files = [join(ctd.root, 'io.containerd.metadata.v1.bolt', 'meta.db'), join(ctd.root, 'io.containerd.snapshotter.v1.overlayfs', 'metadata.db')];
    const got = await compareAll(
      dir,
      files.map((p, i) => ({ name: `ctd-${i}`, path: p })),
    );
    for (const c of got.values()) {
      expectCompacted(c);
      record(c);
    }
    const snap = (await verifyBatch([files[1]!], {}))[0]!;
    expect(snap.dump).toMatch(/"key":"736e617073686f7473","bucket":true,"sequence":[1-9]/);
    // the copies take edits as the originals would
    const copy = join(dir, 'meta-copy.db');
    copyFileSync(files[0]!, copy);
    expect((await run(['bolt', 'put', copy, 'v1', 'moby', 'labels', 'k', 'v', '-p'])).code).toBe(0);
    expect((await run(['bolt', 'delete', copy, 'v1', 'default', '--bucket'])).code).toBe(0);
    const v = (await verifyBatch([copy], {}))[0]!;
    expect(v.check).toBe('OK\n');
    expect(v.dump).toContain('{"path":["7631","6d6f6279","6c6162656c73"],"key":"6b","value":"76"}');
    expect(v.dump).not.toContain('64656661756c74');
  });

  it('containerd starts on its files rewritten by dataroot (a label put into meta.db, the snapshotter db compacted in place) and lists the image, label and snapshot', async () => {
    const meta = join(ctd.root, 'io.containerd.metadata.v1.bolt', 'meta.db');
    const snaps = join(ctd.root, 'io.containerd.snapshotter.v1.overlayfs', 'metadata.db');
    const put = await run(['bolt', 'put', meta, '-p', 'v1', 'default', 'images', 'docker.io/library/hello:1', 'labels', 'org.example.dataroot', 'rewritten']);
    expect(put.code, put.stderr).toBe(0);
    const compacted = await run(['bolt', 'compact', snaps, '-o', snaps, '--force']);
    expect(compacted.code, compacted.stderr).toBe(0);
    await ctd.start();
    let images: string;
    let snapshots: string;
    try {
      images = ctd.ctr(['images', 'ls']).stdout;
      snapshots = ctd.ctr(['snapshots', 'ls']).stdout;
      ctd.ctr(['images', 'check']);
    } finally {
      await ctd.stop();
    }
    expect(images).toMatch(/docker\.io\/library\/hello:1 .* org\.example\.dataroot=rewritten/);
    expect(snapshots).toMatch(/sha256:[0-9a-f]{64}\s+Committed/);
    // what containerd wrote into them since still checks clean
    const after = await verifyBatch([meta, snaps], {});
    expect(after.map((a) => a.check)).toEqual(['OK\n', 'OK\n']);
  });
});

// --- put and delete, checked against a model of the tree --------------------------------------

interface Rec {
  path: string[];
  key: string;
  value?: string;
  sequence?: number | string;
}

function parseDump(text: string): Rec[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const o = JSON.parse(l) as { path: string[]; key: string; value?: string; bucket?: boolean; sequence?: number | string };
      return o.bucket ? { path: o.path, key: o.key, sequence: o.sequence! } : { path: o.path, key: o.key, value: o.value! };
    });
}

function tupleCmp(a: Rec, b: Rec): number {
  const x = [...a.path, a.key];
  const y = [...b.path, b.key];
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  return x.length - y.length;
}

function dumpText(recs: Rec[]): string {
  return [...recs]
    .sort(tupleCmp)
    .map((r) =>
      r.value !== undefined
        ? `{"path":[${r.path.map((p) => `"${p}"`).join(',')}],"key":"${r.key}","value":"${r.value}"}\n`
        : `{"path":[${r.path.map((p) => `"${p}"`).join(',')}],"key":"${r.key}","bucket":true,"sequence":${typeof r.sequence === 'string' ? `"${r.sequence}"` : r.sequence}}\n`,
    )
    .join('');
}

function rhex(rnd: () => number, n: number): string {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b.toString('hex');
}

describe.runIf(needs('go'))('bolt put and delete: Go reads exactly the expected tree', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-writer-edit-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const SOURCES = [
    { name: 'inline', scenario: 'inline', seed: 31 },
    { name: 'binary', scenario: 'binary', seed: 32 },
    { name: 'bigvalues', scenario: 'bigvalues', seed: 33 },
    { name: 'deep', scenario: 'deep', seed: 34 },
    { name: 'sample-meta.db', scenario: '', seed: 35 },
  ];

  it.each(SOURCES)('$name: 16 random puts and deletes (binary keys, empty and 1 MB values, nested and inline buckets)', async ({ name, scenario, seed }) => {
    const file = join(dir, `${name}.db`);
    if (scenario !== '') gen(file, seed, scenario, 4096);
    else {
      const u = unpackTar(join(SAMPLES, 'after-build.tar.gz'));
      try {
        copyFileSync(join(u.dir, 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db'), file);
      } finally {
        u.cleanup();
      }
    }
    const model = parseDump(oracle(['dump', file]).stdout);
    const rnd = mulberry32(seed);
    const big = join(dir, `${name}.value`);
    const snapshots: { path: string; want: string; op: string }[] = [];
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    for (let step = 0; step < 16; step++) {
      const buckets = model.filter((r) => r.value === undefined);
      const values = model.filter((r) => r.value !== undefined);
      const op = Math.floor(rnd() * 7);
      let args: string[];
      if (op === 0 || buckets.length === 0 || (op === 5 && values.length === 0)) {
        // a new nested bucket path under an existing bucket (or at the top), created with -p, holding an empty value
        const base = buckets.length > 0 && rnd() < 0.8 ? pick(buckets) : undefined;
        const path = [...(base ? [...base.path, base.key] : []), `fd${rhex(rnd, 1 + Math.floor(rnd() * 8))}`, rhex(rnd, 2)];
        if (model.some((r) => r.path.join('/') === path.slice(0, -2).join('/') && r.key === path[path.length - 2])) continue;
        const key = rhex(rnd, 1 + Math.floor(rnd() * 20));
        args = ['bolt', 'put', file, '--hex', '-p', ...path, key, ''];
        for (let i = base ? base.path.length + 1 : 0; i < path.length; i++) model.push({ path: path.slice(0, i), key: path[i]!, sequence: 0 });
        model.push({ path, key, value: '' });
      } else if (op === 1 || op === 2) {
        // a new binary key in an existing bucket: small value, or 1 MB from a file
        const b = pick(buckets);
        const path = [...b.path, b.key];
        let key = rhex(rnd, 1 + Math.floor(rnd() * 30));
        while (model.some((r) => r.path.join('/') === path.join('/') && r.key === key)) key = rhex(rnd, 8);
        if (op === 2) {
          const v = Buffer.from(rhex(rnd, 1 << 20), 'hex');
          writeFileSync(big, v);
          args = ['bolt', 'put', file, '--hex', ...path, key, '--value-file', big];
          model.push({ path, key, value: v.toString('hex') });
        } else {
          const v = rhex(rnd, Math.floor(rnd() * 100));
          args = ['bolt', 'put', file, '--hex', ...path, key, v];
          model.push({ path, key, value: v });
        }
      } else if (op === 3 && values.length > 0) {
        // replace a value
        const r = pick(values);
        const v = rhex(rnd, Math.floor(rnd() * 300));
        args = ['bolt', 'put', file, '--hex', ...r.path, r.key, v];
        r.value = v;
      } else if (op === 4 && values.length > 0) {
        const r = pick(values);
        args = ['bolt', 'delete', file, '--hex', ...r.path, r.key];
        model.splice(model.indexOf(r), 1);
      } else if (op === 5) {
        // an empty bucket, inline in its parent
        const b = pick(buckets);
        const key = `ff${rhex(rnd, 3)}`;
        if (model.some((r) => r.path.join('/') === [...b.path, b.key].join('/') && r.key === key)) continue;
        args = ['bolt', 'put', file, '--hex', '--bucket', ...b.path, b.key, key];
        model.push({ path: [...b.path, b.key], key, sequence: 0 });
      } else {
        // delete a bucket that is not at the top level, with everything in it
        const nested = buckets.filter((b) => b.path.length > 0);
        if (nested.length === 0) continue;
        const b = pick(nested);
        const full = [...b.path, b.key];
        args = ['bolt', 'delete', file, '--hex', '--bucket', ...full];
        for (let i = model.length - 1; i >= 0; i--) {
          const r = model[i]!;
          const t = [...r.path, r.key];
          if (t.length >= full.length && full.every((x, j) => t[j] === x)) model.splice(i, 1);
        }
      }
      const r = await run(args);
      expect(r.code, `${args.join(' ').slice(0, 300)}: ${r.stderr}`).toBe(0);
      const snap = join(dir, `${name}-${step}.db`);
      copyFileSync(file, snap);
      snapshots.push({ path: snap, want: dumpText(model), op: args.slice(0, 4).join(' ') });
    }
    const got = await verifyBatch(
      snapshots.map((s) => s.path),
      {},
    );
    snapshots.forEach((s, i) => {
      expect(got[i]!.check, s.op).toBe('OK\n');
      expect(got[i]!.dump === s.want, `after step ${i} (${s.op}) Go reads a different tree`).toBe(true);
    });
  });
});

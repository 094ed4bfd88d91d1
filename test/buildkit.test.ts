import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goHumanSize, humanSizeWithPrecision } from '../src/formats/docker/units.js';
import { createdAtOf, lastUsedOf, loadRecords, sizeOf, snapshotIdOf, usageEntries, type MetaItem } from '../src/store/buildkit.js';
import { run } from './support/cli.js';
import { needs } from './support/env.js';
import { boltEdit, buildGoProgram, type BoltEditOp } from './support/gobolt.js';

/**
 * The build-cache reader apart from a daemon: Go's size formatting against Go itself; the loading
 * and listing rules of cacheManager (init, DiskUsage) on records laid out by hand from
 * buildkit's cache/manager.go; and hostile build caches written with Go's bbolt (invalid values,
 * IDs that would be paths, symlinks and FIFOs, cycles, a 20 000-record chain), each read without a
 * crash, a hang, or a path outside the root.
 */

const UNITS_SRC = fileURLToPath(new URL('./oracle/unitsfmt/main.go', import.meta.url));

describe.runIf(needs('go'))('sizes as the docker CLI prints them (Go fmt %g)', () => {
  it('hand-checked: half-to-even ties and the exponent form', () => {
    expect(humanSizeWithPrecision(1125, 3)).toBe('1.12kB');
    expect(humanSizeWithPrecision(1135, 3)).toBe('1.14kB');
    expect(humanSizeWithPrecision(999950, 3)).toBe('1e+03kB');
    expect(humanSizeWithPrecision(0, 3)).toBe('0B');
    expect(goHumanSize(379085)).toBe('379.1kB');
  });

  it('equals Go for 6000 sizes across every magnitude, ties included', () => {
    const sizes: number[] = [];
    for (let i = 0; i <= 2100; i++) sizes.push(i);
    for (let k = 1; k < 1000; k++) sizes.push(k * 1000 + 500, k * 1000 + 5, k * 1_000_000 + 500_000, k * 125);
    let s = 12345;
    const rnd = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
    while (sizes.length < 6000) sizes.push(Math.floor(rnd() ** 4 * 10 ** Math.floor(rnd() * 16)));
    const r = spawnSync(buildGoProgram(UNITS_SRC, 'unitsfmt'), [], { input: sizes.join('\n'), encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status).toBe(0);
    const want = r.stdout.trim().split('\n');
    const got = sizes.map((n) => `${humanSizeWithPrecision(n, 3)}|${goHumanSize(n)}`);
    expect(got).toEqual(want);
  });
});

/** A record laid out by hand: values as the raw JSON of `value`. */
function item(id: string, values: Record<string, string>): MetaItem {
  return { id, values: new Map(Object.entries(values)) };
}
const committed = { 'snapshot.committed': 'true' };
const ids = (n: number): string => `r${String(n).padStart(24, '0')}`;

describe('loading and listing as cacheManager does', () => {
  it('decodes values as Go does: int64 nanoseconds exactly, undecodable values take the getter default', () => {
    const it1 = item('a', {
      'cache.createdAt': '1796510138374739217',
      'cache.usageCount': '3',
      'cache.lastUsedAt': '1796510138374739218',
      'snapshot.size': '42',
    });
    expect(createdAtOf(it1)).toBe(1796510138374739217n);
    expect(lastUsedOf(it1)).toEqual({ count: 3n, at: 1796510138374739218n });
    expect(sizeOf(it1)).toBe(42n);
    expect(snapshotIdOf(it1)).toBe('a');
    // Not an integer: Go's decoder refuses it; the zero time, unknown size.
    const it2 = item('b', { 'cache.createdAt': '1.5', 'snapshot.size': '1e3', 'cache.snapshot': '5', 'cache.lastUsedAt': '7' });
    expect(createdAtOf(it2)).toBeUndefined();
    expect(sizeOf(it2)).toBe(-1n);
    expect(snapshotIdOf(it2)).toBe('');
    expect(lastUsedOf(it2)).toEqual({ count: 0n, at: undefined }); // no usage count: no last use either
    // null decodes to the zero value without an error.
    const it3 = item('c', { 'cache.createdAt': 'null', 'snapshot.size': 'null', 'cache.usageCount': '1', 'cache.lastUsedAt': '0' });
    expect(createdAtOf(it3)).toBe(0n);
    expect(sizeOf(it3)).toBe(0n);
    expect(lastUsedOf(it3)).toEqual({ count: 1n, at: undefined });
    // Beyond int64.
    expect(createdAtOf(item('d', { 'cache.createdAt': '9223372036854775808' }))).toBeUndefined();
  });

  it('a mutable record and its immutable twin are listed once, as the mutable one, unless the twin has children', () => {
    const m = item(ids(1), {});
    const i = item(ids(2), { ...committed, 'cache.equalMutable': JSON.stringify(ids(1)) });
    const r1 = loadRecords([m, i], () => true);
    expect(usageEntries(r1.records).map((e) => e.id)).toEqual([ids(1)]);
    const child = item(ids(3), { ...committed, 'cache.parent': JSON.stringify(ids(2)) });
    const r2 = loadRecords([m, i, child], () => true);
    expect(
      usageEntries(r2.records)
        .map((e) => e.id)
        .sort(),
    ).toEqual([ids(2), ids(3)]);
  });

  it('offline, children release their parents: nothing is in use', () => {
    const recs = [
      item(ids(1), committed),
      item(ids(2), { ...committed, 'cache.parent': JSON.stringify(ids(1)) }),
      item(ids(3), { ...committed, 'cache.parent': JSON.stringify(ids(2)) }),
      item(ids(4), { ...committed, 'cache.parent': JSON.stringify(ids(2)) }),
    ];
    const r = loadRecords(recs, () => true);
    expect(r.records.get(ids(2))!.refs).toBe(2);
    expect(usageEntries(r.records).map((e) => [e.id, e.inUse])).toEqual(recs.map((x) => [x.id, false]));
  });

  it('records dockerd deletes at start: marked deleted, an ancestor gone, an equal mutable gone, a lazy blob, a loop', () => {
    const recs = [
      item(ids(1), { ...committed, 'cache.deleted': 'true' }),
      item(ids(2), { ...committed, 'cache.parent': JSON.stringify(ids(1)) }),
      item(ids(3), { ...committed, 'cache.equalMutable': JSON.stringify(ids(99)) }),
      item(ids(4), { ...committed, 'cache.blobonly': 'true', 'cache.blob': '"sha256:0000000000000000000000000000000000000000000000000000000000000000"' }),
      item(ids(5), { ...committed, 'cache.parent': JSON.stringify(ids(6)) }),
      item(ids(6), { ...committed, 'cache.parent': JSON.stringify(ids(5)) }),
      item(ids(7), { ...committed, 'cache.equalMutable': JSON.stringify(ids(7)) }),
      item(ids(8), committed),
    ];
    const r = loadRecords(recs, () => false);
    expect([...r.records.keys()]).toEqual([ids(8)]);
    const why = new Map(r.unloadable.map((u) => [u.id, u.reason]));
    expect(why.get(ids(1))).toBe('it is marked deleted (a removal that did not finish)');
    expect(why.get(ids(2))).toContain(`its parent ${ids(1)} cannot be loaded`);
    expect(why.get(ids(3))).toBe(`its equal mutable record ${ids(99)} does not exist`);
    expect(why.get(ids(4))).toContain('is not in the content store');
    expect(why.get(ids(5))).toContain('loops back');
    expect(why.get(ids(6))).toContain('loops back');
    expect(why.get(ids(7))).toContain('loops back');
  });

  it('a 200 000-record parent chain loads without recursion', () => {
    const recs: MetaItem[] = [];
    for (let n = 0; n < 200_000; n++) recs.push(item(ids(n), n === 0 ? committed : { ...committed, 'cache.parent': JSON.stringify(ids(n - 1)) }));
    const r = loadRecords(recs.reverse(), () => true);
    expect(r.records.size).toBe(100_000);
    expect(r.unloadable.length).toBe(100_000);
    expect(r.unloadable[0]!.reason).toContain('longer than 100000');
    expect(usageEntries(r.records).every((e) => !e.inUse)).toBe(true);
  });
});

// -------------------------------------------------------------------------------------------
// Hostile build caches in a root, written with Go's bbolt

describe.runIf(needs('go'))('hostile build caches', () => {
  let base: string;
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'dataroot-bk-hostile-'));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  let n = 0;
  /** A root with an empty image store, an overlay2 home, and the given build cache. */
  function root(meta: BoltEditOp[], snaps: BoltEditOp[] = [], dirs: string[] = []): string {
    const r = join(base, `r${n++}`);
    for (const d of ['image/overlay2/imagedb/content/sha256', 'image/overlay2/layerdb/sha256', 'overlay2/l', 'buildkit'])
      mkdirSync(join(r, d), { recursive: true });
    if (meta.length > 0) boltEdit(join(r, 'buildkit/metadata_v2.db'), meta);
    if (snaps.length > 0) boltEdit(join(r, 'buildkit/snapshots.db'), snaps);
    for (const d of dirs) {
      mkdirSync(join(r, 'overlay2', d, 'diff'), { recursive: true });
      writeFileSync(join(r, 'overlay2', d, 'diff', 'f'), 'hello\n');
    }
    return r;
  }
  const rec = (id: string, values: Record<string, string>): BoltEditOp[] =>
    Object.entries(values).map(([k, v]) => ({ op: 'put', path: ['_main', id], key: k, value: v }));
  const A = 'aaaaaaaaaaaaaaaaaaaaaaaaa';
  const B = 'bbbbbbbbbbbbbbbbbbbbbbbbb';
  const C = 'ccccccccccccccccccccccccc';
  const base1 = {
    'snapshot.committed': '{"value":true}',
    'cache.createdAt': '{"value":1796510138374739217}',
    'cache.usageCount': '{"value":1}',
    'cache.lastUsedAt': '{"value":1796510138374739218}',
  };

  it('a size from the directory, the ID/type/times as stored; verify and gc keep the directory', async () => {
    const r = root(
      rec(A, base1),
      [
        { op: 'put', path: [A], key: 'committed', value: B },
        { op: 'put', path: [B], key: 'parent', value: '' },
      ],
      [B, C],
    );
    const j = JSON.parse((await run(['--json', 'builder', 'du', '--root', r])).stdout);
    expect(j.BuildCache).toEqual([
      {
        ID: A,
        Parent: '',
        Type: 'regular',
        Description: '',
        InUse: false,
        Shared: false,
        Size: 6,
        CreatedAt: expect.stringMatching(/^2026-12-05T..:35:38\.374739217/),
        LastUsedAt: expect.stringMatching(/\.374739218/),
        UsageCount: 1,
      },
    ]);
    expect(j.Dataroot.directories).toEqual([`overlay2/${B}`]);
    const g = JSON.parse((await run(['--json', 'gc', '--dry-run', '--root', r])).stdout);
    expect(g.removed).toEqual([join(r, 'overlay2', C)]);
  });

  it('a value Go cannot decode: the record is reported (dockerd fails to start its builder) and the others listed', async () => {
    const r = root([
      ...rec(A, base1),
      ...rec(B, { ...base1, 'cache.description': '{"value": "x", "index": 5}' }),
      ...rec(C, { ...base1, 'cache.description': 'not json' }),
    ]);
    const out = await run(['--json', 'builder', 'du', '--root', r]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('BUILDKIT_METADATA_INVALID');
    expect(JSON.parse(out.stdout).BuildCache.map((b: { ID: string }) => b.ID)).toEqual([A]);
  });

  it('IDs that would be paths are never followed: a committed "../../../etc", a parent outside, a chain ID that is not a digest', async () => {
    const r = root(
      [...rec(A, base1), ...rec(B, base1), ...rec(C, { ...base1, 'cache.snapshot': '{"value":"sha256:../../etc"}' })],
      [
        { op: 'put', path: [A], key: 'committed', value: '../../../etc' },
        { op: 'put', path: [B], key: 'parent', value: '/etc' },
        { op: 'put', path: [B], key: 'chainid', value: 'sha256:../../../../etc/passwd' },
      ],
      [B],
    );
    const out = await run(['--json', 'builder', 'du', '--root', r]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('ID_INVALID');
    expect(out.stderr).toContain('BUILDKIT_SIZE_UNREADABLE');
    const j = JSON.parse(out.stdout);
    expect(j.Dataroot.directories).toEqual([`overlay2/${B}`]);
    expect(j.BuildCache.map((b: { Size: number }) => b.Size)).toEqual([0, 0, 0]);
  });

  it('a metadata_v2.db that is a symlink out of the root, or a FIFO: reported, never followed or blocked on', async () => {
    const r1 = root([]);
    symlinkSync('/etc/passwd', join(r1, 'buildkit/metadata_v2.db'));
    const o1 = await run(['builder', 'du', '--root', r1]);
    expect(o1.code).toBe(1);
    expect(o1.stderr).toContain('SYMLINK_OUT_OF_ROOT');
    const r2 = root([]);
    expect(spawnSync('mkfifo', [join(r2, 'buildkit/metadata_v2.db')]).status).toBe(0);
    const o2 = await run(['builder', 'du', '--root', r2]);
    expect(o2.code).toBe(1);
    expect(o2.stderr).toContain('FILE_NOT_REGULAR');
  });

  it("a build cache that cannot be read whole: nothing that may be BuildKit's is an orphan (gc removes none of it)", async () => {
    // snapshots.db is a FIFO: which directory each record uses is unknown.
    const r1 = root(rec(A, base1), [], [B]);
    expect(spawnSync('mkfifo', [join(r1, 'buildkit/snapshots.db')]).status).toBe(0);
    // buildkit/ itself is a symlink (to a real build cache elsewhere): not followed, so unknown too.
    const r2 = root(rec(A, base1), [], [B]);
    const elsewhere = join(base, 'elsewhere-buildkit');
    rmSync(elsewhere, { recursive: true, force: true });
    spawnSync('mv', [join(r2, 'buildkit'), elsewhere]);
    symlinkSync(elsewhere, join(r2, 'buildkit'));
    // A record Go cannot decode: its directory is unknown.
    const r3 = root(rec(A, { ...base1, 'cache.parent': '{"value": ' }), [], [B]);
    for (const [r, code] of [
      [r1, 'FILE_NOT_REGULAR'],
      [r2, 'SYMLINK_NOT_FOLLOWED'],
      [r3, 'BUILDKIT_METADATA_INVALID'],
    ] as const) {
      const g = JSON.parse((await run(['--json', 'gc', '--dry-run', '--root', r])).stdout);
      expect(g.removed, r).toEqual([]);
      const du = await run(['builder', 'du', '--root', r]);
      expect(du.code, r).toBe(1);
      expect(du.stderr, r).toContain(code);
    }
    // The same root read whole: the stray directory is an orphan.
    const r4 = root(rec(A, base1), [{ op: 'put', path: [A], key: 'parent', value: '' }], [B]);
    const g4 = JSON.parse((await run(['--json', 'gc', '--dry-run', '--root', r4])).stdout);
    expect(g4.removed).toEqual([join(r4, 'overlay2', B)]);
  });

  it('a 20 000-record chain in a real bolt file is read in bounded time and memory', async () => {
    const ops: BoltEditOp[] = [];
    for (let k = 0; k < 20_000; k++)
      ops.push(
        ...rec(
          ids(k),
          k === 0
            ? { ...base1, 'snapshot.size': '{"value":1}' }
            : { ...base1, 'snapshot.size': '{"value":1}', 'cache.parent': JSON.stringify({ value: ids(k - 1) }) },
        ),
      );
    const r = root(ops);
    const t = Date.now();
    const out = await run(['--json', 'builder', 'du', '--root', r]);
    expect(out.code).toBe(0);
    const j = JSON.parse(out.stdout);
    expect(j.BuildCache.length).toBe(20_000);
    expect(j.BuilderSize).toBe(20_000);
    expect(Date.now() - t).toBeLessThan(60_000);
  });

  it('no buildkit directory: an empty listing, as docker prints it', async () => {
    const r = root([]);
    rmSync(join(r, 'buildkit'), { recursive: true });
    const out = await run(['builder', 'du', '--root', r]);
    expect(out.code).toBe(0);
    expect(out.stdout.split('\n').slice(0, 3)).toEqual([
      'Build cache usage: 0B',
      '',
      'CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED',
    ]);
  });

  it('diff counts the build-cache records on each side', async () => {
    const l = root(rec(A, base1));
    const r = root([...rec(A, base1), ...rec(B, base1), ...rec(C, { ...base1, 'cache.equalMutable': JSON.stringify({ value: B }) })]);
    const out = await run(['--json', 'diff', l, r]);
    expect(JSON.parse(out.stdout).summary.buildCache).toEqual({ left: 1, right: 2, added: [B], removed: [] });
  });
});

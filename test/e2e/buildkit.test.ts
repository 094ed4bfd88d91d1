import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Dockerd, type Driver } from '../support/dockerd.js';
import { needs, REQUIRE_E2E } from '../support/env.js';
import { run } from '../support/cli.js';
import { api } from '../support/scenario.js';
import { boltEdit, oracle, type BoltEditOp } from '../support/gobolt.js';

/**
 * Issue 14, BuildKit's build cache: builds made by a real dockerd 20.10 with BuildKit (the Debian
 * 20.10 CLI, `/usr/bin/docker`; the newer CLI on PATH would need buildx), then read offline.
 * `builder du` must equal the "Build cache usage" part of `docker system df -v` (and its --json
 * the API's BuildCache objects, times included), `verify` must report no orphan, `gc` must keep
 * every directory and layer BuildKit references, and after `gc` the daemon must still hit the
 * cache.
 *
 * The first `docker system df` after a start computes the sizes dockerd has not cached yet (and
 * commits a mutable cache mount into a new record), so the root is copied before it: `builder du`
 * on the copy is compared with that first df (sizes computed offline, as dockerd computes them),
 * and on the root afterwards with a second df.
 */

type Obj = Record<string, any>;
/** Debian docker.io's CLI (20.10): it builds with BuildKit itself (a newer CLI on PATH needs buildx). */
const DOCKER_20 = '/usr/bin/docker';

/** The 20.10 CLI is there, or (under DATAROOT_REQUIRE_E2E=1) its absence fails the run. */
function haveDocker20(): boolean {
  if (existsSync(DOCKER_20)) return true;
  if (REQUIRE_E2E) throw new Error(`DATAROOT_REQUIRE_E2E=1 but ${DOCKER_20} (Debian docker.io) is not installed`);
  return false;
}

function dk(d: Dockerd, args: string[], opts: { check?: boolean; cwd?: string } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(DOCKER_20, args, { env: { ...d.env(), DOCKER_BUILDKIT: '1' }, encoding: 'utf8', cwd: opts.cwd, maxBuffer: 64 << 20 });
  if (opts.check !== false && r.status !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

function cpA(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  const r = spawnSync('cp', ['-a', `${from}/.`, to]);
  if (r.status !== 0) throw new Error(`cp -a failed: ${String(r.stderr)}`);
}

/** The "Build cache usage: …" part of `docker system df -v` (or of `builder du`, without its totals block). */
function section(text: string): string[] {
  const s = text.slice(text.indexOf('Build cache usage:'));
  const end = s.indexOf('\n\nTYPE');
  return (end >= 0 ? s.slice(0, end + 1) : s).split('\n').filter((l, i, a) => !(i === a.length - 1 && l === ''));
}

/** Column text of a docker table line (cells are separated by at least three spaces). */
const cells = (line: string): string[] => line.split(/ {3,}/);

/**
 * Compares a `builder du` section with docker's: the header line exactly; each table line's
 * first three columns with their padding (the layout docker's tabwriter gives them), and its
 * USAGE and SHARED columns. CREATED and LAST USED are relative to the moment of printing; their
 * absolute values are compared through --json.
 */
function expectSameSection(ours: string[], docker: string[]): void {
  expect(ours.length).toBe(docker.length);
  expect(ours[0]).toBe(docker[0]);
  expect(ours[1]).toBe('');
  const createdCol = docker[2]!.indexOf('CREATED');
  expect(ours[2]!.indexOf('CREATED')).toBe(createdCol);
  expect(ours[2]!.slice(0, createdCol)).toBe(docker[2]!.slice(0, createdCol));
  for (let i = 3; i < docker.length; i++) {
    expect(ours[i]!.slice(0, createdCol), docker[i]).toBe(docker[i]!.slice(0, createdCol));
    expect(cells(ours[i]!).slice(-2), docker[i]).toEqual(cells(docker[i]!).slice(-2));
  }
}

/**
 * Rewrites a root's metadata_v2.db into the v1 metadata.db of 18.09/19.03, the form dockerd
 * 20.10 migrates at start: a record's ID is its snapshot key (an image layer's record is named
 * by its chainID), and committed state and parents live in snapshots.db only. The records are
 * read with Go's bbolt (the oracle's dump), not with dataroot.
 */
function toV1(root: string): void {
  const hex = (h: string): string => Buffer.from(h, 'hex').toString('utf8');
  const dump = oracle(['dump', join(root, 'buildkit/metadata_v2.db')]);
  if (dump.status !== 0) throw new Error(dump.stderr);
  const recs = new Map<string, Map<string, string>>();
  for (const line of dump.stdout.trim().split('\n')) {
    const l = JSON.parse(line) as { path: string[]; key: string; value?: string; bucket?: boolean };
    if (l.path.length !== 2 || hex(l.path[0]!) !== '_main' || l.bucket === true) continue;
    const id = hex(l.path[1]!);
    if (!recs.has(id)) recs.set(id, new Map());
    recs.get(id)!.set(hex(l.key), hex(l.value ?? ''));
  }
  const rename = new Map<string, string>();
  for (const [id, v] of recs) {
    const snap = v.get('cache.snapshot');
    const key = snap ? (JSON.parse(snap) as { value: string }).value : '';
    if (key.startsWith('sha256:')) rename.set(id, key);
  }
  const keep = [
    'cache.createdAt',
    'cache.lastUsedAt',
    'cache.usageCount',
    'cache.description',
    'cache.recordType',
    'cache.cachePolicy',
    'cache.equalMutable',
    'snapshot.size',
  ];
  const ops: BoltEditOp[] = [];
  for (const [id, v] of recs) {
    for (const k of keep) {
      let x = v.get(k);
      if (x === undefined || x === '') continue;
      if (k === 'cache.equalMutable') {
        const t = (JSON.parse(x) as { value: string }).value;
        x = JSON.stringify({ value: rename.get(t) ?? t });
      }
      ops.push({ op: 'put', path: ['_main', rename.get(id) ?? id], key: k, value: x });
    }
  }
  expect(rename.size).toBeGreaterThan(0);
  boltEdit(join(root, 'buildkit/metadata.db'), ops);
  rmSync(join(root, 'buildkit/metadata_v2.db'));
}

const byId = (a: Obj, b: Obj): number => (a['ID'] < b['ID'] ? -1 : a['ID'] > b['ID'] ? 1 : 0);

interface DfCapture {
  /** GET /system/df, asked first: a df has side effects (it commits a cache mount whose size is unknown, bumping its use). */
  api: Obj;
  verbose: string;
  summary: string;
}

async function captureDf(d: Dockerd): Promise<DfCapture> {
  const du = (await api(d, '/system/df')) as Obj;
  const verbose = dk(d, ['system', 'df', '-v']).stdout;
  const summary = dk(d, ['system', 'df']).stdout;
  return { api: du, verbose, summary };
}

describe.runIf(needs('dockerd', 'busybox', 'go') && haveDocker20())('BuildKit build cache e2e', () => {
  describe.each(['overlay2', 'vfs'] as Driver[])('%s', (driver) => {
    const d = new Dockerd(driver);
    let work: string;
    let fresh: string;
    let ctxDir: string;
    let df1: DfCapture;
    let df2: DfCapture;
    let failedBuild: SpawnSyncReturns<string>;

    const build = (name: string, dockerfile: string, files: Record<string, string> = {}, tag?: string): SpawnSyncReturns<string> => {
      const dir = join(ctxDir, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'Dockerfile'), dockerfile);
      for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
      return dk(d, ['build', '--network', 'none', '--progress', 'plain', ...(tag !== undefined ? ['-t', tag] : []), dir], {
        check: tag !== undefined && !name.startsWith('fail'),
      });
    };
    const APP = [
      'FROM base:busybox AS build',
      'RUN mkdir /out && echo built > /out/a && dd if=/dev/zero of=/out/big bs=1k count=300 && ln /out/big /out/big2 && ln -s a /out/link',
      'FROM base:busybox',
      'COPY hello.txt /hello.txt',
      'COPY --from=build /out /out',
      'RUN echo final > /final && rm /etc/group',
      '',
    ].join('\n');

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'dataroot-buildkit-e2e-'));
      ctxDir = join(work, 'ctx');
      fresh = join(work, 'fresh');
      await d.start();
      d.importBusybox('base:busybox');
      build('app', APP, { 'hello.txt': 'hello\n' }, 'bk/app:1');
      build(
        'cachemount',
        'FROM base:busybox\nRUN --mount=type=cache,target=/cache echo cached >> /cache/log && dd if=/dev/zero of=/cache/blob bs=1k count=50 && cp /cache/log /log\n',
        {},
        'bk/cm:1',
      );
      failedBuild = build('fail', 'FROM base:busybox\nRUN echo partial > /p && dd if=/dev/zero of=/q bs=1k count=10 && false\n', {}, 'bk/fail:1');
      build('gone', 'FROM base:busybox\nRUN echo gone > /gone && dd if=/dev/zero of=/gonefile bs=1k count=20\n', {}, 'bk/gone:1');
      dk(d, ['rmi', 'bk/gone:1']);
      await d.stop();
      cpA(d.root, fresh);
      await d.start();
      df1 = await captureDf(d);
      df2 = await captureDf(d);
      await d.stop();
    }, 300_000);
    afterAll(async () => {
      await d.cleanup();
      rmSync(work, { recursive: true, force: true });
    });

    it('the scenario is what it claims: a failed build, a dangling record, a cache mount, records shared with images', () => {
      expect(failedBuild.status).not.toBe(0);
      const recs = df1.api['BuildCache'] as Obj[];
      expect(recs.length).toBeGreaterThanOrEqual(9);
      expect(recs.some((r) => r['Type'] === 'exec.cachemount')).toBe(true);
      expect(recs.some((r) => r['Type'] === 'source.local')).toBe(true);
      expect(recs.some((r) => r['Shared'] === true)).toBe(true);
      expect(recs.some((r) => String(r['Description']).includes('echo gone') && r['Shared'] === false)).toBe(true);
    });

    it('builder du on the root as copied before any df equals the first docker system df (sizes computed offline), times included', async () => {
      const r = await run(['--json', 'builder', 'du', '--root', fresh]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout) as Obj;
      expect([...j['BuildCache']].sort(byId)).toEqual([...df1.api['BuildCache']].sort(byId));
      expect(j['BuilderSize']).toBe(df1.api['BuilderSize']);
      // Some sizes were not cached by dockerd: they were computed from the directories here.
      expect((j['Dataroot'].items as Obj[]).some((i) => i['sizeFrom'] === 'directory')).toBe(true);
    });

    it('builder du on the root after the daemon stopped equals the second docker system df -v, in its order', async () => {
      const r = await run(['builder', 'du', '--root', d.root]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expectSameSection(section(r.stdout), section(df2.verbose));
      const j = JSON.parse((await run(['--json', 'builder', 'du', '--root', d.root])).stdout) as Obj;
      expect([...j['BuildCache']].sort(byId)).toEqual([...df2.api['BuildCache']].sort(byId));
      expect(j['BuilderSize']).toBe(df2.api['BuilderSize']);
      // The rows in the CLI's order: the 12-character IDs of docker's table, top to bottom.
      const dockerIds = section(df2.verbose)
        .slice(3)
        .map((l) => cells(l)[0]);
      expect((j['BuildCache'] as Obj[]).map((b) => String(b['ID']).slice(0, 12))).toEqual(dockerIds);
    });

    it('the totals equal the Build Cache row of docker system df', async () => {
      const r = await run(['builder', 'du', '--root', d.root]);
      const ours = r.stdout.split('\n').find((l) => l.startsWith('Build Cache'))!;
      const docker = df2.summary.split('\n').find((l) => l.startsWith('Build Cache'))!;
      expect(cells(ours)).toEqual(cells(docker));
    });

    it('verify --deep reports no orphan (no finding at all) and gc --dry-run removes nothing', async () => {
      const v = await run(['--json', 'verify', '--deep', '--root', d.root]);
      expect((JSON.parse(v.stdout) as Obj)['findings']).toEqual([]);
      expect(v.code).toBe(0);
      const g = await run(['--json', 'gc', '--dry-run', '--root', d.root]);
      expect((JSON.parse(g.stdout) as Obj)['removed']).toEqual([]);
    });

    it('a 25-character directory BuildKit does not reference is an orphan, and so is what a record dockerd deletes at start leaves; dockerd then lists what builder du predicted', async () => {
      const copy = join(work, 'tampered');
      cpA(d.root, copy);
      onTestFinished(() => rmSync(copy, { recursive: true, force: true }));
      const j = JSON.parse((await run(['--json', 'builder', 'du', '--root', copy])).stdout) as Obj;
      const find = (text: string): { id: string; dir: string } => {
        const b = (j['BuildCache'] as Obj[]).find((x) => String(x['Description']).includes(text))!;
        return { id: b['ID'], dir: (j['Dataroot'].items as Obj[]).find((i) => i['ID'] === b['ID'])!['dir'] };
      };
      // The build stage's RUN (never exported: its data is only BuildKit's), and the RUN of the removed image (a layer BuildKit holds).
      const stage = find('mkdir /out');
      const gone = find('echo gone');
      for (const x of [stage, gone]) expect(existsSync(join(copy, x.dir)), x.dir).toBe(true);
      const stray = driver === 'vfs' ? 'vfs/dir/zzzzzzzzzzzzzzzzzzzzzzzzz' : 'overlay2/zzzzzzzzzzzzzzzzzzzzzzzzz';
      mkdirSync(join(copy, stray, driver === 'vfs' ? '' : 'diff'), { recursive: true });
      boltEdit(
        join(copy, 'buildkit/metadata_v2.db'),
        [stage, gone].map((x) => ({ op: 'put' as const, path: ['_main', x.id], key: 'cache.deleted', value: '{"value":true}' })),
      );

      const after = await run(['--json', 'builder', 'du', '--root', copy]);
      expect(after.code).toBe(1);
      expect(after.stderr).toContain('BUILDKIT_RECORD_DELETED_AT_START');
      const predicted = JSON.parse(after.stdout) as Obj;
      const ids = (predicted['BuildCache'] as Obj[]).map((b) => b['ID']);
      expect(ids).not.toContain(stage.id);
      expect(ids).not.toContain(gone.id);
      expect(ids.length).toBe(j['BuildCache'].length - 2);
      const deleted = predicted['Dataroot'].deletedAtStart as Obj[];
      expect(deleted.find((x) => x['ID'] === gone.id)).toEqual({ ID: gone.id, reason: 'it is marked deleted (a removal that did not finish)' });
      expect(deleted.find((x) => x['ID'] === stage.id)).toEqual({ ID: stage.id, reason: 'it is marked deleted (a removal that did not finish)' });

      // verify: the stray dir and the stage's dir are orphans (the latter with its reason); the removed image's layer is an orphan layer now.
      const v = JSON.parse((await run(['--json', 'verify', '--root', copy])).stdout) as Obj;
      const orphanDirs = (v['findings'] as Obj[]).filter((f) => f['code'] === 'ORPHAN_DRIVER_DIR');
      const base = (p: string): string => p.split('/').pop()!;
      expect(orphanDirs.map((f) => f['subject']).sort()).toEqual([base(stage.dir), 'zzzzzzzzzzzzzzzzzzzzzzzzz'].sort());
      expect(orphanDirs.find((f) => f['subject'] === base(stage.dir))!['message']).toContain(
        `used only by build-cache record ${stage.id}, which dockerd deletes at start (it is marked deleted`,
      );
      const g = JSON.parse((await run(['--json', 'gc', '--dry-run', '--root', copy])).stdout) as Obj;
      const removed = g['removed'] as string[];
      for (const p of [stray, stage.dir, gone.dir]) expect(removed, p).toContain(join(copy, p));

      // dockerd itself: it drops both records at start, lists exactly the rest, and removes their data.
      const d2 = new Dockerd(driver);
      try {
        rmSync(d2.root, { recursive: true, force: true });
        cpA(copy, d2.root);
        await d2.start();
        const du = (await api(d2, '/system/df')) as Obj;
        await d2.stop();
        expect([...du['BuildCache']].sort(byId)).toEqual([...predicted['BuildCache']].sort(byId));
        expect(existsSync(join(d2.root, stage.dir))).toBe(false);
        expect(existsSync(join(d2.root, gone.dir))).toBe(false);
      } finally {
        await d2.cleanup();
      }
    }, 120_000);

    it('an 18.09/19.03 build cache (metadata.db, v1) reads as dockerd 20.10 lists it after migrating it', async () => {
      const v1 = new Dockerd(driver);
      try {
        rmSync(v1.root, { recursive: true, force: true });
        cpA(d.root, v1.root);
        toV1(v1.root);
        const r = await run(['--json', 'builder', 'du', '--root', v1.root]);
        expect(r.stderr).toBe('');
        const predicted = JSON.parse(r.stdout) as Obj;
        expect(predicted['Dataroot'].metadataFile).toBe('buildkit/metadata.db');
        expect((predicted['BuildCache'] as Obj[]).some((b) => String(b['ID']).startsWith('sha256:'))).toBe(true);
        const v = await run(['--json', 'verify', '--root', v1.root]);
        expect((JSON.parse(v.stdout) as Obj)['findings']).toEqual([]);
        await v1.start();
        const du = (await api(v1, '/system/df')) as Obj;
        await v1.stop();
        expect(existsSync(join(v1.root, 'buildkit/metadata_v2.db'))).toBe(true);
        expect([...du['BuildCache']].sort(byId)).toEqual([...predicted['BuildCache']].sort(byId));
        expect(du['BuilderSize']).toBe(predicted['BuilderSize']);
      } finally {
        await v1.cleanup();
      }
    }, 120_000);

    it('a record Go cannot decode: builder du names it, and dockerd indeed does not start', async () => {
      const bad = new Dockerd(driver);
      try {
        rmSync(bad.root, { recursive: true, force: true });
        cpA(d.root, bad.root);
        const j = JSON.parse((await run(['--json', 'builder', 'du', '--root', bad.root])).stdout) as Obj;
        const victim = String((j['BuildCache'] as Obj[])[0]!['ID']);
        boltEdit(join(bad.root, 'buildkit/metadata_v2.db'), [{ op: 'put', path: ['_main', victim], key: 'cache.description', value: 'not json' }]);
        const r = await run(['builder', 'du', '--root', bad.root]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('BUILDKIT_METADATA_INVALID');
        expect(r.stderr).toContain(victim);
        const log = await bad.startExpectingFailure();
        expect(log).toContain('invalid character');
      } finally {
        await bad.cleanup();
      }
    }, 120_000);

    it('after gc the daemon starts and the rebuild hits the cache', async () => {
      const g = await run(['gc', '--root', d.root]);
      expect(g.code).toBe(0);
      await d.start();
      try {
        const r = build('app', APP, { 'hello.txt': 'hello\n' }, 'bk/app:2');
        const out = `${r.stdout}${r.stderr}`;
        // Every step of the Dockerfile is answered from the cache.
        for (const step of ['RUN mkdir /out', 'COPY hello.txt', 'COPY --from=build', 'RUN echo final']) {
          const n = new RegExp(`#(\\d+) \\[[^\\]]*\\] ${step.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).exec(out)?.[1];
          expect(n, `${step}:\n${out}`).toBeDefined();
          expect(out, step).toContain(`#${n} CACHED`);
        }
        expect(dk(d, ['system', 'df', '-v']).status).toBe(0);
      } finally {
        await d.stop();
      }
    }, 120_000);
  });
});

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goHumanSize, progressBytes } from '../../src/formats/containerd/units.js';
import { buildCdScenario, ctrRows, leaveGarbage, recordCtr, type CdScenario, type CtrRecord } from '../support/cdscenario.js';
import { closeSync, openSync, readFileSync, readdirSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { run } from '../support/cli.js';
import { Containerd } from '../support/containerd.js';
import { needs } from '../support/env.js';

/**
 * Issue 15's acceptance against a real containerd 1.6: a root made by `ctr` (imports into three
 * namespaces, kept containers, snapshots by hand, a lease, an interrupted import), what ctr
 * printed while the daemon ran, and what dataroot reads once it has stopped, field by field.
 */

type Obj = Record<string, any>;
const NS = ['default', 'k8s.io', 'moby'];

describe.runIf(needs('containerd', 'ctr', 'runc', 'busybox'))('containerd e2e: dataroot reads what ctr reports', () => {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-cdwork-'));
  const d = new Containerd();
  let scn: CdScenario;
  let rec: CtrRecord;
  const diffTars: Record<string, string[]> = {};
  let looseBlob: string | undefined;
  const cd = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => run(['--containerd-root', d.root, 'containerd', ...args]);
  const json = async (args: string[]): Promise<any> => {
    const r = await cd([...args, '--json']);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    await d.start();
    scn = await buildCdScenario(d, work);
    // containerd's own differ as the oracle of container diff: the tar of changes of each
    // container snapshot against its parent (whiteouts name deletions).
    for (const [ns, id] of [
      ['moby', 'c-changes'],
      ['default', 'c-default'],
    ] as const) {
      const file = join(work, `${id}.diff`);
      spawnSync('sh', ['-c', `ctr -a '${d.sock}' -n ${ns} snapshots diff ${id} > '${file}'`]);
      const tar = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
      if (tar.status === 0) diffTars[`${ns}/${id}`] = tar.stdout.split('\n').filter(Boolean);
    }
    const blobsBefore = d.ctr(['content', 'ls', '-q'], { ns: 'default' }).stdout;
    leaveGarbage(d, scn);
    looseBlob = d
      .ctr(['content', 'ls', '-q'], { ns: 'default' })
      .stdout.split('\n')
      .filter(Boolean)
      .find((x) => !blobsBefore.includes(x));
    rec = recordCtr(d, NS);
    await d.stop();
  });
  afterAll(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('the scenario has what the issue asks for', () => {
    expect(ctrRows(rec.namespaces).map((r) => r[0])).toEqual(NS);
    expect(ctrRows(rec.images['default']!).length).toBeGreaterThanOrEqual(4);
    expect(ctrRows(rec.leases['default']!).length).toBeGreaterThanOrEqual(2);
    expect(ctrRows(rec.active['default']!, /\t+/).length).toBe(1);
    expect(rec.snapshots['default']).toMatch(/View/);
    expect(Object.keys(diffTars)).toEqual(['moby/c-changes', 'default/c-default']);
  });

  it('namespaces: names and labels as ctr namespaces ls', async () => {
    const ours = await json(['namespaces']);
    const theirs = ctrRows(rec.namespaces);
    expect(ours.map((n: Obj) => n.Name)).toEqual(theirs.map((r) => r[0]));
    for (const r of theirs) {
      const n = ours.find((x: Obj) => x.Name === r[0]);
      const labels = Object.entries(n.Labels ?? {})
        .map(([k, v]) => `${k}=${String(v)}`)
        .sort()
        .join(',');
      expect(labels).toBe(r[1] ?? '');
    }
  });

  it.each(NS)('images (%s): REF, TYPE, DIGEST, SIZE, PLATFORMS, LABELS as ctr images ls; STATUS, UNPACKED as ctr images check', async (ns) => {
    const ours = await json(['images', '-n', ns]);
    const theirs = ctrRows(rec.images[ns]!);
    expect(ours.length).toBe(theirs.length);
    for (const [i, r] of theirs.entries()) {
      const o = ours[i];
      expect([o.Name, o.Target.mediaType, o.Target.digest]).toEqual(r.slice(0, 3));
      // SIZE is "1.9 MiB": two cells after splitting on spaces.
      expect(progressBytes(o.Dataroot.size)).toBe(`${r[3]} ${r[4]}`);
      expect(o.Dataroot.platforms).toBe(r[5]);
      expect(
        Object.entries(o.Labels ?? {})
          .map(([k, v]) => `${k}=${String(v)}`)
          .sort()
          .join(',') || '-',
      ).toBe(r[6]);
    }
    const check = ctrRows(rec.check[ns]!);
    for (const r of check) {
      const o = ours.find((x: Obj) => x.Name === r[0]);
      expect(`${o.Dataroot.status}`).toBe(`${r[3]} ${r[4]}`);
      expect(String(o.Dataroot.unpacked)).toBe(r[r.length - 1]);
    }
    // The table prints the same cells.
    const t = await cd(['images', '-n', ns]);
    expect(t.code).toBe(0);
    for (const r of theirs) expect(t.stdout).toContain(r[0]);
  });

  it.each(NS)('content (%s): DIGEST, SIZE, LABELS as ctr content ls, every blob present', async (ns) => {
    const ours = await json(['content', '-n', ns]);
    const theirs = ctrRows(rec.content[ns]!, /\t+/);
    expect(ours.map((c: Obj) => c.Digest)).toEqual(theirs.map((r) => r[0]));
    for (const [i, r] of theirs.entries()) {
      expect(goHumanSize(ours[i].Size)).toBe(r[1]);
      const labels = (r[3] === '-' ? [] : r[3]!.split(',')).sort();
      expect(
        Object.entries(ours[i].Labels ?? {})
          .map(([k, v]) => `${k}=${String(v)}`)
          .sort(),
      ).toEqual(labels);
      expect(ours[i].Dataroot.state).toBe('present');
    }
  });

  it.each(NS)(
    'snapshots (%s): KEY, PARENT, KIND as ctr snapshots ls; every field of ctr snapshots info; SIZE and INODES as ctr snapshots usage -b',
    async (ns) => {
      const ours = await json(['snapshots', '-n', ns]);
      const theirs = ctrRows(rec.snapshots[ns]!);
      expect(ours.map((s: Obj) => [s.Name, ...(s.Parent !== undefined ? [s.Parent] : []), s.Kind])).toEqual(theirs);
      for (const s of ours) {
        const { Dataroot: _d, ...info } = s;
        expect(info).toEqual(rec.info[ns]![s.Name]);
      }
      const usage = ctrRows(rec.usage[ns]!);
      for (const u of usage) {
        const s = ours.find((x: Obj) => x.Name === u[0]);
        expect([String(s.Dataroot.usage.Size), String(s.Dataroot.usage.Inodes)], u[0]).toEqual([u[1], u[2]]);
        expect(s.Dataroot.id).toMatch(/^[1-9][0-9]*$/);
      }
    },
  );

  it.each(NS)('snapshots --tree (%s) prints what ctr snapshots tree prints', async (ns) => {
    const r = await cd(['snapshots', '--tree', '-n', ns]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(rec.tree[ns]);
  });

  it.each(['moby', 'default'])('containers (%s): every field of ctr containers info', async (ns) => {
    const ours = await json(['containers', '-n', ns]);
    const ids = ctrRows(rec.containersLs[ns]!).map((r) => r[0]);
    expect(ours.map((c: Obj) => c.ID)).toEqual(ids);
    for (const c of ours) {
      const { Dataroot, ...rest } = c;
      expect(rest).toEqual(rec.containers[ns]![c.ID]);
      // The runtime options decoded: the runc root given to ctr run.
      expect(Dataroot.runtimeOptions).toEqual({ Root: d.runcRoot });
      expect(Dataroot.specType).toBe('types.containerd.io/opencontainers/runtime-spec/1/Spec');
    }
    const one = await json(['container', 'inspect', ids[0]!, '-n', ns]);
    const { Dataroot: _d2, ...first } = one[0];
    expect(first).toEqual(rec.containers[ns]![ids[0]!]);
  });

  it("container diff: deletions as containerd's own differ whites them out, additions and changes as it writes them", async () => {
    for (const [key, tar] of Object.entries(diffTars)) {
      const [ns, id] = key.split('/') as [string, string];
      const r = await cd(['container', 'diff', id, '-n', ns]);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.split('\n').filter(Boolean);
      const deleted = lines
        .filter((l) => l.startsWith('D '))
        .map((l) => l.slice(2))
        .sort();
      const whiteouts = tar
        .filter((p) => /(^|\/)\.wh\.[^/]+$/.test(p) && !p.endsWith('.wh..wh..opq'))
        .map((p) => `/${p.replace(/\.wh\./, '')}`)
        .sort();
      const opaque = tar.filter((p) => p.endsWith('.wh..wh..opq')).map((p) => `/${p.replace(/\/\.wh\.\.wh\.\.opq$/, '')}`);
      // An opaque directory hides what the parent had inside it: each such name is deleted in ours.
      const deletedOutsideOpaque = deleted.filter((p) => !opaque.some((o) => p.startsWith(`${o}/`)));
      expect(deletedOutsideOpaque, key).toEqual(whiteouts.filter((p) => !opaque.some((o) => p.startsWith(`${o}/`))));
      const files = tar
        .filter((p) => !p.endsWith('/') && !/\.wh\./.test(p))
        .map((p) => `/${p}`)
        .sort();
      const addedOrChanged = lines.filter((l) => !l.startsWith('D ')).map((l) => l.slice(2));
      for (const f of files) expect(addedOrChanged, `${key}: ${f}`).toContain(f);
    }
    const r = await cd(['container', 'diff', 'c-changes', '-n', 'moby']);
    const lines = r.stdout.split('\n').filter(Boolean);
    for (const l of ['A /new.txt', 'C /etc/keep', 'D /app/hello', 'A /opt/dir/b', 'D /opt/dir/sub', 'A /tmp/d/e/f']) expect(lines).toContain(l);
  });

  it.each(NS)('leases (%s): ID, CREATED AT, LABELS as ctr leases ls', async (ns) => {
    const ours = await json(['leases', '-n', ns]);
    const theirs = ctrRows(rec.leases[ns]!);
    expect(ours.map((l: Obj) => l.ID)).toEqual(theirs.map((r) => r[0]));
    for (const [i, r] of theirs.entries()) {
      expect(Math.floor(Date.parse(ours[i].CreatedAt) / 1000)).toBe(Math.floor(Date.parse(r[1]!) / 1000));
      expect(
        Object.entries(ours[i].Labels ?? {})
          .map(([k, v]) => `${k}=${String(v)}`)
          .sort()
          .join(',') || '-',
      ).toBe(r[2]);
    }
  });

  it('ingests: the interrupted import, as ctr content active lists it, held by the lease ctr took', async () => {
    const ours = await json(['ingests', '-n', 'default']);
    const theirs = ctrRows(rec.active['default']!, /\t+/);
    expect(ours.map((i: Obj) => i.Ref)).toEqual(theirs.map((r) => r[0]));
    expect(goHumanSize(ours[0].Offset)).toBe(theirs[0]![1]);
    expect(ours[0].Offset).toBeGreaterThan(0);
    expect(ours[0].Dataroot.leases.length).toBe(1);
    const leases = await json(['leases', '-n', 'default']);
    const holder = leases.find((l: Obj) => l.ID === ours[0].Dataroot.leases[0]);
    expect(holder.Labels['containerd.io/gc.expire']).toBeDefined();
    expect(holder.Dataroot.resources.some((x: Obj) => x.Type === 'ingests')).toBe(true);
  });

  it('image inspect: the index kept by --index-name is walked to its platform manifest, config, layers and (not unpacked) snapshot', async () => {
    const [img] = await json(['image', 'inspect', 'indexed:1', '-n', 'default']);
    expect(img.Target.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(img.Dataroot.kind).toBe('index');
    expect(img.Dataroot.manifests.length).toBeGreaterThanOrEqual(1);
    const m = img.Dataroot.manifests.find((x: Obj) => x.platform === 'linux/amd64') ?? img.Dataroot.manifests[0];
    expect(m.present).toBe(true);
    expect(m.config.present).toBe(true);
    expect(m.layers.every((l: Obj) => l.present)).toBe(true);
  });

  it('reads never write: the root is byte for byte the same after every command', async () => {
    const before = spawnSync('sh', ['-c', `cd '${d.root}' && find . -printf '%p %s %T@ %m\\n' | sort | sha256sum`], { encoding: 'utf8' }).stdout;
    for (const c of ['namespaces', 'images', 'content', 'snapshots', 'containers', 'leases', 'ingests']) expect((await cd([c])).code).toBeLessThanOrEqual(1);
    const after = spawnSync('sh', ['-c', `cd '${d.root}' && find . -printf '%p %s %T@ %m\\n' | sort | sha256sum`], { encoding: 'utf8' }).stdout;
    expect(after).toBe(before);
    expect(scn.dockerLayers.length).toBe(1);
  });

  /** A copy of the root to damage (cp -a keeps the whiteout devices and xattrs). */
  const copyRoot = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'dataroot-cdcopy-'));
    const r = spawnSync('cp', ['-a', `${d.root}/.`, dir]);
    expect(r.status).toBe(0);
    return dir;
  };
  const verify = async (root: string, extra: string[] = []): Promise<{ code: number; out: any }> => {
    const r = await run(['--containerd-root', root, 'verify', '--json', ...extra]);
    return { code: r.code, out: JSON.parse(r.stdout || '{}') };
  };
  const codes = (out: any): string[] => out.findings.filter((f: Obj) => f.severity === 'error').map((f: Obj) => f.code);

  it('verify --deep of the root ctr made: no errors; the ingest is a leftover; every unpacked layer matches its snapshot', async () => {
    const { code, out } = await verify(d.root, ['--deep']);
    expect(codes(out), JSON.stringify(out.findings.slice(0, 5))).toEqual([]);
    expect(code).toBe(0);
    expect(out.checked.layers).toBeGreaterThanOrEqual(4);
    expect(out.findings.some((f: Obj) => f.code === 'CONTAINERD_INGEST_LEFTOVER')).toBe(true);
  });

  it('verify names a blob with one flipped byte, a truncated blob, a deleted snapshot directory (exit 1)', async () => {
    const root = copyRoot();
    try {
      const blobs = readdirSync(join(root, 'io.containerd.content.v1.content/blobs/sha256')).sort();
      const flip = join(root, 'io.containerd.content.v1.content/blobs/sha256', blobs[0]!);
      const b = readFileSync(flip);
      const fd = openSync(flip, 'r+');
      writeSync(fd, Buffer.from([b[Math.floor(b.length / 2)]! ^ 0x01]), 0, 1, Math.floor(b.length / 2));
      closeSync(fd);
      const trunc = join(root, 'io.containerd.content.v1.content/blobs/sha256', blobs[1]!);
      truncateSync(trunc, Math.floor(readFileSync(trunc).length / 2));
      const snaps = readdirSync(join(root, 'io.containerd.snapshotter.v1.overlayfs/snapshots')).sort((x, y) => Number(x) - Number(y));
      spawnSync('rm', ['-rf', join(root, 'io.containerd.snapshotter.v1.overlayfs/snapshots', snaps[0]!)]);
      const { code, out } = await verify(root);
      expect(code).toBe(1);
      const errs = out.findings.filter((f: Obj) => f.severity === 'error');
      expect(
        errs
          .filter((f: Obj) => f.code === 'CONTAINERD_BLOB_DIGEST_MISMATCH')
          .map((f: Obj) => f.subject)
          .sort(),
      ).toEqual([`blob sha256:${blobs[0]}`, `blob sha256:${blobs[1]}`]);
      expect(errs.some((f: Obj) => f.code === 'CONTAINERD_BLOB_SIZE_MISMATCH' && f.subject === `blob sha256:${blobs[1]}`)).toBe(true);
      expect(errs.some((f: Obj) => f.code === 'CONTAINERD_SNAPSHOT_DIR_MISSING' && f.paths[0].endsWith(`/snapshots/${snaps[0]}/fs`))).toBe(true);
      // The human output names the tampered blob too.
      const h = await run(['--containerd-root', root, 'verify']);
      expect(h.code).toBe(1);
      expect(h.stdout).toContain(`CONTAINERD_BLOB_DIGEST_MISMATCH blob sha256:${blobs[0]}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('verify finds a dangling gc.ref label (set by ctr on a copy)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dataroot-cdgc-'));
    const root = copyRoot();
    const c2 = new Containerd(dir, root);
    try {
      await c2.start();
      const blob = ctrRows(c2.ctr(['content', 'ls'], { ns: 'k8s.io' }).stdout, /\t+/)[0]![0]!;
      const ghost = `sha256:${'ab'.repeat(32)}`;
      c2.ctr(['content', 'label', blob, `containerd.io/gc.ref.content.ghost=${ghost}`], { ns: 'k8s.io' });
      await c2.stop();
      const { code, out } = await verify(root);
      expect(code).toBe(1);
      const f = out.findings.find((x: Obj) => x.code === 'CONTAINERD_GC_REF_DANGLING');
      expect(f.subject).toBe(`blob ${blob}`);
      expect(f.message).toContain(ghost);
    } finally {
      await c2.cleanup();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('bad input: a meta.db of an unknown schema version is a coded error; a missing snapshotter metadata.db is a finding', async () => {
    const root = copyRoot();
    try {
      const metaPath = join(root, 'io.containerd.metadata.v1.bolt/meta.db');
      const meta = readFileSync(metaPath);
      // Every copy of the key (bbolt leaves older pages in the file): the live one among them.
      const marker = Buffer.concat([Buffer.from('version'), Buffer.from([0x06])]);
      const at: number[] = [];
      for (let i = meta.indexOf(marker); i >= 0; i = meta.indexOf(marker, i + 1)) at.push(i);
      expect(at.length).toBeGreaterThan(0);
      for (const i of at) meta[i + 7] = 0x14; // schema version 10 (zig-zag)
      writeFileSync(metaPath, meta);
      for (const args of [['containerd', 'images'], ['verify']]) {
        const r = await run(['--containerd-root', root, ...args]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/^dataroot: CONTAINERD_SCHEMA_UNKNOWN: .*version 10/);
        expect(r.stderr).not.toMatch(/at .*\.ts:/);
      }
      for (const i of at) meta[i + 7] = 0x06;
      writeFileSync(metaPath, meta);
      rmSync(join(root, 'io.containerd.snapshotter.v1.overlayfs/metadata.db'));
      const { code, out } = await verify(root);
      expect(code).toBe(1);
      expect(codes(out)).toContain('CONTAINERD_SNAPSHOTTER_DB_MISSING');
      const s = await run(['--containerd-root', root, 'containerd', 'snapshots', '-n', 'moby']);
      expect(s.code).toBe(1);
      expect(s.stderr).toContain('CONTAINERD_SNAPSHOTTER_DB_MISSING');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("what verify says containerd's collector deletes at its next start is what it deletes (containerd restarted on the root)", async () => {
    const { out } = await verify(d.root);
    const gc = out.gc;
    expect(gc.records.some((r: Obj) => r.type === 'snapshot' && r.key === 'overlayfs/loose-view')).toBe(true);
    expect(gc.records.some((r: Obj) => r.type === 'content' && r.key === looseBlob)).toBe(true);
    const snapDirs = (): string[] => readdirSync(join(d.root, 'io.containerd.snapshotter.v1.overlayfs/snapshots')).sort();
    const blobFiles = (): string[] =>
      readdirSync(join(d.root, 'io.containerd.content.v1.content/blobs/sha256'))
        .map((x) => `sha256:${x}`)
        .sort();
    const keys = (): string[] => NS.flatMap((ns) => ctrRows(d.ctr(['snapshots', 'ls'], { ns }).stdout).map((r) => `${ns}/overlayfs/${r[0]}`)).sort();
    const contentKeys = (): string[] =>
      NS.flatMap((ns) =>
        d
          .ctr(['content', 'ls', '-q'], { ns })
          .stdout.split('\n')
          .filter(Boolean)
          .map((x) => `${ns}/${x}`),
      ).sort();
    const dirsBefore = snapDirs();
    const blobsBefore = blobFiles();
    const before = copyRoot();
    await d.start();
    const keysBefore = NS.flatMap((ns) => [
      ...(rec.snapshots[ns] ?? '')
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((l) => `${ns}/overlayfs/${l.split(/\s+/)[0]}`),
    ]);
    // The collector runs 100 ms after start; wait until it has.
    let keysAfter: string[] = [];
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 200));
      keysAfter = keys();
      if (!keysAfter.includes('default/overlayfs/loose-view')) break;
    }
    await new Promise((r) => setTimeout(r, 500));
    keysAfter = keys();
    const contentAfter = contentKeys();
    await d.stop();
    const predictedSnapshots = gc.records
      .filter((r: Obj) => r.type === 'snapshot')
      .map((r: Obj) => `${r.namespace}/${r.key}`)
      .sort();
    const goneSnapshots = keysBefore.filter((k) => !keysAfter.includes(k)).sort();
    expect(goneSnapshots).toEqual(predictedSnapshots);
    const predictedContent = gc.records
      .filter((r: Obj) => r.type === 'content')
      .map((r: Obj) => `${r.namespace}/${r.key}`)
      .sort();
    const contentBefore = NS.flatMap((ns) => ctrRows(rec.content[ns]!, /\t+/).map((r) => `${ns}/${r[0]}`));
    expect(contentBefore.filter((k) => !contentAfter.includes(k)).sort()).toEqual(predictedContent);
    expect(blobsBefore.filter((b) => !blobFiles().includes(b)).sort()).toEqual([...gc.blobFiles].sort());
    expect(
      dirsBefore
        .filter((x) => !snapDirs().includes(x))
        .map((x) => `io.containerd.snapshotter.v1.overlayfs/snapshots/${x}`)
        .sort(),
    ).toEqual([...gc.snapshotDirs].sort());
    expect(gc.blobFiles).toContain(looseBlob);
    // diff of the root before and after, in Docker terms: the collected containerd objects.
    const r = await run(['--json', 'diff', before, d.root]);
    const h = await run(['diff', before, d.root]);
    rmSync(before, { recursive: true, force: true });
    expect(r.code).toBe(1);
    const sum = JSON.parse(r.stdout).summary.containerd;
    expect(sum.snapshots.removed.sort()).toEqual(predictedSnapshots);
    expect(sum.blobs.removed).toContain(`default/${looseBlob}`);
    expect(h.stdout).toMatch(/snapshots\s+-\d+ \(.*default\/overlayfs\/loose-view/);
  });
});

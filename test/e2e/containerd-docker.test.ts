import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainIds } from '../../src/formats/digest/digest.js';
import { buildCdScenario, chainIdOf, ctrRows } from '../support/cdscenario.js';
import { run, SAMPLES } from '../support/cli.js';
import { Containerd } from '../support/containerd.js';
import { makeDockerLayers, placeContainerdRoot, writeDockerContainer, type DockerCdContainer } from '../support/dockercd.js';
import { needs } from '../support/env.js';

/**
 * Docker with the containerd image store through the ordinary commands. No dockerd new enough
 * runs here, so the root is assembled (test/support/dockercd.ts): the images, blobs, snapshots
 * and container layers are made by a real containerd (namespace moby), config.v2.json as moby's
 * daemon/containerd writes it. Values are checked against what ctr printed and against the
 * image's own config blob.
 */

type Obj = Record<string, any>;

/** A tree as path -> type, permissions and content (sha256) or link target, for comparing views. */
function treeOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const n of readdirSync(join(dir, rel)).sort()) {
      const r = rel === '' ? n : `${rel}/${n}`;
      const st = lstatSync(join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(join(dir, r))}`;
      else if (st.isFile())
        out[r] = `file ${mode} ${createHash('sha256')
          .update(readFileSync(join(dir, r)))
          .digest('hex')}`;
      else out[r] = `other ${st.mode.toString(8)} ${st.rdev}`;
    }
  };
  walk('');
  return out;
}

/** The kernel's view of a snapshot: containerd's own mount spec (ctr snapshots mounts) mounted read-only, walked, unmounted. */
function kernelView(d: Containerd, key: string, mnt: string): Record<string, string> {
  mkdirSync(mnt, { recursive: true });
  const cmd = d.ctr(['snapshots', 'mounts', mnt, key], { ns: 'moby' }).stdout.trim();
  expect(cmd).toMatch(/^mount -t overlay overlay /);
  const m = spawnSync('sh', ['-c', `${cmd} -o ro`], { encoding: 'utf8' });
  expect(m.status, m.stderr).toBe(0);
  try {
    return treeOf(mnt);
  } finally {
    spawnSync('umount', [mnt]);
  }
}

const CID = 'c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc';

describe.runIf(needs('containerd', 'ctr', 'runc', 'busybox'))('Docker with the containerd image store (assembled root)', () => {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-dcdwork-'));
  const dockerRoot = join(work, 'docker');
  const d = new Containerd();
  let images: string;
  let usage: Record<string, { size: number; inodes: number }>;
  let content: Record<string, number>;
  let c: DockerCdContainer;
  let diffTar: string[];
  let kernelContainer: Record<string, string>;
  let kernelImage: Record<string, string>;
  const json = async (args: string[]): Promise<any> => {
    const r = await run(['--root', dockerRoot, '--json', ...args]);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    await d.start();
    await buildCdScenario(d, work, { interrupted: false });
    const app = ctrRows(d.ctr(['images', 'ls'], { ns: 'moby' }).stdout).find((r) => r[0] === 'docker.io/library/app:1')!;
    const manifest = JSON.parse(d.ctr(['content', 'get', app[2]!], { ns: 'moby' }).stdout);
    c = {
      id: CID,
      name: 'web',
      image: 'app:1',
      target: app[2]!,
      manifest: { mediaType: app[1]!, digest: app[2]!, size: Buffer.byteLength(d.ctr(['content', 'get', app[2]!], { ns: 'moby' }).stdout) },
      chainId: chainIdOf(d, 'moby', 'docker.io/library/app:1'),
      cmd: ['sh', '-c', 'edit files'],
      changes: 'echo new > new.txt && echo more >> etc/keep && rm app/hello && rm -rf opt/dir && mkdir -p opt/dir && echo b > opt/dir/b',
      exitCode: 3,
    };
    void manifest;
    makeDockerLayers(d, c);
    // An untagged image as dockerd keeps it (soft delete): moby-dangling@<target>.
    const base = ctrRows(d.ctr(['images', 'ls'], { ns: 'moby' }).stdout).find((r) => r[0] === 'docker.io/library/base:1')!;
    d.ctr(['images', 'tag', 'docker.io/library/base:1', `moby-dangling@${base[2]}`], { ns: 'moby' });
    d.ctr(['images', 'rm', 'docker.io/library/base:1'], { ns: 'moby' });
    images = d.ctr(['images', 'ls'], { ns: 'moby' }).stdout;
    usage = {};
    for (const r of ctrRows(d.ctr(['snapshots', 'usage', '-b'], { ns: 'moby' }).stdout)) usage[r[0]!] = { size: Number(r[1]), inodes: Number(r[2]) };
    content = {};
    for (const dg of d.ctr(['content', 'ls', '-q'], { ns: 'moby' }).stdout.split('\n').filter(Boolean))
      content[dg] = Buffer.byteLength(d.ctr(['content', 'get', dg], { ns: 'moby' }).stdout, 'latin1');
    const file = join(work, 'diff.tar');
    spawnSync('sh', ['-c', `ctr -a '${d.sock}' -n moby snapshots diff ${CID} > '${file}'`]);
    diffTar = spawnSync('tar', ['-tf', file], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    kernelContainer = kernelView(d, CID, join(work, 'mnt-container'));
    d.ctr(['snapshots', 'view', 'export-oracle', c.chainId], { ns: 'moby' });
    kernelImage = kernelView(d, 'export-oracle', join(work, 'mnt-image'));
    d.ctr(['snapshots', 'rm', 'export-oracle'], { ns: 'moby' });
    await d.stop();
    placeContainerdRoot(d.root, dockerRoot);
    writeDockerContainer(dockerRoot, c);
  });
  afterAll(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('images: Id is the target digest, tags from the moby namespace, the untagged one as <none>; Size is the content present plus the unpacked snapshots', async () => {
    const out = await json(['images']);
    const theirs = ctrRows(images);
    const app = theirs.find((r) => r[0] === 'docker.io/library/app:1')!;
    const a = out.find((i: Obj) => i.Id === app[2]);
    expect(a.RepoTags.sort()).toEqual(['app:1', 'app:latest']);
    expect(a.RepoDigests.length).toBe(1);
    expect(a.RepoDigests[0]).toMatch(new RegExp(`^app@${app[2]}$`));
    expect(a.Descriptor).toMatchObject({ mediaType: app[1], digest: app[2] });
    expect(a.Descriptor.annotations['io.containerd.image.name']).toMatch(/^docker\.io\/library\/app:/);
    // Content present: manifest + config + layers (sizes of the blobs); snapshots: the chain's usage.
    const manifest = JSON.parse(readFileSync(join(dockerRoot, 'containerd/daemon/io.containerd.content.v1.content/blobs/sha256', app[2]!.slice(7)), 'utf8'));
    const cfg = JSON.parse(
      readFileSync(join(dockerRoot, 'containerd/daemon/io.containerd.content.v1.content/blobs/sha256', manifest.config.digest.slice(7)), 'utf8'),
    );
    const contentSize = content[app[2]!]! + manifest.config.size + manifest.layers.reduce((s: number, l: Obj) => s + l.size, 0);
    const snaps = chainIds(cfg.rootfs.diff_ids).reduce((s, k) => s + usage[k]!.size, 0);
    expect(a.Size).toBe(contentSize + snaps);
    expect(a.Labels).toEqual(cfg.config.Labels);
    expect(a.Created).toBe(Math.floor(Date.parse(cfg.created) / 1000));
    expect(a.Containers).toBe(1);
    const dangling = out.find((i: Obj) => i.Dataroot.names.some((n: string) => n.startsWith('moby-dangling@')));
    expect(dangling.RepoTags).toEqual([]);
    expect(dangling.RepoDigests).toEqual([]);
    const t = await run(['--root', dockerRoot, 'images']);
    expect(t.stdout).toMatch(/<none>\s+<none>/);
    expect(t.stdout).toMatch(new RegExp(`app\\s+1\\s+${app[2]!.slice(7, 19)}`));
  });

  it('image inspect and history: the config of the platform manifest, RootFS, LastTagTime, per-layer snapshot sizes', async () => {
    const [img] = await json(['image', 'inspect', 'app:1']);
    const manifest = JSON.parse(readFileSync(join(dockerRoot, 'containerd/daemon/io.containerd.content.v1.content/blobs/sha256', c.target.slice(7)), 'utf8'));
    const cfg = JSON.parse(
      readFileSync(join(dockerRoot, 'containerd/daemon/io.containerd.content.v1.content/blobs/sha256', manifest.config.digest.slice(7)), 'utf8'),
    );
    expect(img.Id).toBe(c.target);
    expect(img.RootFS).toEqual({ Type: 'layers', Layers: cfg.rootfs.diff_ids });
    expect(img.Config.Env).toEqual(cfg.config.Env);
    expect(img.Config.Cmd).toEqual(cfg.config.Cmd);
    expect(img.Architecture).toBe(cfg.architecture);
    expect(img.Os).toBe(cfg.os);
    expect(img.Metadata.LastTagTime).toMatch(/^2\d{3}-/);
    const byShort = await json(['image', 'inspect', c.target.slice(7, 19)]);
    expect(byShort[0].Id).toBe(c.target);
    const h = await json(['history', 'app:1']);
    expect(h.length).toBe(cfg.history.length);
    const chain = chainIds(cfg.rootfs.diff_ids);
    expect(h.map((x: Obj) => x.Size)).toEqual([...chain].reverse().map((k) => usage[k]!.size));
    expect(h[0].Id).toBe(c.target);
    expect(h[0].Tags.sort()).toEqual(['app:1', 'app:latest']);
  });

  it('containers, container inspect: the config.v2.json of the containerd store, the snapshot over <id>-init, the lease', async () => {
    const [ps] = await json(['containers']);
    expect(ps.Id).toBe(CID);
    expect(ps.Image).toBe('app:1');
    expect(ps.ImageID).toBe(c.target);
    expect(ps.Status).toMatch(/^Exited \(3\)/);
    const [i] = await json(['container', 'inspect', 'web']);
    expect(i.Driver).toBe('overlayfs');
    expect(i.GraphDriver).toEqual({ Data: null, Name: 'overlayfs' });
    expect(i.ImageManifestDescriptor.digest).toBe(c.target);
    expect(i.Dataroot.snapshot.key).toBe(CID);
    expect(i.Dataroot.snapshot.parent).toBe(`${CID}-init`);
    expect(i.Dataroot.snapshot.kind).toBe('Active');
    expect(i.Dataroot.lease.id).toBe(CID);
    expect(i.Dataroot.problems).toEqual([]);
  });

  it("container diff: the rw snapshot against <id>-init (the init layer's files hidden), deletions as containerd's differ whites them out", async () => {
    const r = await run(['--root', dockerRoot, 'container', 'diff', 'web']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    for (const l of ['A /new.txt', 'C /etc/keep', 'D /app/hello', 'A /opt/dir/b', 'D /opt/dir/sub']) expect(lines).toContain(l);
    expect(lines.some((l) => l.includes('.dockerenv') || l.includes('/etc/hostname'))).toBe(false);
    const whiteouts = diffTar.filter((p) => /(^|\/)\.wh\.[^/]+$/.test(p) && !p.endsWith('.wh..wh..opq')).map((p) => `D /${p.replace(/\.wh\./, '')}`);
    for (const w of whiteouts) expect(lines).toContain(w);
  });

  it("export: the container as the kernel mounts its snapshot from containerd's own mount spec: every entry, mode, link target and content, as a tar and as a directory", async () => {
    const dir = join(work, 'export-dir');
    const r = await run(['--root', dockerRoot, 'export', 'web', '-o', `${dir}/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(kernelContainer)).toContain('new.txt');
    expect(Object.keys(kernelContainer)).not.toContain('app/hello');
    expect(treeOf(dir)).toEqual(kernelContainer);
    const tarFile = join(work, 'export.tar');
    const t = await run(['--root', dockerRoot, 'export', 'web', '-o', tarFile]);
    expect(t.code, t.stderr).toBe(0);
    const x = join(work, 'export-x');
    mkdirSync(x);
    const u = spawnSync('tar', ['-xpf', tarFile, '-C', x], { encoding: 'utf8' });
    expect(u.status, u.stderr).toBe(0);
    expect(treeOf(x)).toEqual(kernelContainer);
  });

  it('export of an image: its unpacked snapshot chain as the kernel mounts it, under what docker create adds', async () => {
    const dir = join(work, 'export-image');
    const r = await run(['--root', dockerRoot, 'export', 'app:1', '-o', `${dir}/`]);
    expect(r.code, r.stderr).toBe(0);
    const ours = treeOf(dir);
    const init = ['.dockerenv', 'dev', 'dev/console', 'dev/pts', 'dev/shm', 'etc/hostname', 'etc/hosts', 'etc/mtab', 'etc/resolv.conf', 'proc', 'sys'];
    for (const [path, what] of Object.entries(kernelImage)) if (!init.includes(path)) expect(ours[path], path).toBe(what);
    expect(Object.keys(ours).filter((p) => kernelImage[p] === undefined)).toEqual(expect.arrayContaining(['.dockerenv', 'etc/hosts']));
    for (const p of Object.keys(ours)) if (kernelImage[p] === undefined) expect(init, p).toContain(p);
    const missing = await run(['--root', dockerRoot, 'export', 'no-such-thing', '-o', join(work, 'none.tar')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('TARGET_NOT_FOUND');
  });

  it.runIf(process.getuid?.() === 0)(
    'mount: the container and the image read-only, as export shows them (snapshot directories relative to their parent)',
    async () => {
      const env = { DATAROOT_RUN_DIR: join(work, 'run') };
      const mnt = join(work, 'mnt-dataroot');
      mkdirSync(mnt);
      const printed = await run(['--root', dockerRoot, '--json', 'mount', 'web', mnt, '--print'], env);
      expect(printed.code, printed.stderr).toBe(0);
      const plan = JSON.parse(printed.stdout);
      expect(plan).toMatchObject({ driver: 'overlayfs', kind: 'overlay' });
      expect(plan.steps.at(-1).cwd).toBe(join(dockerRoot, 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots'));
      expect(plan.steps.at(-1).options).toMatch(/^ro,nodev,nosuid,noexec,lowerdir=\d+\/fs(:\d+\/fs)+$/);
      for (const [q, want] of [
        ['web', kernelContainer],
        ['app:1', undefined],
      ] as const) {
        const m = await run(['--root', dockerRoot, 'mount', q, mnt], env);
        expect(m.code, m.stderr).toBe(0);
        try {
          const seen = treeOf(mnt);
          if (want !== undefined) expect(seen).toEqual(want);
          else {
            const exported = join(work, 'export-image-2');
            expect((await run(['--root', dockerRoot, 'export', q, '-o', `${exported}/`])).code).toBe(0);
            // Times of the init layer differ (each is made when asked for): entries, modes and contents do not.
            expect(seen).toEqual(treeOf(exported));
          }
        } finally {
          const u = await run(['umount', mnt], env);
          expect(u.code, u.stderr).toBe(0);
        }
      }
    },
  );

  it('find: files planted in the read-write snapshot, in an image layer and in a volume, each attributed; what the container and image see of them', async () => {
    const [ci] = await json(['container', 'inspect', 'web']);
    const [img] = await json(['image', 'inspect', 'app:1']);
    const top = img.Dataroot.layers.at(-1);
    expect(top.chainId).toBe(c.chainId);
    const vol = join(dockerRoot, 'volumes', 'evidence', '_data');
    const planted = [join(ci.Dataroot.snapshot.dir, 'planted-c'), join(top.snapshot.dir, 'planted-i'), join(vol, 'planted-v')];
    mkdirSync(vol, { recursive: true });
    for (const f of planted) writeFileSync(f, 'indicator of compromise\n');
    try {
      const sha = createHash('sha256').update('indicator of compromise\n').digest('hex');
      const r = await run(['--root', dockerRoot, '--json', 'find', '--sha256', sha]);
      expect(r.code, r.stderr).toBe(0);
      const hits = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      expect(hits.map((h: Obj) => [h.path, h.where.kind, h.where.file])).toEqual([
        ['/planted-i', 'image-layer', planted[1]],
        ['/planted-c', 'container-layer', planted[0]],
        ['/planted-v', 'volume', planted[2]],
      ]);
      const [i, cl, v] = hits;
      expect(i.where).toMatchObject({ chainId: c.chainId, images: [{ id: c.target, tags: expect.arrayContaining(['app:1']) }] });
      expect(i.containers).toEqual([{ id: CID, name: 'web', sees: 'sees' }]);
      expect(i.images).toEqual([{ id: c.target, name: expect.stringMatching(/^app:/), sees: 'sees' }]);
      expect(cl.where.container).toEqual({ id: CID, name: 'web' });
      expect(cl.containers).toEqual([{ id: CID, name: 'web', sees: 'sees' }]);
      expect(v.where.volume).toBe('evidence');
      // A file of the image the container deleted: the container's rw snapshot deletes it.
      const del = await run(['--root', dockerRoot, '--json', 'find', '--path', '/app/hello']);
      const [h] = del.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      expect(h.where.kind).toBe('image-layer');
      expect(h.containers).toEqual([{ id: CID, name: 'web', sees: 'deletes', by: `read-write layer of container ${CID}` }]);
    } finally {
      for (const f of planted) rmSync(f, { force: true });
      rmSync(join(dockerRoot, 'volumes', 'evidence'), { recursive: true, force: true });
    }
  });

  it('verify: no errors on the assembled root; a flipped byte in a layer blob is named, exit 1', async () => {
    const ok = await run(['--root', dockerRoot, '--json', 'verify']);
    const out = JSON.parse(ok.stdout);
    expect(out.findings.filter((f: Obj) => f.severity === 'error')).toEqual([]);
    expect(ok.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dockerRoot, 'containerd/daemon/io.containerd.content.v1.content/blobs/sha256', c.target.slice(7)), 'utf8'));
    const layer = join(dockerRoot, 'containerd/daemon/io.containerd.content.v1.content/blobs/sha256', manifest.layers[1].digest.slice(7));
    const saved = readFileSync(layer);
    const bad = Buffer.from(saved);
    bad[10] = bad[10]! ^ 0xff;
    spawnSync('sh', ['-c', `chmod u+w '${layer}'`]);
    writeFileSync(layer, bad);
    try {
      const r = await run(['--root', dockerRoot, 'verify']);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`CONTAINERD_BLOB_DIGEST_MISMATCH blob ${manifest.layers[1].digest}`);
    } finally {
      writeFileSync(layer, saved);
    }
  });

  it('a root with both stores (an upgraded host) shows both and says which one dockerd 29 uses', async () => {
    const both = join(work, 'both');
    spawnSync('mkdir', ['-p', both]);
    expect(spawnSync('tar', ['-xzf', join(SAMPLES, 'after-build.tar.gz'), '-C', both]).status).toBe(0);
    rmSync(join(both, 'containerd', 'daemon'), { recursive: true, force: true });
    placeContainerdRoot(join(dockerRoot, 'containerd', 'daemon'), both);
    const r = await run(['--root', both, 'images']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/dockerd 29 would use the graphdriver store: overlay2\/ holds a prior graphdriver/);
    expect(r.stdout).toContain('graphdriver image store (the one dockerd 29 uses):');
    expect(r.stdout).toContain('containerd image store (namespace moby):');
    expect(r.stdout).toContain('localhost/buildtest');
    expect(r.stdout).toMatch(/app\s+1/);
    const j = JSON.parse((await run(['--root', both, '--json', 'images'])).stdout);
    expect(j.filter((i: Obj) => i.Dataroot.store === 'containerd').length).toBeGreaterThan(0);
    expect(j.find((i: Obj) => i.Dataroot.store === 'graphdriver').Dataroot.used).toBe(true);
  });
});

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { CD_INJECT_STEPS } from '../../src/ops/cdinject.js';
import { BIN, run } from '../support/cli.js';
import { busyboxRootfs, Containerd } from '../support/containerd.js';
import { Dockerd } from '../support/dockerd.js';
import { needs } from '../support/env.js';

/**
 * Issue 18 part B's acceptance against the real containerd 1.6: `docker save` archives made by a
 * private dockerd (a busybox base by docker import, an image built on it with a whiteout) are
 * injected with `inject --store containerd` into stopped containerd roots; containerd then starts,
 * runs its garbage collection, lists the image with the digest `ctr images import` gives the same
 * archive (the oracle: a second containerd), lists every blob, runs the image, and still lists it
 * after a second start.
 */

type Obj = Record<string, any>;

function rows(out: string): string[][] {
  return out
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/));
}

describe.runIf(needs('dockerd', 'docker', 'containerd', 'ctr', 'runc', 'busybox'))(
  'inject --store containerd: the real containerd accepts the injection',
  () => {
    const work = mkdtempSync(join(tmpdir(), 'dataroot-cdinject-'));
    const src = new Dockerd('vfs');
    const oracle = new Containerd();
    const target = new Containerd();
    /** A Docker 29 data-root: containerd's root at <root>/containerd/daemon. */
    const dockerRoot = join(work, 'docker-root');
    const docked = new Containerd(undefined, join(dockerRoot, 'containerd', 'daemon'));
    const appTar = join(work, 'app.tar');
    const template = join(work, 'template-root');
    let expected: Map<string, string[]>;
    let oracleBlobs: string[];
    let oracleSnaps: string[][];
    let oracleUsage: Map<string, string>;

    beforeAll(async () => {
      await src.start();
      try {
        src.importBusybox('base:busybox');
        const ctx = join(work, 'ctx');
        mkdirSync(ctx);
        writeFileSync(
          join(ctx, 'Dockerfile'),
          ['FROM base:busybox', 'RUN mkdir /app && echo hello from app > /app/hello && rm /etc/group', 'CMD ["cat", "/app/hello"]', ''].join('\n'),
        );
        src.docker(['build', '-q', '-t', 'app:1', ctx], { env: { DOCKER_BUILDKIT: '0' } });
        src.docker(['save', '-o', appTar, 'app:1', 'base:busybox']);
      } finally {
        await src.stop();
      }
      // The oracle: what ctr import makes of the same archive.
      await oracle.start();
      oracle.ctr(['images', 'import', '--no-unpack', appTar], { ns: 'moby' });
      expected = new Map(rows(oracle.ctr(['images', 'ls'], { ns: 'moby' }).stdout).map((r) => [r[0]!, r]));
      // The blobs the images reach (ctr import also stored the archive's other files, which its
      // garbage collection removes in the background: not listed here).
      const reach = new Set<string>();
      for (const row of expected.values()) {
        const m = JSON.parse(oracle.ctr(['content', 'get', row[2]!], { ns: 'moby' }).stdout) as Obj;
        for (const d of [row[2]!, m.config.digest as string, ...(m.layers as Obj[]).map((l) => l.digest as string)]) reach.add(d);
      }
      oracleBlobs = [...reach].sort();
      // And unpacked by ctr import (its unpacker) in another namespace: the snapshots --unpack must match.
      oracle.ctr(['images', 'import', appTar], { ns: 'unpacked' });
      oracleSnaps = rows(oracle.ctr(['snapshots', 'ls'], { ns: 'unpacked' }).stdout).sort((a, b) => a[0]!.localeCompare(b[0]!));
      oracleUsage = new Map(
        oracleSnaps.map((r) => [
          r[0]!,
          oracle.ctr(['snapshots', 'usage', r[0]!], { ns: 'unpacked' }).stdout.split('\n')[1]!.trim().split(/\s+/).slice(1).join(' '),
        ]),
      );
      await oracle.stop();
      // Target roots initialised by one start, then stopped; a copy of the first for each crash.
      await target.start();
      await target.stop();
      spawnSync('cp', ['-a', target.root, template]);
      mkdirSync(dockerRoot, { recursive: true });
      await docked.start();
      await docked.stop();
    }, 600_000);

    afterAll(async () => {
      await target.cleanup();
      await docked.cleanup();
      await oracle.cleanup();
      await src.stop();
      rmSync(src.dir, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
    });

    it('the oracle imported both images', () => {
      expect([...expected.keys()].sort()).toEqual(['docker.io/library/app:1', 'docker.io/library/base:busybox']);
    });

    it('a plain containerd root: images ls shows the digests ctr import gives, content ls every blob, ctr run runs it, a second start still lists it', async () => {
      const r = await run(['--root', target.root, 'inject', appTar, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout) as Obj;
      expect(res.store).toBe('containerd');
      expect(res.namespace).toBe('moby');
      const ours = new Map((res.images as Obj[]).flatMap((i) => (i.names as string[]).map((n) => [n, i.id as string])));
      expect(ours).toEqual(new Map([...expected].map(([n, row]) => [n, row[2]!])));
      // Nothing staged is left.
      expect(readdirSync(join(target.root, 'io.containerd.content.v1.content/ingest'))).toEqual([]);

      await target.start();
      try {
        // containerd's GC runs ~100 ms after start: wait past it, then look.
        await new Promise((res) => setTimeout(res, 1500));
        const imgs = rows(target.ctr(['images', 'ls'], { ns: 'moby' }).stdout);
        expect(imgs.map((x) => [x[0], x[1], x[2]])).toEqual([...expected.values()].map((x) => [x[0], x[1], x[2]]));
        const blobs = rows(target.ctr(['content', 'ls'], { ns: 'moby' }).stdout)
          .map((x) => x[0]!)
          .sort();
        expect(blobs).toEqual(oracleBlobs);
        const allBlobs = (res.images as Obj[]).flatMap((i) => (i.blobs as Obj[]).map((b) => b.digest as string));
        expect([...new Set(allBlobs)].sort()).toEqual(oracleBlobs);
        // ctr run unpacks it and runs it: the layer's file is there, the whiteout applied.
        const out = target.ctr(
          [
            'run',
            '--rm',
            '--runc-root',
            target.runcRoot,
            'docker.io/library/app:1',
            'run1',
            'sh',
            '-c',
            'cat /app/hello; test -e /etc/group && echo group-present || echo group-gone',
          ],
          { ns: 'moby', timeoutMs: 60_000 },
        );
        expect(out.stdout).toBe('hello from app\ngroup-gone\n');
      } finally {
        await target.stop();
      }
      await target.start();
      try {
        await new Promise((res) => setTimeout(res, 1500));
        expect(rows(target.ctr(['images', 'ls'], { ns: 'moby' }).stdout).map((x) => x[2])).toEqual([...expected.values()].map((x) => x[2]));
        expect(
          rows(target.ctr(['content', 'ls'], { ns: 'moby' }).stdout)
            .map((x) => x[0]!)
            .sort(),
        ).toEqual(oracleBlobs);
      } finally {
        await target.stop();
      }
    }, 300_000);

    it('a Docker 29 root (<root>/containerd/daemon): chosen by default; dataroot images lists it with the Id Docker gives (the target digest); ctr run runs it', async () => {
      const r = await run(['--root', dockerRoot, 'inject', appTar, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).store).toBe('containerd');
      const imgs = await run(['--root', dockerRoot, 'images', '--json']);
      expect(imgs.code, imgs.stderr).toBe(0);
      const list = JSON.parse(imgs.stdout) as Obj[];
      const app = list.find((i) => (i.RepoTags as string[]).includes('app:1'));
      expect(app?.Id).toBe(expected.get('docker.io/library/app:1')![2]);
      const base = list.find((i) => (i.RepoTags as string[]).includes('base:busybox'));
      expect(base?.Id).toBe(expected.get('docker.io/library/base:busybox')![2]);
      await docked.start();
      try {
        await new Promise((res) => setTimeout(res, 1500));
        expect(rows(docked.ctr(['images', 'ls'], { ns: 'moby' }).stdout).map((x) => x[2])).toEqual([...expected.values()].map((x) => x[2]));
        const out = docked.ctr(['run', '--rm', '--runc-root', docked.runcRoot, 'docker.io/library/base:busybox', 'run2', 'echo', 'base-ok'], {
          ns: 'moby',
          timeoutMs: 60_000,
        });
        expect(out.stdout).toBe('base-ok\n');
      } finally {
        await docked.stop();
      }
    }, 300_000);

    it('an OCI archive (gzip layers, also a docker save: read as OCI, as the importer reads it): the digest ctr import gives, unpacked, runs', async () => {
      const rootfs = join(work, 'oci-rootfs');
      const l2 = join(work, 'oci-l2');
      mkdirSync(rootfs, { recursive: true });
      busyboxRootfs(rootfs);
      mkdirSync(join(l2, 'app'), { recursive: true });
      writeFileSync(join(l2, 'app', 'hello'), 'hello from oci\n');
      const oci = join(work, 'oci.tar');
      const p = await run(['pack', '--format', 'oci', '--gzip', '-o', oci, '--layer', rootfs, '--layer', l2, '--cmd', '/bin/sh', '-t', 'ociimg:2']);
      expect(p.code, p.stderr).toBe(0);
      const ref = new Containerd();
      spawnSync('cp', ['-a', template, ref.root]);
      const d = new Containerd();
      spawnSync('cp', ['-a', template, d.root]);
      try {
        await ref.start();
        ref.ctr(['images', 'import', '--no-unpack', oci], { ns: 'moby' });
        const want = rows(ref.ctr(['images', 'ls'], { ns: 'moby' }).stdout).map((x) => [x[0], x[1], x[2]]);
        await ref.stop();
        expect(want.length).toBe(1);
        const r = await run(['--root', d.root, 'inject', '--unpack', oci]);
        expect(r.code, r.stderr).toBe(0);
        await d.start();
        try {
          await new Promise((res) => setTimeout(res, 1500));
          expect(rows(d.ctr(['images', 'ls'], { ns: 'moby' }).stdout).map((x) => [x[0], x[1], x[2]])).toEqual(want);
          const out = d.ctr(['run', '--rm', '--runc-root', d.runcRoot, 'docker.io/library/ociimg:2', 'oci1', 'cat', '/app/hello'], {
            ns: 'moby',
            timeoutMs: 60_000,
          });
          expect(out.stdout).toBe('hello from oci\n');
        } finally {
          await d.stop();
        }
      } finally {
        await ref.cleanup();
        await d.cleanup();
      }
    }, 300_000);

    it("--dry-run writes nothing: every path, size and mtime of the root and meta.db's bytes unchanged", async () => {
      const d = new Containerd();
      spawnSync('cp', ['-a', template, d.root]);
      try {
        const before = spawnSync('sh', ['-c', `cd '${d.root}' && find . -printf '%p %s %T@\\n' | sort && md5sum io.containerd.metadata.v1.bolt/meta.db`], {
          encoding: 'utf8',
        }).stdout;
        const r = await run(['--root', d.root, 'inject', '--dry-run', '--unpack', appTar, '--json']);
        expect(r.code, r.stderr).toBe(0);
        const res = JSON.parse(r.stdout) as Obj;
        expect(res.dryRun).toBe(true);
        expect(res.blobsWritten).toBe(oracleBlobs.length);
        const after = spawnSync('sh', ['-c', `cd '${d.root}' && find . -printf '%p %s %T@\\n' | sort && md5sum io.containerd.metadata.v1.bolt/meta.db`], {
          encoding: 'utf8',
        }).stdout;
        expect(after).toBe(before);
      } finally {
        await d.cleanup();
      }
    });

    it('a running containerd is refused (its meta.db flock), and nothing is written', async () => {
      await target.start();
      try {
        const before = readdirSync(join(target.root, 'io.containerd.content.v1.content/blobs/sha256')).sort();
        const r = await run(['--root', target.root, 'inject', appTar, '--namespace', 'other']);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/BOLT_FILE_LOCKED|locked/);
        expect(readdirSync(join(target.root, 'io.containerd.content.v1.content/blobs/sha256')).sort()).toEqual(before);
        expect(target.ctr(['namespaces', 'ls', '-q']).stdout.split('\n').filter(Boolean)).not.toContain('other');
      } finally {
        await target.stop();
      }
    }, 120_000);

    it('--unpack: the committed snapshots ctr import makes (keys, parents, usage), ctr run runs them without unpacking, they survive restarts', async () => {
      const d = new Containerd();
      spawnSync('cp', ['-a', template, d.root]);
      try {
        const r = await run(['--root', d.root, 'inject', '--unpack', appTar, '--json']);
        expect(r.code, r.stderr).toBe(0);
        expect((JSON.parse(r.stdout).snapshots as Obj[]).length).toBe(oracleSnaps.length);
        await d.start();
        try {
          await new Promise((res) => setTimeout(res, 1500));
          const snaps = rows(d.ctr(['snapshots', 'ls'], { ns: 'moby' }).stdout).sort((a, b) => a[0]!.localeCompare(b[0]!));
          expect(snaps).toEqual(oracleSnaps);
          for (const [key, usage] of oracleUsage)
            expect(d.ctr(['snapshots', 'usage', key], { ns: 'moby' }).stdout.split('\n')[1]!.trim().split(/\s+/).slice(1).join(' ')).toBe(usage);
          const labels = rows(d.ctr(['content', 'ls'], { ns: 'moby' }).stdout)
            .map((x) => x.slice(3).join(' '))
            .join('\n');
          expect(labels).toMatch(/containerd\.io\/gc\.ref\.snapshot\.overlayfs=sha256:/);
          expect(labels).toMatch(/containerd\.io\/uncompressed=sha256:/);
          const out = d.ctr(
            [
              'run',
              '--rm',
              '--runc-root',
              d.runcRoot,
              'docker.io/library/app:1',
              'unpacked1',
              'sh',
              '-c',
              'cat /app/hello; test -e /etc/group && echo group-present || echo group-gone',
            ],
            { ns: 'moby', timeoutMs: 60_000 },
          );
          expect(out.stdout).toBe('hello from app\ngroup-gone\n');
          // ctr run found the snapshots: it made none of its own (only the container's, removed by --rm).
          expect(rows(d.ctr(['snapshots', 'ls'], { ns: 'moby' }).stdout).sort((a, b) => a[0]!.localeCompare(b[0]!))).toEqual(oracleSnaps);
        } finally {
          await d.stop();
        }
        await d.start();
        try {
          await new Promise((res) => setTimeout(res, 1500));
          expect(rows(d.ctr(['snapshots', 'ls'], { ns: 'moby' }).stdout).sort((a, b) => a[0]!.localeCompare(b[0]!))).toEqual(oracleSnaps);
          const out = d.ctr(['run', '--rm', '--runc-root', d.runcRoot, 'docker.io/library/base:busybox', 'unpacked2', 'echo', 'ok'], {
            ns: 'moby',
            timeoutMs: 60_000,
          });
          expect(out.stdout).toBe('ok\n');
        } finally {
          await d.stop();
        }
      } finally {
        await d.cleanup();
      }
    }, 300_000);

    it.each([...CD_INJECT_STEPS.filter((x) => !x.startsWith('snap')).map((x) => [x, false] as const), ...CD_INJECT_STEPS.map((x) => [x, true] as const)])(
      'SIGKILL at %s (unpack: %s), then containerd starts: the images are whole or absent, nothing staged or unnamed is left',
      async (step, unpack) => {
        const d = new Containerd(undefined, undefined);
        spawnSync('cp', ['-a', template, d.root]);
        try {
          const r = spawnSync(process.execPath, [BIN, '--root', d.root, 'inject', ...(unpack ? ['--unpack'] : []), appTar], {
            encoding: 'utf8',
            env: { ...process.env, DATAROOT_INJECT_CRASH_AT: step },
          });
          expect(r.signal, r.stderr).toBe('SIGKILL');
          await d.start();
          try {
            // Past containerd's startup garbage collection (it runs ~100 ms after start).
            const blobsDir = join(d.root, 'io.containerd.content.v1.content/blobs/sha256');
            const ingest = join(d.root, 'io.containerd.content.v1.content/ingest');
            const imgs = rows(d.ctr(['images', 'ls'], { ns: 'moby' }).stdout);
            const whole = step === 'metadb-committed';
            for (let i = 0; i < 100; i++) {
              const files = existsSync(blobsDir) ? readdirSync(blobsDir).length : 0;
              if (readdirSync(ingest).length === 0 && (whole || files === 0)) break;
              await new Promise((res) => setTimeout(res, 100));
            }
            expect(readdirSync(ingest)).toEqual([]);
            const blobs = rows(d.ctr(['content', 'ls'], { ns: 'moby' }).stdout)
              .map((x) => x[0]!)
              .sort();
            if (whole) {
              expect(imgs.map((x) => x[2])).toEqual([...expected.values()].map((x) => x[2]));
              expect(blobs).toEqual(oracleBlobs);
              expect(readdirSync(blobsDir).sort()).toEqual(oracleBlobs.map((b) => b.slice(7)));
              const out = d.ctr(['run', '--rm', '--runc-root', d.runcRoot, 'docker.io/library/app:1', `crash-${step}`], { ns: 'moby', timeoutMs: 60_000 });
              expect(out.stdout).toBe('hello from app\n');
            } else {
              expect(imgs).toEqual([]);
              expect(blobs).toEqual([]);
              expect(existsSync(blobsDir) ? readdirSync(blobsDir) : []).toEqual([]);
              expect(rows(d.ctr(['snapshots', 'ls'], { ns: 'moby' }).stdout)).toEqual([]);
            }
            if (unpack) {
              // The snapshotter's directories: those its metadata.db names, no more (after its GC).
              const snapDir = join(d.root, 'io.containerd.snapshotter.v1.overlayfs/snapshots');
              const want = whole ? oracleSnaps.length : 0;
              for (let i = 0; i < 100 && (existsSync(snapDir) ? readdirSync(snapDir).length : 0) !== want; i++)
                await new Promise((res) => setTimeout(res, 100));
              expect(existsSync(snapDir) ? readdirSync(snapDir).length : 0).toBe(want);
              if (whole) expect(rows(d.ctr(['snapshots', 'ls'], { ns: 'moby' }).stdout).sort((a, b) => a[0]!.localeCompare(b[0]!))).toEqual(oracleSnaps);
            }
          } finally {
            await d.stop();
          }
        } finally {
          await d.cleanup();
        }
      },
      180_000,
    );
  },
);

import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVERS, Dockerd, driverTools } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { run } from '../support/cli.js';
import { fingerprint } from '../support/tree.js';
import { listingLines, listTar, listTree, withoutNames } from '../support/tarlist.js';

/**
 * Issue 17's export acceptance, per driver, against the real engine: a container with adds,
 * changes, deletes, opaque directories (in an image layer and in its read-write layer), hard
 * links, symlinks (one pointing out of the root), FIFOs, an owner change, a setuid bit and files
 * under volume mounts. `dataroot export` of the stopped root must give the bytes `docker export`
 * gave on the live daemon; the image case must list the entries `docker create` + `docker export`
 * gave (times of what docker create makes aside); `-o DIR` must hold the same tree.
 */

const DOCKERFILE = [
  'FROM base:busybox',
  'RUN mkdir -p /opt/dir/sub /opt/opq && echo one > /opt/dir/sub/a && echo old > /opt/opq/old && echo keep > /etc/keep && echo gone > /etc/gone' +
    ' && echo h > /opt/h1 && ln /opt/h1 /opt/h2 && ln /opt/h1 /opt/h3 && mkfifo /opt/fifo && ln -s /etc/keep /opt/sym && ln -s ../../../outside /opt/up' +
    ' && mkdir -p "/opt/long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" && echo long > "/opt/long/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"' +
    ' && echo ü > "/opt/grüße" && mknod /opt/cdev c 1 3 && mknod /opt/bdev b 7 0 && echo PLANTED-IMG > /opt/planted-img',
  'RUN rm /etc/gone && rm -rf /opt/opq && mkdir -p /opt/opq && echo new > /opt/opq/new && chmod 4755 /opt/h1',
  'VOLUME /data',
  'WORKDIR /work/dir',
  'CMD ["sh"]',
  '',
].join('\n');

const RUN =
  'echo new > /new && echo more >> /etc/keep && rm /opt/h2 && echo x > /vol/x && echo y > /data/y && ln /new /new2 && mkfifo /f2' +
  ' && rm -rf /opt/dir && mkdir -p /opt/dir && echo c > /opt/dir/c && ln -s /nowhere /dangling && chown 65534:65534 /new && rm /bin/ls' +
  ' && echo PLANTED-RW > /planted-rw && echo PLANTED-VOL > /vol/planted-vol';

type Obj = Record<string, any>;

function sha(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

for (const driver of DRIVERS) {
  describe.runIf(needs('dockerd', 'docker', 'busybox', ...driverTools(driver)))(`export e2e (${driver})`, () => {
    const d = new Dockerd(driver);
    let work: string;
    let ids: { c1: string; c2: string; c3: string; image: string };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), `dataroot-export-${driver}-`));
      await d.start();
      d.importBusybox('base:busybox');
      const ctxDir = join(work, 'ctx');
      mkdirSync(ctxDir);
      writeFileSync(join(ctxDir, 'Dockerfile'), DOCKERFILE);
      d.docker(['build', '-q', '-t', 'exp/app:1', ctxDir], { env: { DOCKER_BUILDKIT: '0' } });
      d.docker(['run', '--name', 'c1', '-v', 'vol1:/vol', 'exp/app:1', 'sh', '-c', RUN]);
      d.docker(['export', '-o', join(work, 'c1.docker.tar'), 'c1']);
      d.docker(['create', '--name', 'c2', 'exp/app:1']);
      d.docker(['run', '--name', 'c3', 'exp/app:1', 'rm', '/etc/keep']);
      d.docker(['export', '-o', join(work, 'c2.docker.tar'), 'c2']);
      ids = {
        c1: d.docker(['inspect', '-f', '{{.Id}}', 'c1']).stdout.trim(),
        c2: d.docker(['inspect', '-f', '{{.Id}}', 'c2']).stdout.trim(),
        c3: d.docker(['inspect', '-f', '{{.Id}}', 'c3']).stdout.trim(),
        image: d.docker(['image', 'inspect', '-f', '{{.Id}}', 'exp/app:1']).stdout.trim(),
      };
      await d.stop();
    }, 600_000);

    afterAll(async () => {
      await d.cleanup();
      if (work !== undefined) rmSync(work, { recursive: true, force: true });
    });

    it('a container: the same bytes as docker export gave (entries, types, modes, owners, names, sizes, links, devices, contents)', async () => {
      const before = fingerprint(d.root);
      const out = join(work, 'c1.mine.tar');
      const r = await run(['export', 'c1', '-o', out, '--root', d.root]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^exported container c1 \([0-9a-f]{12}\): \d+ entries/);
      const theirs = listTar(join(work, 'c1.docker.tar'));
      const mine = listTar(out);
      expect(listingLines(mine)).toEqual(listingLines(theirs));
      expect(sha(out)).toBe(sha(join(work, 'c1.docker.tar')));
      // What the scenario put there, as docker export shows it.
      const byName = new Map(theirs.map((e) => [e.name, e]));
      expect(byName.get('new2')).toMatchObject({ type: '1', link: 'new' });
      // chmod of opt/h1 in the second step: overlay drivers copy it up (the link to h3 is broken in
      // the view); full-tree drivers change the one inode both names share.
      if (driver === 'vfs' || driver === 'btrfs') expect(byName.get('opt/h3')).toMatchObject({ type: '1', link: 'opt/h1' });
      else expect(byName.get('opt/h3')).toMatchObject({ type: '0' });
      expect(byName.has('opt/h2')).toBe(false);
      expect(byName.get('opt/fifo')?.type).toBe('6');
      expect(byName.get('opt/up')).toMatchObject({ type: '2', link: '../../../outside' });
      expect(byName.get('new')).toMatchObject({ uid: 65534, gid: 65534, uname: 'nobody', gname: 'nogroup' });
      expect([...byName.keys()].filter((n) => n.startsWith('opt/dir/'))).toEqual(['opt/dir/', 'opt/dir/c']);
      expect([...byName.keys()].filter((n) => n.startsWith('opt/opq/'))).toEqual(['opt/opq/', 'opt/opq/new']);
      expect(byName.has('etc/gone')).toBe(false);
      expect(byName.has('bin/ls')).toBe(false);
      // Files under volume mounts are in the volumes, not in the container's layers.
      expect(byName.has('data/y')).toBe(false);
      expect(byName.has('vol/x')).toBe(false);
      expect(byName.get('.dockerenv')?.type).toBe('0');
      // Reading changed nothing.
      expect(fingerprint(d.root)).toEqual(before);
    });

    it('the tar on stdout is the same archive', async () => {
      const r = await run(['export', ids.c1.slice(0, 12), '--root', d.root]);
      expect(r.code).toBe(0);
      expect(createHash('sha256').update(r.stdoutBytes).digest('hex')).toBe(sha(join(work, 'c1.docker.tar')));
    });

    it('an image: the entries docker create + docker export gave (the times of what docker create made aside)', async () => {
      const out = join(work, 'img.mine.tar');
      const r = await run(['--json', 'export', 'exp/app:1', '-o', out, '--root', d.root]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j).toMatchObject({ format: 'tar', target: { kind: 'image', id: ids.image, name: 'exp/app:1' } });
      const theirs = listTar(join(work, 'c2.docker.tar'));
      const mine = listTar(out);
      // Entries docker create made (init layer, their parents) carry the time of that create; all else is equal.
      expect(listingLines(mine, false)).toEqual(listingLines(theirs, false));
      const created = new Set([
        '.dockerenv',
        'dev/',
        'dev/console',
        'dev/pts/',
        'dev/shm/',
        'proc/',
        'sys/',
        'etc/',
        'etc/hosts',
        'etc/hostname',
        'etc/resolv.conf',
        'etc/mtab',
      ]);
      const timeDiff = mine.filter((e, i) => e.mtime !== theirs[i]!.mtime).map((e) => e.name);
      expect(timeDiff.filter((n) => !created.has(n))).toEqual([]);
      // The created container c2 exports the same as the image.
      const c2 = join(work, 'c2.mine.tar');
      expect((await run(['export', 'c2', '-o', c2, '--root', d.root])).code).toBe(0);
      expect(sha(c2)).toBe(sha(join(work, 'c2.docker.tar')));
    });

    it('-o DIR holds the same tree (as root: owners, modes, devices, FIFOs, hard links, times)', async () => {
      const dir = join(work, 'c1.dir');
      const r = await run(['export', 'c1', '-o', `${dir}/`, '--root', d.root]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const theirs = withoutNames(listTar(join(work, 'c1.docker.tar')));
      expect(listingLines(listTree(dir))).toEqual(listingLines(theirs));
      expect(lstatSync(join(dir, 'opt/h1')).mode & 0o7777).toBe(0o4755);
      // An existing non-empty directory is refused, and left as it was.
      const again = await run(['export', 'c1', '-o', dir, '--root', d.root]);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/^dataroot: OUTPUT_NOT_EMPTY: /);
    });

    const hex = (text: string): string => createHash('sha256').update(text).digest('hex');
    const find = async (args: string[]): Promise<Obj[]> => {
      const r = await run(['--json', 'find', ...args, '--root', d.root]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return r.stdout === ''
        ? []
        : r.stdout
            .trimEnd()
            .split('\n')
            .map((l) => JSON.parse(l) as Obj);
    };
    const sights = (h: Obj, key: 'containers' | 'images'): Record<string, string> => Object.fromEntries((h[key] as Obj[]).map((s) => [s.name, s.sees]));

    it('find: a file planted in an image layer is attributed to that layer and its images, and every container sees it', async () => {
      const hits = await find(['--sha256', hex('PLANTED-IMG\n')]);
      expect(hits.length).toBe(1);
      const h = hits[0]!;
      expect(h).toMatchObject({ path: '/opt/planted-img', type: 'file', size: 12, sha256: `sha256:${hex('PLANTED-IMG\n')}`, where: { kind: 'image-layer' } });
      expect(h.where.chainId).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(h.where.images.map((i: Obj) => i.id)).toContain(ids.image);
      expect(h.where.file).toContain(d.root);
      expect(sights(h, 'containers')).toEqual({ c1: 'sees', c2: 'sees', c3: 'sees' });
      expect(sights(h, 'images')['exp/app:1']).toBe('sees');
    });

    it('find: an image file one container changed and another deleted: sees / shadows / deletes per container', async () => {
      const hits = await find(['--sha256', hex('keep\n')]);
      expect(hits.map((h) => [h.path, h.where.kind])).toEqual([['/etc/keep', 'image-layer']]);
      const h = hits[0]!;
      expect(sights(h, 'containers')).toEqual({ c1: 'shadows', c2: 'sees', c3: 'deletes' });
      const byName = Object.fromEntries((h.containers as Obj[]).map((c) => [c.name, c]));
      expect(byName['c1'].by).toBe(`read-write layer of container ${ids.c1}`);
      expect(byName['c3'].by).toBe(`read-write layer of container ${ids.c3}`);
      // The changed copy lives in c1's read-write layer, and only c1 has it.
      const changed = await find(['--sha256', hex('keep\nmore\n')]);
      expect(changed.map((x) => [x.path, x.where.kind, x.where.container.id, sights(x, 'containers')])).toEqual([
        ['/etc/keep', 'container-layer', ids.c1, { c1: 'sees' }],
      ]);
    });

    it('find: files in a read-write layer and in a volume, by content and by name; a directory an opaque one replaced', async () => {
      const rw = await find(['--sha256', `sha256:${hex('PLANTED-RW\n')}`]);
      expect(rw.map((h) => [h.path, h.where.kind, h.where.container, sights(h, 'containers')])).toEqual([
        ['/planted-rw', 'container-layer', { id: ids.c1, name: 'c1' }, { c1: 'sees' }],
      ]);
      const vol = await find(['--name', 'planted-*']);
      const byPath = Object.fromEntries(vol.map((h) => [h.path, h]));
      expect(Object.keys(byPath).sort()).toEqual(['/opt/planted-img', '/planted-rw', '/planted-vol']);
      expect(byPath['/planted-vol']).toMatchObject({
        where: { kind: 'volume', volume: 'vol1' },
        containers: [{ id: ids.c1, name: 'c1', sees: 'sees', at: '/vol/planted-vol' }],
      });
      const old = await find(['--path', '/opt/opq/*']);
      const oldHit = old.find((h) => h.path === '/opt/opq/old')!;
      expect(sights(oldHit, 'images')['exp/app:1']).toBe('deletes');
      expect(sights(oldHit, 'containers')).toEqual({ c1: 'deletes', c2: 'deletes', c3: 'deletes' });
      expect(old.find((h) => h.path === '/opt/opq/new')!.containers.map((c: Obj) => c.sees)).toEqual(['sees', 'sees', 'sees']);
      // --newer: nothing is newer than now; everything planted is newer than the epoch.
      expect(await find(['--name', 'planted-*', '--newer', String(Date.now() / 1000 + 60)])).toEqual([]);
      expect((await find(['--name', 'planted-*', '--newer', '1970-01-02'])).length).toBe(3);
    });

    it.runIf(process.getuid?.() === 0)('mount: the container and the image, read-only, show the tree export writes; umount takes them down', async () => {
      const runDir = join(work, 'run');
      const env = { DATAROOT_RUN_DIR: runDir };
      for (const [what, tar, withTime] of [
        ['c1', 'c1.mine.tar', true],
        ['exp/app:1', 'img.mine.tar', false],
      ] as const) {
        const mnt = join(work, `mnt-${what.replace(/\W/g, '_')}`);
        mkdirSync(mnt);
        const m = await run(['mount', what, mnt, '--root', d.root], env);
        expect(m.stderr).toBe('');
        expect(m.code).toBe(0);
        try {
          const exported = withoutNames(listTar(join(work, tar)));
          expect(listingLines(listTree(mnt), withTime)).toEqual(listingLines(exported, withTime));
          expect(() => writeFileSync(join(mnt, 'x'), 'x')).toThrow(/EROFS|read-only/);
        } finally {
          const u = await run(['umount', mnt], env);
          expect(u.stderr).toBe('');
          expect(u.code).toBe(0);
        }
        expect(readdirSync(mnt)).toEqual([]);
      }
      expect(readdirSync(join(runDir, 'mounts'))).toEqual([]);
    });
  });
}

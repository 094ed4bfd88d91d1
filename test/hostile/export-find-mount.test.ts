import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mknod, S_IFIFO } from '../../src/io/native.js';
import { fingerprint } from '../support/tree.js';
import { listTar } from '../support/tarlist.js';
import { bounded, codedFailure, Hostile } from './harness.js';

/**
 * Hostile evidence for export, find and mount (issue 17): symlinks out of the root inside a layer
 * are exported as symlinks and never followed; FIFOs are entries, never opened; a layer directory
 * or an l/ link that leads outside is a coded error; a hostile -o DIR (holding a symlink, or being
 * one) is refused; names that are not UTF-8 keep their bytes; a tree deeper than PATH_MAX is a
 * coded error, not a crash. Each run: no canary in any output, the sentinel tree unchanged, the
 * root unchanged, no hang.
 */

const H = new Hostile();
afterAll(() => H.cleanup());

const MOUNT = 'a84d8821ca20a96678e10220948dcbbcb9273a19bd16b00d68f2de8535d69a5c';
const LAYER_CACHE = '7a2682b41aa92387e5c1ec2c8406ae009eb52649482dc3ba9bef5f3358ed0441';

/** A read command: the hostile-evidence assertions; `fp` false for trees the test's own walk cannot fingerprint. */
async function read(root: string, args: string[], code: number[], ms = 30_000, fp = true): Promise<Awaited<ReturnType<typeof bounded>>> {
  const before = fp ? fingerprint(root) : undefined;
  const r = await bounded([...args, '--root', root], ms);
  const where = `dataroot ${args.join(' ')}: exit ${r.code}\n${r.stderr.slice(0, 2000)}`;
  expect(H.leaked(r), where).toBeUndefined();
  expect(H.sentinelChanged(), where).toBeUndefined();
  expect(code, where).toContain(r.code);
  if (r.code === 2) expect(codedFailure(r), where).toBeDefined();
  expect(r.stderr, where).not.toMatch(/INTERNAL|\n\s+at /);
  if (fp) expect(fingerprint(root), `${where}\nthe root changed`).toEqual(before);
  return r;
}

describe('export, find and mount on hostile evidence', () => {
  it('symlinks out of the root and FIFOs in layers: exported as entries, never followed or opened', async () => {
    const root = H.root();
    const diff = join(root, 'overlay2', MOUNT, 'diff');
    symlinkSync(H.canaryFile, join(diff, 'evil-abs'));
    symlinkSync(H.relTo(3, H.canaryFile), join(diff, 'evil-rel'));
    symlinkSync(H.canaryDir, join(diff, 'evil-dir'));
    mknod(join(diff, 'pipe'), S_IFIFO | 0o644, 0, 0);
    // The image layer's file replaced by a FIFO too.
    const img = join(root, 'overlay2', LAYER_CACHE, 'diff');
    const f = readdirSync(img).find((n) => lstatSync(join(img, n)).isFile())!;
    rmSync(join(img, f));
    mknod(join(img, f), S_IFIFO | 0o600, 0, 0);
    const tar = join(H.work, 'evil.tar');
    await read(root, ['export', 'sample', '-o', tar], [0]);
    const entries = new Map(listTar(tar).map((e) => [e.name, e]));
    expect(entries.get('evil-abs')).toMatchObject({ type: '2', link: H.canaryFile, size: 0 });
    expect(entries.get('evil-dir')).toMatchObject({ type: '2', link: H.canaryDir });
    expect(entries.get('evil-rel')?.type).toBe('2');
    expect(entries.get('pipe')?.type).toBe('6');
    expect(entries.get(f)?.type).toBe('6');
    expect([...entries.keys()].some((n) => n.startsWith('evil-dir/'))).toBe(false);
    expect(readFileSync(tar).includes(Buffer.from(H.canaryText))).toBe(false);
    // To a directory: the symlinks are made as symlinks, nothing is written through them.
    const dir = join(H.work, 'evil-dir-out');
    await read(root, ['export', 'sample', '-o', `${dir}/`], [0]);
    expect(lstatSync(join(dir, 'evil-dir')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(dir, 'pipe')).isFIFO()).toBe(true);
    // find lists them as symlinks (their targets are data) and reads nothing behind them.
    const fr = await read(root, ['--json', 'find', '--name', 'evil-*'], [0]);
    expect(
      fr.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).type),
    ).toEqual(['symlink', 'symlink', 'symlink']);
    await read(root, ['find', '--sha256', '0'.repeat(64)], [0]);
  });

  it('a layer directory or an l/ link that leads outside the root: a coded error for export, mount --print; find reports it and goes on', async () => {
    const root = H.root();
    rmSync(join(root, 'overlay2', MOUNT, 'diff'), { recursive: true });
    symlinkSync(join(H.victim, 'diff'), join(root, 'overlay2', MOUNT, 'diff'));
    const r = await read(root, ['export', 'sample', '-o', join(H.work, 'x.tar')], [2]);
    expect(codedFailure(r)).toBe('SYMLINK_OUT_OF_ROOT');
    const p = await read(root, ['mount', 'sample', H.work, '--print'], [2]);
    expect(codedFailure(p)).toMatch(/^SYMLINK_/);
    const f = await read(root, ['find', '--name', 'x'], [1]);
    expect(f.stderr).toMatch(/SYMLINK_OUT_OF_ROOT/);

    const root2 = H.root();
    const l = join(root2, 'overlay2', 'l');
    const link = readdirSync(l).find((n) => readFileSync(join(root2, 'overlay2', LAYER_CACHE, 'link'), 'utf8').trim() === n)!;
    rmSync(join(l, link));
    symlinkSync(join(H.victim, 'diff'), join(l, link));
    expect(codedFailure(await read(root2, ['export', 'sample', '-o', join(H.work, 'y.tar')], [2]))).toBe('SYMLINK_OUT_OF_ROOT');
    expect(codedFailure(await read(root2, ['mount', 'sample', H.work, '--print'], [2]))).toBe('SYMLINK_OUT_OF_ROOT');
    // The image's own view does not go through its l/ link (its diff is read directly); a mount does.
    expect(codedFailure(await read(root2, ['mount', 'localhost/buildtest:v1', H.work, '--print'], [2]))).toBe('SYMLINK_OUT_OF_ROOT');
    await read(root2, ['export', 'localhost/buildtest:v1', '-o', join(H.work, 'z.tar')], [0]);
  });

  it('a hostile -o: a directory holding a symlink, a symlink to a directory, a symlink as the tar file; nothing written outside', async () => {
    const root = H.root();
    const holder = join(H.work, 'holder');
    mkdirSync(holder);
    symlinkSync(H.victim, join(holder, 'etc'));
    const a = await read(root, ['export', 'sample', '-o', holder], [2]);
    expect(codedFailure(a)).toBe('OUTPUT_NOT_EMPTY');
    expect(readdirSync(holder)).toEqual(['etc']);
    const link = join(H.work, 'link-to-victim');
    symlinkSync(H.victim, link);
    expect(codedFailure(await read(root, ['export', 'sample', '-o', link], [2]))).toBe('OUTPUT_IS_SYMLINK');
    expect(codedFailure(await read(root, ['export', 'sample', '-o', `${link}/`], [2]))).toBe('OUTPUT_IS_SYMLINK');
    const fileLink = join(H.work, 'out.tar');
    symlinkSync(join(H.victim, 'precious'), fileLink);
    expect(codedFailure(await read(root, ['export', 'sample', '-o', fileLink], [2]))).toBe('OUTPUT_IS_SYMLINK');
    expect(lstatSync(fileLink).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(H.victim, 'precious'), 'utf8')).toBe('do not delete\n');
    expect(codedFailure(await read(root, ['export', 'sample', '-o', join(H.work, 'no', 'such', 'x.tar')], [2]))).toBe('USAGE_OUTPUT_DIR_MISSING');
  });

  it('names that are not UTF-8 keep their bytes, in the tar and in -o DIR', async () => {
    const root = H.root();
    const diff = join(root, 'overlay2', MOUNT, 'diff');
    const name = Buffer.from([0x62, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74]); // b\xff\xfe.txt
    writeFileSync(Buffer.concat([Buffer.from(`${diff}/`), name]), 'bytes\n');
    const tar = join(H.work, 'names.tar');
    await read(root, ['export', 'sample', '-o', tar], [0], 30_000, false);
    expect(listTar(tar).some((e) => e.name === name.toString('latin1') && e.size === 6)).toBe(true);
    const dir = join(H.work, 'names-dir');
    await read(root, ['export', 'sample', '-o', `${dir}/`], [0], 30_000, false);
    expect(readdirSync(dir, { encoding: 'buffer' }).some((n) => n.equals(name))).toBe(true);
  });

  it('a tree deeper than PATH_MAX in a layer: a coded error, no crash, no partial output', async () => {
    const root = H.root();
    const diff = join(root, 'overlay2', MOUNT, 'diff');
    // 25 directories of 200 characters: 5,000 bytes of path, past PATH_MAX (4,096).
    const r = spawnSync('bash', ['-c', `cd ${diff} && n=$(printf "%0200d" 0) && for i in $(seq 25); do mkdir $n && cd $n || exit 1; done && echo x > f`]);
    expect(r.status).toBe(0);
    try {
      const tar = join(H.work, 'deep.tar');
      const e = await read(root, ['export', 'sample', '-o', tar], [2], 60_000, false);
      expect(codedFailure(e)).toMatch(/^(PATH_INVALID|IO_ENAMETOOLONG)$/);
      expect(readdirSync(H.work).filter((n) => n.startsWith('deep.tar') || n.startsWith('.deep.tar'))).toEqual([]);
      const dir = join(H.work, 'deep-dir');
      const d = await read(root, ['export', 'sample', '-o', `${dir}/`], [2], 60_000, false);
      expect(codedFailure(d)).toMatch(/^(PATH_INVALID|IO_ENAMETOOLONG)$/);
      expect(readdirSync(H.work).includes('deep-dir')).toBe(false);
      const f = await read(root, ['find', '--name', 'f'], [1], 60_000, false);
      expect(f.stderr).toMatch(/PATH_INVALID|IO_ENAMETOOLONG/);
    } finally {
      spawnSync('rm', ['-rf', join(diff, '0'.repeat(200))]);
    }
  });
});

import { linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { BIN, run } from './support/cli.js';
import { haveCommand, needs } from './support/env.js';
import { listingLines, listTar, listTree, withoutNames } from './support/tarlist.js';

/**
 * `dataroot mount` on images of 150 layers, made without a daemon (`dataroot pack --into-root`)
 * since dockerd's overlay2 stops at 128: the list of l/ links (150 x 29 bytes) passes the kernel's
 * one-page limit for mount options, so the bottom layers are merged in an inner overlay. The mounted
 * view must equal what `export` writes: whiteouts every tenth layer, an opaque directory, hard
 * links, the init layer docker create adds, the working directory. Needs root and overlayfs.
 */

const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'dataroot-mount-'));
const runDir = join(work, 'run');
const env = { DATAROOT_RUN_DIR: runDir };
// Removed asynchronously: five roots of 150 layers take a while, and the worker must keep answering vitest.
afterAll(() => rm(work, { recursive: true, force: true }));

const LAYERS = 150;

/** Layer i adds d<i>/f; every tenth deletes d<i-10>/f (.wh.); layer 75 makes d5 opaque; layer 3 holds a hard link pair. */
function layerDirs(): string[] {
  const dirs: string[] = [];
  for (let i = 0; i < LAYERS; i++) {
    const l = join(work, 'layers', String(i));
    mkdirSync(join(l, `d${i}`), { recursive: true });
    writeFileSync(join(l, `d${i}`, 'f'), `layer ${i}\n`);
    if (i >= 10 && i % 10 === 0) {
      mkdirSync(join(l, `d${i - 10}`), { recursive: true });
      writeFileSync(join(l, `d${i - 10}`, '.wh.f'), '');
    }
    dirs.push(l);
  }
  writeFileSync(join(dirs[3]!, 'h1'), 'hard\n');
  linkSync(join(dirs[3]!, 'h1'), join(dirs[3]!, 'h2'));
  symlinkSync('/etc/passwd', join(dirs[4]!, 'abs-link'));
  mkdirSync(join(dirs[75]!, 'd5'), { recursive: true });
  writeFileSync(join(dirs[75]!, 'd5', '.wh..wh..opq'), '');
  writeFileSync(join(dirs[75]!, 'd5', 'g'), 'opaque\n');
  return dirs;
}

/** The built CLI in a child process, awaited without blocking this worker. */
function bin(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => resolve({ code, stderr }));
  });
}

const DRIVERS = ['overlay2', 'fuse-overlayfs', 'vfs', 'overlay'] as const;

describe.runIf(isRoot && needs('mount', 'umount'))('mount of a 150-layer image', () => {
  const roots: Record<string, string> = {};
  beforeAll(async () => {
    const dirs = layerDirs();
    for (const driver of DRIVERS) {
      const root = join(work, `root-${driver}`);
      mkdirSync(root);
      // A child process: packing 150 layers in this worker would hold its event loop for long.
      const r = await bin([
        'pack',
        ...dirs.flatMap((d) => ['--layer', d]),
        '-t',
        'many:150',
        '--workdir',
        '/work/dir',
        '--into-root',
        root,
        '--driver',
        driver,
      ]);
      if (r.code !== 0) throw new Error(`pack --into-root (${driver}): ${r.stderr}`);
      roots[driver] = root;
    }
  }, 600_000);

  for (const driver of DRIVERS) {
    it.runIf(driver !== 'fuse-overlayfs' || haveCommand('fuse-overlayfs'))(
      `${driver}: the mounted view equals export's, through an inner mount when the l/ links do not fit one page`,
      async () => {
        const root = roots[driver]!;
        const tar = join(work, `${driver}.tar`);
        const ex = await run(['export', 'many:150', '-o', tar, '--root', root]);
        expect(ex.code).toBe(0);
        const printed = await run(['--json', 'mount', 'many:150', join(work), '--print', '--root', root]);
        expect(printed.code).toBe(0);
        const plan = JSON.parse(printed.stdout);
        const mounts = plan.steps.filter((s: { op: string }) => s.op === 'mount');
        for (const m of mounts) if (m.type === 'overlay') expect(Buffer.byteLength(m.options)).toBeLessThanOrEqual(4095);
        if (driver === 'overlay2') {
          // 150 l/ links and the init layer do not fit one page: an inner overlay holds the bottom layers.
          expect(mounts.length).toBe(2);
          expect(mounts[0].options).toMatch(/lowerdir=(l\/[A-Z2-7]{26}:)+l\/[A-Z2-7]{26}$/);
          expect(mounts[1].options).toContain(`,lowerdir=${plan.stateDir}/init:l/`);
          expect(mounts[1].options.endsWith(`:${plan.stateDir}/lower`)).toBe(true);
        }
        const mnt = join(work, `mnt-${driver}`);
        mkdirSync(mnt);
        const m = await run(['mount', 'many:150', mnt, '--root', root], env);
        expect(m.stderr).toBe('');
        expect(m.code).toBe(0);
        try {
          const exported = withoutNames(listTar(tar));
          // The init layer's entries carry the time each command made them.
          expect(listingLines(listTree(mnt), false)).toEqual(listingLines(exported, false));
          expect(readdirSync(join(mnt, 'd0'))).toEqual([]);
          expect(readdirSync(join(mnt, 'd5'))).toEqual(['g']);
          expect(readFileSync(join(mnt, 'd149', 'f'), 'utf8')).toBe('layer 149\n');
          expect(readdirSync(join(mnt, 'work'))).toEqual(['dir']);
        } finally {
          const u = await run(['umount', mnt], env);
          expect(u.stderr).toBe('');
          expect(u.code).toBe(0);
        }
        expect(readdirSync(mnt)).toEqual([]);
        expect(readdirSync(join(runDir, 'mounts'))).toEqual([]);
      },
    );
  }

  it('refusals: aufs, a target that is not a directory, a second mount on the same target, umount of what dataroot did not mount', async () => {
    const aufs = join(work, 'root-aufs');
    mkdirSync(aufs);
    const dirs = readdirSync(join(work, 'layers'))
      .map((n) => join(work, 'layers', n))
      .slice(0, 3);
    expect((await run(['pack', ...dirs.flatMap((d) => ['--layer', d]), '-t', 'few:3', '--into-root', aufs, '--driver', 'aufs'])).code).toBe(0);
    const mnt = join(work, 'mnt-refusals');
    mkdirSync(mnt);
    const a = await run(['mount', 'few:3', mnt, '--root', aufs], env);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/^dataroot: MOUNT_AUFS_UNSUPPORTED: .*export -o DIR/);
    const file = join(work, 'not-a-dir');
    writeFileSync(file, '');
    expect((await run(['mount', 'many:150', file, '--root', roots['vfs']!], env)).stderr).toMatch(/^dataroot: MOUNT_TARGET_NOT_A_DIRECTORY: /);
    expect((await run(['mount', 'many:150', join(work, 'absent'), '--root', roots['vfs']!], env)).stderr).toMatch(/^dataroot: MOUNT_TARGET_MISSING: /);
    expect((await run(['mount', 'many:150', mnt, '--root', roots['vfs']!], env)).code).toBe(0);
    try {
      const again = await run(['mount', 'many:150', mnt, '--root', roots['vfs']!], env);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/^dataroot: MOUNT_TARGET_BUSY: /);
    } finally {
      expect((await run(['umount', mnt], env)).code).toBe(0);
    }
    const u = await run(['umount', mnt], env);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/^dataroot: UMOUNT_NOT_DATAROOT: /);
  });
});

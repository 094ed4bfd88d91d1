import { spawn, spawnSync } from 'node:child_process';
import { createGzip } from 'node:zlib';
import {
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mknod, S_IFCHR, S_IFIFO } from '../../src/io/native.js';
import { tarBytes } from '../../src/formats/tar/writer.js';
import { TYPE } from '../../src/formats/tar/header.js';
import { layerTar, tarOf, writeImageDir } from '../support/images.js';
import { fingerprint } from '../support/tree.js';
import { BIN, run } from '../support/cli.js';
import { bounded, codedFailure, Hostile, spawnBin } from './harness.js';

/**
 * Every hostile-evidence case of issue #13, each asserting: nothing outside the root was read (the
 * canary never appears in any output), nothing outside was written or deleted (the sentinel tree
 * is unchanged), no hang (every run is bounded in time), and a coded error or a listed finding
 * with the right exit code. Read commands also leave the root itself unchanged.
 */

const H = new Hostile();
afterAll(() => H.cleanup());

const CONTAINER = '6e1fc4473ba3e8fcff64203844ec840f5ef8903296e6082fcd879babec0bb1e5';
const MOUNT = 'a84d8821ca20a96678e10220948dcbbcb9273a19bd16b00d68f2de8535d69a5c';
const LAYER_CACHE = '7a2682b41aa92387e5c1ec2c8406ae009eb52649482dc3ba9bef5f3358ed0441';
const LAYER_CHAIN = '1c6a3e5cb7f9eb5f85781225bbf93bfeac761c7c3ce54b93d5e222ac75018708';

interface Want {
  /** Exit codes accepted. */
  code: number[];
  /** The coded error (exit 2) or a code that must appear in the output (finding or problem). */
  shows?: string;
}

/** A read command on a tampered root: the four assertions, and the root left as it was. */
async function read(root: string, args: string[], want: Want, ms = 20_000): Promise<Awaited<ReturnType<typeof bounded>>> {
  const before = fingerprint(root);
  const r = await bounded([...args, '--root', root], ms);
  const where = `dataroot ${args.join(' ')}: exit ${r.code}\n${r.stderr.slice(0, 2000)}`;
  expect(H.leaked(r), where).toBeUndefined();
  expect(H.sentinelChanged(), where).toBeUndefined();
  expect(want.code, where).toContain(r.code);
  if (r.code === 2) expect(codedFailure(r), where).toBeDefined();
  expect(r.stderr, where).not.toMatch(/INTERNAL|\n\s+at /);
  if (want.shows !== undefined) expect(r.stdout + r.stderr, where).toContain(want.shows);
  expect(fingerprint(root), `${where}\nthe root changed`).toEqual(before);
  return r;
}

/** A write command on a tampered root: refused with a coded error, nothing outside touched. */
async function refusedWrite(root: string, args: string[], code: string): Promise<void> {
  const before = fingerprint(root);
  const r = await bounded([...args, '--root', root], 60_000);
  const where = `dataroot ${args.join(' ')}: exit ${r.code}\n${r.stderr}`;
  expect(codedFailure(r), where).toBe(code);
  expect(H.leaked(r), where).toBeUndefined();
  expect(H.sentinelChanged(), where).toBeUndefined();
  expect(fingerprint(root), `${where}\nthe root changed`).toEqual(before);
}

function replaceWithSymlink(path: string, target: string): void {
  rmSync(path, { recursive: true, force: true });
  symlinkSync(target, path);
}

function replaceWith(path: string, kind: 'fifo' | 'zero' | 'dir'): void {
  rmSync(path, { recursive: true, force: true });
  if (kind === 'dir') mkdirSync(path);
  else if (kind === 'fifo') mknod(path, S_IFIFO | 0o600, 0, 0);
  else mknod(path, S_IFCHR | 0o600, 1, 5); // /dev/zero: endless bytes
}

const repos = (root: string, d = 'overlay2'): string => join(root, 'image', d, 'repositories.json');

describe('1. archive roots are unpacked as evidence, never as a system', () => {
  /** An archive holding a valid root plus a 0777 top, a setuid-root binary, a setgid dir, a device and a FIFO. */
  function hostileArchive(): string {
    const src = H.root('fresh');
    spawnSync('chmod', ['0777', src]);
    mkdirSync(join(src, 'bin'));
    writeFileSync(join(src, 'bin', 'su'), '#!/bin/sh\necho root\n');
    spawnSync('chmod', ['4755', join(src, 'bin', 'su')]);
    mkdirSync(join(src, 'shared'));
    spawnSync('chmod', ['2777', join(src, 'shared')]);
    mknod(join(src, 'mem'), S_IFCHR | 0o666, 1, 1);
    mknod(join(src, 'pipe'), S_IFIFO | 0o666, 0, 0);
    const out = join(H.work, `hostile-${Date.now()}.tar.gz`);
    const r = spawnSync('tar', ['--numeric-owner', '-czf', out, '-C', src, '.']);
    expect(r.status, String(r.stderr)).toBe(0);
    return out;
  }

  it('the private dir stays 0700 whatever the archive says; no setuid or setgid file, devices and FIFOs mode 0; unreachable by another user; removed at the end', async () => {
    const archive = hostileArchive();
    const pause = join(H.work, 'pause-done');
    const p = spawnBin(['info', '--root', archive], { DATAROOT_UNPACK_PAUSE_AT: 'done', DATAROOT_UNPACK_PAUSE_FILE: pause });
    for (let i = 0; i < 400 && !existsSync(pause); i++) await new Promise((r) => setTimeout(r, 50));
    const dir = readFileSync(pause, 'utf8');
    expect(statSync(dir).mode & 0o7777).toBe(0o700);
    const modes: string[] = [];
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const st = lstatSync(join(d, n));
        if ((st.mode & 0o6000) !== 0) modes.push(`${n} has setuid/setgid`);
        if ((st.isCharacterDevice() || st.isFIFO() || st.isBlockDevice()) && (st.mode & 0o777) !== 0)
          modes.push(`${n} is a device with mode ${(st.mode & 0o777).toString(8)}`);
        if (st.isDirectory()) walk(join(d, n));
      }
    };
    walk(dir);
    expect(modes).toEqual([]);
    // From an unprivileged user: nothing inside can be reached (let alone run).
    const other = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'ls', join(dir, 'bin')], { encoding: 'utf8' });
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);
    unlinkSync(pause);
    const r = await p.done;
    expect(r.code).toBe(0);
    expect(existsSync(dir)).toBe(false);
  });

  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('%s mid-unpack: the temp dir is removed and the process exits by the signal', async (sig) => {
    const archive = hostileArchive();
    const pause = join(H.work, `pause-${sig}`);
    const p = spawnBin(['images', '--root', archive], { DATAROOT_UNPACK_PAUSE_AT: 'entry', DATAROOT_UNPACK_PAUSE_FILE: pause });
    for (let i = 0; i < 400 && !existsSync(pause); i++) await new Promise((r) => setTimeout(r, 50));
    const dir = readFileSync(pause, 'utf8');
    expect(existsSync(dir)).toBe(true);
    p.kill(sig);
    const r = await p.done;
    // Cleaned up, then the signal raised again: the process ends by it.
    expect(r.signal ?? `exit ${r.code}`).toBe(sig);
    expect(existsSync(dir)).toBe(false);
    rmSync(pause, { force: true });
  });

  it('a FIFO in the archive does not hang anything', async () => {
    const archive = hostileArchive();
    for (const args of [['info'], ['files'], ['images'], ['verify']]) {
      const r = await bounded([...args, '--root', archive], 30_000);
      expect([0, 1]).toContain(r.code);
      expect(H.leaked(r)).toBeUndefined();
    }
  });

  it('a decompression bomb stops at the budget (ARCHIVE_TOO_LARGE), with --unpack-limit to raise it, and leaves nothing behind', async () => {
    // 600 MB of zeros in one member: about 600 KB of gzip, over the default budget (256 MB for a small archive).
    const out = join(H.work, 'bomb.tar.gz');
    const gz = createGzip({ level: 9 });
    const file = createWriteStream(out);
    gz.pipe(file);
    const size = 600 * 2 ** 20;
    const header = tarBytes([
      { entry: { name: new TextEncoder().encode('volumes/metadata.db'), mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 0, type: TYPE.REG } },
    ]).subarray(0, 512);
    const big = Buffer.from(
      tarBytes([
        { entry: { name: new TextEncoder().encode('zeros'), mode: 0o600, uid: 0, gid: 0, size, mtime: 0, type: TYPE.REG }, data: new Uint8Array(0) },
      ]).subarray(0, 512),
    );
    gz.write(header);
    gz.write(big);
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 600; i++) if (!gz.write(chunk)) await new Promise<void>((r) => gz.once('drain', () => r()));
    gz.end(Buffer.alloc(1024));
    await new Promise<void>((r) => file.on('close', () => r()));
    expect(statSync(out).size).toBeLessThan(2 << 20);
    const tmp = join(H.work, 'tmp-bomb');
    mkdirSync(tmp);
    const r = await spawnBin(['info', '--root', out], { TMPDIR: tmp }, 120_000).done;
    expect(codedFailure(r)).toBe('ARCHIVE_TOO_LARGE');
    expect(r.stderr).toMatch(/--unpack-limit/);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('cleanup on every exit', () => {
  it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)(
    '%s mid-inject (a layer extracted into staging): staging and the temp dir are removed, the root keeps nothing of it',
    async (sig) => {
      const root = H.root();
      const before = fingerprint(root);
      const dir = join(H.work, `img-signal-${sig}`);
      writeImageDir(dir, {
        layers: [
          layerTar([
            { name: 'a/', type: 'dir' },
            { name: 'a/b', data: 'b'.repeat(100_000) },
          ]),
        ],
        tags: [`signal/${sig.toLowerCase()}:1`],
      });
      const pause = join(H.work, `pause-inject-${sig}`);
      // A private TMPDIR: other processes' temp dirs are not this one's.
      const tmp = join(H.work, `tmp-inject-${sig}`);
      mkdirSync(tmp);
      const p = spawnBin(['inject', dir, '--root', root], { DATAROOT_INJECT_PAUSE_AT: 'layer-extracted', DATAROOT_INJECT_PAUSE_FILE: pause, TMPDIR: tmp });
      for (let i = 0; i < 400 && !existsSync(pause); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(pause)).toBe(true);
      // The layer is in staging now.
      expect(readdirSync(join(root, 'overlay2')).some((n) => n.includes('.dataroot-staging'))).toBe(true);
      expect(readdirSync(tmp).filter((n) => n.startsWith('dataroot-inject-')).length).toBe(1);
      p.kill(sig);
      const r = await p.done;
      expect(r.signal ?? `exit ${r.code}`).toBe(sig);
      rmSync(pause, { force: true });
      expect(readdirSync(join(root, 'overlay2')).filter((n) => n.includes('.dataroot-staging'))).toEqual([]);
      expect(readdirSync(tmp)).toEqual([]);
      expect(H.sentinelChanged()).toBeUndefined();
      // Only directory times may differ from before (the staging dir came and went).
      const after = fingerprint(root);
      expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    },
  );

  it("a reader that goes away (EPIPE) still removes an archive root's temp dir", async () => {
    const root = H.root('fresh');
    const archive = join(H.work, 'epipe.tar.gz');
    expect(spawnSync('tar', ['--numeric-owner', '-czf', archive, '-C', root, '.']).status).toBe(0);
    const pause = join(H.work, 'pause-epipe');
    const child = spawn(process.execPath, [BIN, 'files', '--root', archive], {
      env: { ...process.env, DATAROOT_UNPACK_PAUSE_AT: 'done', DATAROOT_UNPACK_PAUSE_FILE: pause },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    for (let i = 0; i < 400 && !existsSync(pause); i++) await new Promise((r) => setTimeout(r, 50));
    const dir = readFileSync(pause, 'utf8');
    child.stdout.destroy(); // the reader is gone before the first byte
    unlinkSync(pause);
    const code = await closed;
    expect([0, 1, 141]).toContain(code);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('2. gc never deletes outside the root', () => {
  it("an orphan layer whose cache-id is ../../../../outside/victim, and a mount whose mount-id is the same: only the root's own entries go", async () => {
    const root = H.root();
    const layers = join(root, 'image/overlay2/layerdb/sha256');
    const orphan = join(layers, 'f'.repeat(64));
    mkdirSync(orphan);
    for (const f of ['diff', 'size']) writeFileSync(join(orphan, f), readFileSync(join(layers, LAYER_CHAIN, f)));
    writeFileSync(join(orphan, 'cache-id'), '../../../../outside/victim');
    const mount = join(root, 'image/overlay2/layerdb/mounts', 'e'.repeat(64));
    mkdirSync(mount);
    writeFileSync(join(mount, 'mount-id'), '../../../outside/victim');
    writeFileSync(join(mount, 'init-id'), '../../../outside/victim-init');
    const dry = await read(root, ['gc', '--dry-run'], { code: [0] });
    // The dry run names every path it would remove, and none is outside.
    expect(dry.stdout).toContain(`image/overlay2/layerdb/sha256/${'f'.repeat(64)}`);
    expect(dry.stdout).toContain(`image/overlay2/layerdb/mounts/${'e'.repeat(64)}`);
    for (const line of dry.stdout.split('\n').filter((l) => l.startsWith('  '))) expect(line.trim().startsWith(root)).toBe(true);
    expect(dry.stdout).not.toMatch(/victim/);
    const r = await bounded(['gc', '--root', root]);
    expect(r.code).toBe(0);
    expect(H.sentinelChanged()).toBeUndefined();
    expect(existsSync(orphan)).toBe(false);
    expect(existsSync(mount)).toBe(false);
    const v = await read(root, ['verify'], { code: [0, 1] });
    expect(v.stdout).not.toMatch(/ORPHAN_LAYER/);
  });

  it('verify names the invalid ids as ID_INVALID errors', async () => {
    const root = H.root();
    writeFileSync(join(root, 'image/overlay2/layerdb/sha256', LAYER_CHAIN, 'cache-id'), '../../../../outside/victim');
    writeFileSync(join(root, 'image/overlay2/layerdb/mounts', CONTAINER, 'mount-id'), '../../../outside/victim');
    const r = await read(root, ['verify'], { code: [1], shows: 'ID_INVALID' });
    expect(r.stdout.match(/ID_INVALID/g)?.length).toBeGreaterThanOrEqual(2);
  });
});

describe('5. inject refuses hostile layers and targets before it writes', () => {
  it('a whiteout of ".." (.wh...) into a vfs root: refused, vfs/dir intact; verify ARCHIVE refuses it too', async () => {
    const root = H.root('after-build-vfs');
    const dir = join(H.work, 'img-whdotdot');
    writeImageDir(dir, {
      layers: [
        layerTar([
          { name: 'a/', type: 'dir' },
          { name: 'a/.wh...', data: '' },
        ]),
      ],
      tags: ['evil/wh:1'],
    });
    const tar = join(H.work, 'whdotdot.tar');
    tarOf(dir, tar);
    await refusedWrite(root, ['inject', tar], 'ARCHIVE_LAYER_UNSAFE');
    for (const name of ['.wh.', '.wh..']) {
      const d2 = join(H.work, `img-${name}`);
      writeImageDir(d2, { layers: [layerTar([{ name, data: '' }])], tags: ['evil/wh:2'] });
      await refusedWrite(root, ['inject', d2], 'ARCHIVE_LAYER_UNSAFE');
    }
    const v = await bounded(['verify', tar]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain('ARCHIVE_LAYER_UNSAFE');
  });

  it('a parent layer whose cache-id leads outside: refused, nothing copied from outside', async () => {
    const root = H.root('after-build-vfs');
    const chain = readdirSync(join(root, 'image/vfs/layerdb/sha256'))[0]!;
    // The layer as docker save exports it, to build an image on top of it.
    const base = join(H.work, 'vfs-base.tar');
    const lt = await run(['layer', 'tar', chain, '-o', base, '--root', root]);
    expect(lt.code).toBe(0);
    writeFileSync(join(root, 'image/vfs/layerdb/sha256', chain, 'cache-id'), '../../../../outside/canary-dir');
    const dir = join(H.work, 'img-on-top');
    writeImageDir(dir, { layers: [readFileSync(base), layerTar([{ name: 'top', data: 'x' }])], tags: ['evil/top:1'] });
    await refusedWrite(root, ['inject', dir], 'STORE_LAYER_BROKEN');
  });

  it.each([
    ['image/<driver>/imagedb is a symlink out of the root', 'after-build-vfs', 'image/vfs/imagedb'],
    ['overlay2/l is a symlink out of the root', 'after-build', 'overlay2/l'],
    ['image/<driver>/layerdb/sha256 is a symlink out of the root', 'after-build', 'image/overlay2/layerdb/sha256'],
  ])('%s: STORE_TARGET_UNSAFE before any write', async (_name, sample, rel) => {
    const root = H.root(sample);
    replaceWithSymlink(join(root, rel), H.victim);
    const dir = join(H.work, `img-target-${rel.replace(/\//g, '_')}`);
    writeImageDir(dir, { layers: [layerTar([{ name: 'x', data: 'x' }])], tags: ['evil/t:1'] });
    await refusedWrite(root, ['inject', dir], 'STORE_TARGET_UNSAFE');
    await refusedWrite(root, ['gc'], 'STORE_TARGET_UNSAFE');
  });

  it('a corrupt repositories.json is found before layers and config are written', async () => {
    const root = H.root();
    writeFileSync(repos(root), '{"Repositories": {"x": ');
    const dir = join(H.work, 'img-repos');
    writeImageDir(dir, { layers: [layerTar([{ name: 'y', data: 'y' }])], tags: ['evil/r:1'] });
    await refusedWrite(root, ['inject', dir], 'REPOSITORIES_INVALID');
  });
});

describe('6. read commands never follow a symlink or ../ out of the root', () => {
  it.each([
    ['absolute', (): string => H.canaryFile],
    ['relative', (): string => H.relTo(3, H.canaryFile)],
  ])('repositories.json as a %s symlink to a file outside: cat refuses, images lists no tag from it, verify reports it', async (_kind, target) => {
    const root = H.root();
    replaceWithSymlink(repos(root), target());
    await read(root, ['cat', 'image/overlay2/repositories.json'], { code: [2], shows: 'SYMLINK_OUT_OF_ROOT' });
    await read(root, ['cat', '--raw', 'image/overlay2/repositories.json'], { code: [2], shows: 'SYMLINK_OUT_OF_ROOT' });
    const imgs = await read(root, ['images'], { code: [1], shows: 'SYMLINK_OUT_OF_ROOT' });
    expect(imgs.stdout).not.toContain('buildtest');
    await read(root, ['verify'], { code: [1], shows: 'SYMLINK_OUT_OF_ROOT' });
    await read(root, ['info'], { code: [0, 1] });
  });

  it("a container's diff directory as a symlink to a directory outside: container diff refuses, never lists or hashes it", async () => {
    const root = H.root();
    replaceWithSymlink(join(root, 'overlay2', MOUNT, 'diff'), H.canaryDir);
    await read(root, ['container', 'diff', 'sample'], { code: [2], shows: 'SYMLINK_OUT_OF_ROOT' });
    await read(root, ['container', 'diff', 'sample', '--json'], { code: [2], shows: 'SYMLINK_OUT_OF_ROOT' });
    await read(root, ['verify', '--deep'], { code: [1], shows: 'SYMLINK_OUT_OF_ROOT' });
  });

  it('an overlay2/l link of an image layer pointing to a directory outside: never walked', async () => {
    const root = H.root();
    const link = readFileSync(join(root, 'overlay2', LAYER_CACHE, 'link'), 'utf8');
    replaceWithSymlink(join(root, 'overlay2/l', link), H.canaryDir);
    await read(root, ['container', 'diff', 'sample', '--json'], { code: [2], shows: 'SYMLINK_OUT_OF_ROOT' });
    await read(root, ['container', 'inspect', 'sample'], { code: [0, 1] });
    await read(root, ['verify', '--deep'], { code: [1], shows: 'SYMLINK_OUT_OF_ROOT' });
  });

  it("a layer's diff directory as a symlink out: verify --deep reports it and no name or size from outside", async () => {
    const root = H.root();
    replaceWithSymlink(join(root, 'overlay2', LAYER_CACHE, 'diff'), H.canaryDir);
    await read(root, ['verify', '--deep', '--json'], { code: [1], shows: 'SYMLINK_OUT_OF_ROOT' });
    await read(root, ['layer', 'tar', LAYER_CHAIN.slice(0, 12), '-o', join(H.work, 'never.tar')], { code: [2] });
  });

  it.each([
    ['config.v2.json', (root: string) => join(root, 'containers', CONTAINER, 'config.v2.json'), ['containers'], 'SYMLINK_OUT_OF_ROOT'],
    [
      'an image config',
      (root: string) => join(root, 'image/overlay2/imagedb/content/sha256', readdirSync(join(root, 'image/overlay2/imagedb/content/sha256'))[0]!),
      ['images', '-a'],
      'SYMLINK_OUT_OF_ROOT',
    ],
    ['a layer cache-id file', (root: string) => join(root, 'image/overlay2/layerdb/sha256', LAYER_CHAIN, 'cache-id'), ['layers'], 'SYMLINK_OUT_OF_ROOT'],
    ['local-kv.db', (root: string) => join(root, 'network/files/local-kv.db'), ['networks'], 'SYMLINK_OUT_OF_ROOT'],
    ['the containers directory', (root: string) => join(root, 'containers'), ['verify'], 'SYMLINK_OUT_OF_ROOT'],
  ])('%s as a symlink to the canary: reported, not followed', async (_name, pathOf, args, code) => {
    const root = H.root();
    const p = pathOf(root);
    replaceWithSymlink(p, _name === 'the containers directory' ? H.canaryDir : H.canaryFile);
    await read(root, args, { code: [0, 1], shows: code });
    await read(root, ['verify'], { code: [1], shows: code });
  });
});

describe('7. a FIFO or device where a file belongs never blocks or floods a read', () => {
  it.each([
    ['volumes/metadata.db', ['info', 'volumes', 'verify']],
    ['image/overlay2/repositories.json', ['images', 'verify', 'info']],
    [`containers/${CONTAINER}/config.v2.json`, ['containers', 'verify']],
    ['network/files/local-kv.db', ['networks', 'verify', 'info']],
  ])('a FIFO as %s', async (rel, commands) => {
    const root = H.root();
    replaceWith(join(root, rel), 'fifo');
    for (const c of commands) await read(root, [c], { code: [0, 1] }, 15_000);
    await read(root, ['cat', rel], { code: [2], shows: 'FILE_NOT_REGULAR' }, 15_000);
    await read(root, ['bolt', 'dump', 'network/files/local-kv.db'], { code: rel.endsWith('local-kv.db') ? [2] : [0] }, 15_000);
  });

  it('a character device (endless zeros) as repositories.json: refused at once, bounded memory', async () => {
    const root = H.root();
    replaceWith(repos(root), 'zero');
    const rss = process.memoryUsage().rss;
    await read(root, ['images'], { code: [1], shows: 'FILE_NOT_REGULAR' }, 15_000);
    await read(root, ['verify'], { code: [1], shows: 'FILE_NOT_REGULAR' }, 15_000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 << 20);
  });
});

describe('8. no stack overflow on sizes and depths an attacker controls', () => {
  it('files on a root of 125,000 files', async () => {
    const root = H.root('fresh');
    const dir = join(root, 'volumes', 'many', '_data');
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 125; i++) {
      const sub = join(dir, String(i));
      mkdirSync(sub);
      for (let k = 0; k < 1000; k++) writeFileSync(join(sub, String(k)), '');
    }
    const r = await bounded(['files', '--root', root], 120_000);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').length).toBeGreaterThan(125_000);
  }, 240_000);

  it('JSON nested 100,000 deep as config.v2.json, an image config and repositories.json: JSON_TOO_DEEP, listed', async () => {
    const root = H.root();
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    writeFileSync(join(root, 'containers', CONTAINER, 'config.v2.json'), deep);
    await read(root, ['containers'], { code: [1], shows: 'JSON_TOO_DEEP' });
    writeFileSync(repos(root), `{"Repositories":${deep}}`);
    await read(root, ['images'], { code: [1], shows: 'JSON_TOO_DEEP' });
    await read(root, ['cat', 'image/overlay2/repositories.json'], { code: [0] });
    await read(root, ['verify'], { code: [1], shows: 'JSON_TOO_DEEP' });
  });

  it('a 20 MB repositories.json of 200,000 tags lists every tag', async () => {
    const root = H.root();
    const doc = JSON.parse(readFileSync(repos(root), 'utf8')) as { Repositories: Record<string, Record<string, string>> };
    const id = Object.values(doc.Repositories)[0]![Object.keys(Object.values(doc.Repositories)[0]!)[0]!]!;
    const inner: Record<string, string> = {};
    for (let i = 0; i < 200_000; i++) inner[`many/tags:t${i}`] = id;
    doc.Repositories['many/tags'] = inner;
    writeFileSync(repos(root), JSON.stringify(doc));
    const r = await bounded(['images', '--root', root], 120_000);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l.startsWith('many/tags ')).length).toBe(200_000);
  }, 180_000);
});

describe('9. verify never calls an unreadable repositories.json absent', () => {
  it('a directory', async () => {
    const root = H.root();
    replaceWith(repos(root), 'dir');
    await read(root, ['verify'], { code: [1], shows: 'FILE_NOT_REGULAR' });
  });

  it('a 600 MB sparse file', async () => {
    const root = H.root();
    truncateSync(repos(root), 600 * 2 ** 20);
    await read(root, ['verify'], { code: [1], shows: 'FILE_TOO_LARGE' });
    await read(root, ['images'], { code: [1], shows: 'FILE_TOO_LARGE' });
  });
});

describe('10. names with terminal escape sequences are escaped in human output', () => {
  it('a container named with OSC and CSI codes', async () => {
    const root = H.root();
    const p = join(root, 'containers', CONTAINER, 'config.v2.json');
    const cfg = JSON.parse(readFileSync(p, 'utf8')) as { Name: string };
    cfg.Name = '/x\u001b]0;pwned\u0007\u001b[2J\u009b31m';
    writeFileSync(p, JSON.stringify(cfg));
    const r = await read(root, ['containers'], { code: [0, 1] });
    // eslint-disable-next-line no-control-regex -- asserts that no control character reaches the terminal
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(r.stdout).toContain('x\\033]0;pwned\\a\\033[2J\\23331m');
    // --json is unchanged: JSON escapes them itself.
    const j = await read(root, ['containers', '--json'], { code: [0, 1] });
    expect((JSON.parse(j.stdout) as { Names: string[] }[])[0]!.Names[0]).toBe('/x\u001b]0;pwned\u0007\u001b[2J\u009b31m');
  });
});

describe('11. a directory that is not a data-root is refused', () => {
  it.each([['/etc'], ['a dir with only network/ and containerd/']])('%s: STORE_NOT_A_DATAROOT, exit 2', async (what) => {
    let dir = what;
    if (!what.startsWith('/')) {
      dir = join(H.work, 'not-a-root');
      mkdirSync(join(dir, 'network'), { recursive: true });
      mkdirSync(join(dir, 'containerd'));
    }
    for (const c of [['info'], ['images'], ['verify'], ['files']]) {
      const r = await bounded([...c, '--root', dir]);
      expect(codedFailure(r)).toBe('STORE_NOT_A_DATAROOT');
    }
  });
});

describe('12. small ones', () => {
  it('cat of a file whose name starts with two dots works; "../x" is refused', async () => {
    const root = H.root();
    writeFileSync(join(root, '..weird'), 'fine\n');
    const r = await read(root, ['cat', '..weird'], { code: [0] });
    expect(r.stdout).toBe('fine\n');
    await read(root, ['cat', '../outside/canary.txt'], { code: [2], shows: 'USAGE_PATH_OUTSIDE_ROOT' });
    await read(root, ['cat', 'image/../../outside/canary.txt'], { code: [2], shows: 'USAGE_PATH_OUTSIDE_ROOT' });
  });

  it('layer tar -o into a directory that does not exist: USAGE_OUTPUT_DIR_MISSING', async () => {
    const root = H.root();
    await read(root, ['layer', 'tar', LAYER_CHAIN.slice(0, 12), '-o', '/nonexistent/x'], { code: [2], shows: 'USAGE_OUTPUT_DIR_MISSING' });
  });

  it.each([
    [['history', 'nosuch:tag'], 'IMAGE_NOT_FOUND'],
    [['image', 'inspect', 'nosuch:tag'], 'IMAGE_NOT_FOUND'],
    [['container', 'diff', 'nosuch'], 'CONTAINER_NOT_FOUND'],
    [['container', 'inspect', 'nosuch'], 'CONTAINER_NOT_FOUND'],
    [['verify', '--image', 'nosuch:tag'], 'IMAGE_NOT_FOUND'],
    [['layer', 'tar', 'abcdef'], 'LAYER_NOT_FOUND'],
  ])('%j: exit 1, as docker exits for "No such …"', async (args, code) => {
    const root = H.root();
    const r = await read(root, args, { code: [1], shows: code });
    expect(r.stderr).toMatch(new RegExp(`^dataroot: ${code}: `));
  });
});

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ManifestEntry } from '../../src/formats/snapstore/manifest.js';
import { nativeAvailable } from '../../src/io/native.js';
import { manifestOf } from '../../src/store/snapshots/manifest.js';
import { SnapshotStore } from '../../src/store/snapshots/store.js';
import { BIN } from '../support/cli.js';

/**
 * A snapshot store may come from elsewhere, prepared by an attacker (issue 13, items 3 and 4).
 * For each case: a coded error with exit 2 (never INTERNAL, never a hang), nothing outside the
 * target written or deleted (a sha256 and mtime listing of a sentinel tree beside it is the same
 * before and after), and a canary file outside never appears in the output.
 */
const CANARY = `canary-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`;

let work: string;
let sentinel: string;

/** Every path of the sentinel tree with its type, sha256 (files) or target (symlinks), and mtime. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    const st = lstatSync(p);
    const what = st.isFile()
      ? createHash('sha256').update(readFileSync(p)).digest('hex')
      : st.isSymbolicLink()
        ? `-> ${readlinkSync(p)}`
        : st.isDirectory()
          ? 'dir'
          : 'other';
    out.push(`${rel} ${what} ${st.mtimeMs} ${st.mode.toString(8)}`);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n), `${rel}/${n}`);
  };
  walk(dir, '.');
  return out;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  expect(r.error, `${args.join(' ')} did not finish in time`).toBeUndefined();
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Runs a command that must be refused: exit 2 with the code, the sentinel untouched, the canary unseen. */
function refused(args: string[], code: string): string {
  const before = listing(sentinel);
  const r = cli(args);
  expect(r.out).toContain(`dataroot: ${code}:`);
  expect(r.out).not.toContain('INTERNAL');
  expect(r.out).not.toContain(CANARY);
  expect(r.code, r.out).toBe(2);
  expect(listing(sentinel)).toEqual(before);
  return r.out;
}

/** A fresh store holding one snapshot `good` of a small tree (file, dir, symlink, hard link). */
function goodStore(name: string): string {
  const tree = join(work, `${name}-tree`);
  mkdirSync(join(tree, 'd'), { recursive: true });
  writeFileSync(join(tree, 'd', 'f'), 'content of f\n');
  writeFileSync(join(tree, 'g'), 'content of g\n');
  symlinkSync('d/f', join(tree, 'l'));
  const store = join(work, name);
  const r = cli(['snapshot', '--root', tree, '--store', store, '--name', 'good']);
  expect(r.code, r.out).toBe(0);
  return store;
}

/** Replaces the manifest of `good` with these entries (a gzip manifest, as early stores have), and its sha256 in the registry. */
function forge(store: string, edit: (entries: ManifestEntry[]) => ManifestEntry[]): void {
  const s = SnapshotStore.open(store, { create: false });
  const snap = s.find('good');
  const entries = edit(s.readManifest(snap).entries());
  s.close();
  const m = manifestOf({ name: 'good', created: snap.created, source: snap.source, options: snap.options }, entries);
  const bytes = gzipSync(Buffer.concat(m.parts()));
  writeFileSync(join(store, snap.manifest), bytes);
  const regPath = join(store, 'registry.json');
  const reg = JSON.parse(readFileSync(regPath, 'utf8')) as { snapshots: { name: string; manifestSha256: string }[] };
  reg.snapshots.find((x) => x.name === 'good')!.manifestSha256 = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(regPath, JSON.stringify(reg));
}

function editRegistry(store: string, edit: (s: Record<string, unknown>) => void): void {
  const regPath = join(store, 'registry.json');
  const reg = JSON.parse(readFileSync(regPath, 'utf8')) as { snapshots: Record<string, unknown>[] };
  edit(reg.snapshots[0]!);
  writeFileSync(regPath, JSON.stringify(reg));
}

const fileEntry = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry => ({
  path,
  type: 'file',
  mode: 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtime: '0',
  atime: '0',
  ctime: '0',
  ino: '9',
  dev: '1',
  nlink: 1,
  ...extra,
});
const dirEntry = (path: string): ManifestEntry => ({ ...fileEntry(path), type: 'dir', mode: 0o755 });

describe.runIf(nativeAvailable())('hostile snapshot stores', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-hostile-snap-'));
    sentinel = join(work, 'sentinel');
    mkdirSync(join(sentinel, 'inner'), { recursive: true });
    writeFileSync(join(sentinel, 'canary'), CANARY);
    writeFileSync(join(sentinel, 'precious'), 'do not delete');
    writeFileSync(join(sentinel, 'inner', 'x'), 'x');
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  describe('restore never writes outside --to', () => {
    const target = (n: string): string => join(work, `to-${n}`);
    const restoreRefused = (store: string, n: string, code: string): void => {
      refused(['restore', 'good', '--store', store, '--to', target(n)], code);
      expect(existsSync(target(n)), 'nothing was written: not even the target').toBe(false);
    };

    it.each([
      ['a path ../x', (es: ManifestEntry[]) => [...es, fileEntry('../sentinel/evil')]],
      [
        'a path ../x hidden in pathBase64',
        (es: ManifestEntry[]) => [...es, fileEntry('innocent', { pathBase64: Buffer.from('../sentinel/evil').toString('base64') })],
      ],
      ['an absolute path', (es: ManifestEntry[]) => [...es, fileEntry(join(work, 'sentinel', 'evil'))]],
      ['a path with an inner ..', (es: ManifestEntry[]) => [...es, fileEntry('d/../../sentinel/evil')]],
    ])('%s: RESTORE_PATH_UNSAFE', (name, edit) => {
      const store = goodStore(`path-${name.replace(/\W+/g, '-')}`);
      forge(store, edit);
      restoreRefused(store, name.replace(/\W+/g, '-'), 'RESTORE_PATH_UNSAFE');
      expect(existsSync(join(sentinel, 'evil'))).toBe(false);
    });

    it.each([
      [
        'a file through a symlink to a directory outside',
        (es: ManifestEntry[]) => [...es, { ...fileEntry('out'), type: 'symlink' as const, mode: 0o777, target: sentinel }, fileEntry('out/evil')],
      ],
      [
        'a directory through a symlink',
        (es: ManifestEntry[]) => [...es, { ...fileEntry('out'), type: 'symlink' as const, mode: 0o777, target: sentinel }, dirEntry('out/evil-dir')],
      ],
      ['a file under a file', (es: ManifestEntry[]) => [...es, fileEntry('g/evil')]],
      ['a path before its parent directory', (es: ManifestEntry[]) => [es[0]!, fileEntry('later/evil'), ...es.slice(1), dirEntry('later')]],
    ])('%s: RESTORE_PARENT_NOT_DIR', (name, edit) => {
      const store = goodStore(`parent-${name.replace(/\W+/g, '-')}`);
      forge(store, edit);
      restoreRefused(store, `p-${name.replace(/\W+/g, '-')}`, 'RESTORE_PARENT_NOT_DIR');
      expect(readdirSync(sentinel).sort()).toEqual(['canary', 'inner', 'precious']);
    });

    it.each([
      ['outside the snapshot', '../sentinel/precious'],
      ['absent', 'no-such-entry'],
      ['to an absolute path', '/etc/passwd'],
      ['to a later entry', 'zz-later'],
      ['to a directory', 'd'],
    ])('a hard link %s: RESTORE_LINK_INVALID', (name, link) => {
      const store = goodStore(`link-${name.replace(/\W+/g, '-')}`);
      forge(store, (es) => [...es, fileEntry('hl', { nlink: 2, link }), fileEntry('zz-later')]);
      restoreRefused(store, `l-${name.replace(/\W+/g, '-')}`, 'RESTORE_LINK_INVALID');
    });

    it('a path listed twice (a file, then a directory of the same name): RESTORE_PATH_DUPLICATE', () => {
      const store = goodStore('dup');
      forge(store, (es) => [...es, dirEntry('g')]);
      restoreRefused(store, 'dup', 'RESTORE_PATH_DUPLICATE');
    });

    it('a good restore: the target is 0700 while it is written, then gets the snapshot root mode', async () => {
      const store = goodStore('mode');
      const to = target('mode');
      const pause = join(work, 'restore-pause');
      const child = spawn(process.execPath, [BIN, 'restore', 'good', '--store', store, '--to', to], {
        env: { ...process.env, DATAROOT_RESTORE_PAUSE_FILE: pause },
        stdio: 'ignore',
      });
      const done = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      for (let i = 0; i < 600 && !existsSync(pause); i++) await new Promise((r) => setTimeout(r, 50));
      expect(statSync(to).mode & 0o777).toBe(0o700);
      rmSync(pause);
      expect(await done).toBe(0);
      expect(statSync(to).mode & 0o777).toBe(statSync(join(work, 'mode-tree')).mode & 0o777);
    });
  });

  describe('snapshot rm deletes nothing outside the store', () => {
    it.each([
      ['a manifest named ../precious', (s: Record<string, unknown>) => (s['manifest'] = '../sentinel/precious')],
      ['a manifest named by an absolute path', (s: Record<string, unknown>) => (s['manifest'] = join(work, 'sentinel', 'precious'))],
      ['a manifest through snapshots/..', (s: Record<string, unknown>) => (s['manifest'] = 'snapshots/../../sentinel/precious.manifest')],
      ['a pack name with a slash', (s: Record<string, unknown>) => (s['packs'] = ['../../sentinel/precious'])],
      ['a snapshot name with a slash', (s: Record<string, unknown>) => (s['name'] = '../sentinel/precious')],
    ])('%s: SNAPSHOT_STORE_CORRUPT', (name, edit) => {
      const store = goodStore(`rm-${name.replace(/\W+/g, '-')}`);
      editRegistry(store, edit);
      refused(['snapshot', 'rm', 'good', '--store', store], 'SNAPSHOT_STORE_CORRUPT');
      expect(readFileSync(join(sentinel, 'precious'), 'utf8')).toBe('do not delete');
    });
  });

  describe('the store files are read safely', () => {
    it('registry.json a FIFO: SNAPSHOT_STORE_NOT_A_FILE, no hang', () => {
      const store = goodStore('fifo-registry');
      rmSync(join(store, 'registry.json'));
      spawnSync('mkfifo', [join(store, 'registry.json')]);
      refused(['snapshots', '--store', store], 'SNAPSHOT_STORE_NOT_A_FILE');
    });

    it('registry.json a symlink to the canary: SNAPSHOT_STORE_SYMLINK, the canary never read', () => {
      const store = goodStore('link-registry');
      rmSync(join(store, 'registry.json'));
      symlinkSync(join(sentinel, 'canary'), join(store, 'registry.json'));
      refused(['snapshots', '--store', store], 'SNAPSHOT_STORE_SYMLINK');
    });

    it('registry.json of 300 MB (sparse): SNAPSHOT_STORE_FILE_TOO_LARGE', () => {
      const store = goodStore('huge-registry');
      truncateSync(join(store, 'registry.json'), 300 << 20);
      refused(['snapshots', '--store', store], 'SNAPSHOT_STORE_FILE_TOO_LARGE');
    });

    it('a manifest that is a character device: SNAPSHOT_STORE_NOT_A_FILE', () => {
      const store = goodStore('dev-manifest');
      const m = join(store, 'snapshots', 'good.manifest');
      rmSync(m);
      const r = spawnSync('mknod', [m, 'c', '1', '5']); // /dev/zero's numbers
      if (r.status !== 0) return; // not root: no device can be made here
      refused(['snapshot', 'show', 'good', '--store', store], 'SNAPSHOT_STORE_NOT_A_FILE');
    });

    it('a pack index that is a FIFO: SNAPSHOT_STORE_NOT_A_FILE, no hang', () => {
      const store = goodStore('fifo-idx');
      const idx = readdirSync(join(store, 'packs')).find((n) => n.endsWith('.idx'))!;
      rmSync(join(store, 'packs', idx));
      spawnSync('mkfifo', [join(store, 'packs', idx)]);
      refused(['restore', 'good', '--store', store, '--to', join(work, 'to-fifo-idx')], 'SNAPSHOT_STORE_NOT_A_FILE');
    });

    it('packs/ a symlink to a directory outside: SNAPSHOT_STORE_SYMLINK, nothing there removed', () => {
      const store = goodStore('link-packs');
      rmSync(join(store, 'packs'), { recursive: true });
      symlinkSync(sentinel, join(store, 'packs'));
      refused(['snapshot', 'rm', 'good', '--store', store], 'SNAPSHOT_STORE_SYMLINK');
    });
  });

  describe('a signal leaves no temp files', () => {
    const waitFor = async (p: string): Promise<void> => {
      for (let i = 0; i < 600 && !existsSync(p); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(p)).toBe(true);
    };

    it.each(['SIGTERM', 'SIGINT', 'SIGHUP'] as const)('%s mid-snapshot: no pack, no manifest, no temp file; nothing registered', async (sig) => {
      const store = goodStore(`sig-snap-${sig}`);
      const before = readdirSync(join(store, 'packs')).sort();
      const reg = readFileSync(join(store, 'registry.json'), 'utf8');
      const tree = join(work, `sig-snap-${sig}-tree`);
      writeFileSync(join(tree, 'new-file'), 'new content that makes a pack\n');
      const pause = join(work, `pause-${sig}`);
      const child = spawn(process.execPath, [BIN, 'snapshot', '--root', tree, '--store', store, '--name', 'second'], {
        env: { ...process.env, DATAROOT_SNAPSHOT_PAUSE_FILE: pause },
        stdio: 'ignore',
      });
      const done = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, s) => res(s)));
      await waitFor(pause);
      expect(readdirSync(join(store, 'packs')).length).toBe(before.length + 1); // the new pack is there, being written
      child.kill(sig);
      rmSync(pause); // the walk goes on, and the signal is handled at once
      expect(await done).toBe(sig);
      expect(readdirSync(join(store, 'packs')).sort()).toEqual(before);
      expect(readdirSync(join(store, 'snapshots'))).toEqual(['good.manifest']);
      expect(readdirSync(store).filter((n) => n.startsWith('.'))).toEqual([]);
      expect(readFileSync(join(store, 'registry.json'), 'utf8')).toBe(reg);
    });

    it.each(['SIGTERM', 'SIGINT'] as const)('%s mid-restore: what was written is removed, the target too when restore made it', async (sig) => {
      const store = goodStore(`sig-restore-${sig}`);
      const to = join(work, `sig-restore-${sig}-to`);
      const pause = join(work, `rpause-${sig}`);
      const child = spawn(process.execPath, [BIN, 'restore', 'good', '--store', store, '--to', to], {
        env: { ...process.env, DATAROOT_RESTORE_PAUSE_FILE: pause },
        stdio: 'ignore',
      });
      const done = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, s) => res(s)));
      await waitFor(pause);
      expect(readdirSync(to).length).toBeGreaterThan(0);
      child.kill(sig);
      rmSync(pause);
      expect(await done).toBe(sig);
      expect(existsSync(to)).toBe(false);
      // into a target that existed: emptied again, kept
      mkdirSync(to);
      const again = spawn(process.execPath, [BIN, 'restore', 'good', '--store', store, '--to', to], {
        env: { ...process.env, DATAROOT_RESTORE_PAUSE_FILE: pause },
        stdio: 'ignore',
      });
      const done2 = new Promise<NodeJS.Signals | null>((res) => again.on('exit', (_c, s) => res(s)));
      await waitFor(pause);
      again.kill(sig);
      rmSync(pause);
      expect(await done2).toBe(sig);
      expect(readdirSync(to)).toEqual([]);
    });
  });
});

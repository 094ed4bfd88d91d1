import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, indexEntry } from '../src/formats/snapstore/index.js';
import { addonState, nativeAvailable, NEEDS_ADDON } from '../src/io/native.js';
import { zstdBackend } from '../src/io/zstd.js';
import { SnapshotStore } from '../src/store/snapshots/store.js';
import { runBin } from './support/cli.js';

/**
 * Every install reads every store: the two kinds of store that exist (test/fixtures/snapstore,
 * made by scripts/fixtures-snapstore.ts through the codecs) read as expected with the addon
 * turned off (DATAROOT_NO_NATIVE: zstd then comes from Node or fzstd, brotli from Node).
 */
const FIXTURES = fileURLToPath(new URL('./fixtures/snapstore/', import.meta.url));
const STORES = ['v1-brotli', 'v2-zstd'] as const;

interface Expected {
  version: number;
  snapshots: { name: string }[];
  entries: unknown[];
  index: { sha256: string; offset: number; size: number }[];
  contents: Record<string, { sha256: string; base64: string }>;
}

const expectedOf = (name: string): Expected => JSON.parse(readFileSync(join(FIXTURES, `${name}.expected.json`), 'utf8')) as Expected;

describe('stores written elsewhere read here without the addon', () => {
  let work: string;
  const saved = process.env['DATAROOT_NO_NATIVE'];
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-fixtures-'));
    for (const s of STORES) cpSync(join(FIXTURES, s), join(work, s), { recursive: true });
    process.env['DATAROOT_NO_NATIVE'] = '1';
  });
  afterAll(() => {
    if (saved === undefined) delete process.env['DATAROOT_NO_NATIVE'];
    else process.env['DATAROOT_NO_NATIVE'] = saved;
    rmSync(work, { recursive: true, force: true });
  });

  it('the addon is off, and says so', () => {
    expect(nativeAvailable()).toBe(false);
    expect(addonState()).toMatchObject({ state: 'disabled' });
    expect(addonState().unavailable).toContain('snapshot');
    expect(zstdBackend()).not.toBe('addon');
  });

  it.each(STORES)('%s: registry, index, manifest and every object, as expected', (name) => {
    const want = expectedOf(name);
    const store = SnapshotStore.open(join(work, name), { create: false });
    try {
      expect(store.snapshots()).toEqual(want.snapshots);
      const idx = readdirIdx(join(work, name));
      const ix = decodeIndex(readFileSync(idx));
      expect(Array.from({ length: ix.count }, (_, i) => indexEntry(ix, i))).toEqual(want.index);
      expect(store.readManifest(store.snapshots()[0]!).entries()).toEqual(want.entries);
      for (const [path, c] of Object.entries(want.contents)) expect(store.readAll(c.sha256, path).toString('base64'), path).toBe(c.base64);
    } finally {
      store.close();
    }
  });

  it.each(STORES)('%s: the CLI lists, shows and diffs it (contents read from the store)', (name) => {
    const want = expectedOf(name);
    const dir = join(work, name);
    const env = { DATAROOT_NO_NATIVE: '1' };
    const list = runBin(['snapshots', '--store', dir, '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((s) => s.name)).toEqual(want.snapshots.map((s) => s.name));
    const show = runBin(['snapshot', 'show', want.snapshots[0]!.name, '--entries', '--json', '--store', dir], env);
    expect(show.code, show.stderr).toBe(0);
    expect((JSON.parse(show.stdout) as { entries: unknown[] }).entries).toEqual(want.entries);
    // a directory with the same files but one line of b.txt changed: the diff reads b.txt from the store
    const tree = join(work, `${name}-tree`);
    for (const [path, c] of Object.entries(want.contents)) {
      mkdirSync(dirname(join(tree, path)), { recursive: true });
      writeFileSync(join(tree, path), Buffer.from(c.base64, 'base64'));
    }
    writeFileSync(join(tree, 'b.txt'), 'a line of its own\n');
    const diff = runBin(['diff', `@${want.snapshots[0]!.name}`, tree, '--store', dir, '--json'], env);
    expect(diff.code, diff.stderr).toBe(1);
    const b = (JSON.parse(diff.stdout) as { entries: { path: string; change: string; detail?: { kind: string; patch?: string } }[] }).entries.find(
      (e) => e.path === 'b.txt',
    )!;
    expect(b).toMatchObject({ change: 'modified', detail: { kind: 'text' } });
    expect(b.detail!.patch).toContain('-layer image config diff lower merged work');
    expect(b.detail!.patch).toContain('+a line of its own');
  });
});

function readdirIdx(store: string): string {
  const packs = join(store, 'packs');
  const n = readdirSync(packs).find((x) => x.endsWith('.idx'))!;
  return join(packs, n);
}

describe('a failed addon build is loud and leaves the read commands working', () => {
  it('without a compiler: the install says why and what will not work, exits 0, and records it', () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const pkg = mkdtempSync(join(tmpdir(), 'dataroot-nocc-'));
    try {
      for (const f of ['native', 'binding.gyp', 'scripts/build-native.mjs', 'package.json']) cpSync(join(root, f), join(pkg, f), { recursive: true });
      const r = spawnSync(process.execPath, [join(pkg, 'scripts', 'build-native.mjs'), '--force'], {
        cwd: pkg,
        encoding: 'utf8',
        env: { ...process.env, CC: '/nonexistent/cc', CXX: '/nonexistent/c++' },
      });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('the native addon did not build');
      // The install script cannot import the TypeScript list (nothing is compiled yet): both say the same.
      for (const what of NEEDS_ADDON) expect(r.stderr).toContain(`  - ${what}\n`);
      expect(r.stderr.match(/^ {2}- /gm)?.length).toBe(NEEDS_ADDON.length);
      expect(existsSync(join(pkg, 'build', 'Release', 'dataroot_native.node'))).toBe(false);
      expect(JSON.parse(readFileSync(join(pkg, 'build', 'native-build.json'), 'utf8'))).toMatchObject({
        ok: false,
        reason: expect.stringContaining('node-gyp rebuild failed'),
      });
    } finally {
      rmSync(pkg, { recursive: true, force: true });
    }
  });
});

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, SAMPLES } from './support/cli.js';
import { layerTar, sha, tarOf, writeImageDir, type Spec } from './support/images.js';
import { fingerprint } from './support/tree.js';

/**
 * Hostile and broken archives: each is refused with a coded error (exit 2) before anything is
 * written outside the staging area, and the root is left byte for byte (and mtime for mtime) as
 * it was. The root is the shipped `fresh` sample, unpacked.
 */

let work: string;
let root: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'dataroot-hostile-'));
  root = join(work, 'root');
  mkdirSync(root);
  const r = spawnSync('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xzf', join(SAMPLES, 'fresh.tar.gz'), '-C', root]);
  if (r.status !== 0) throw new Error(String(r.stderr));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
function image(layers: Buffer[], o: Partial<Parameters<typeof writeImageDir>[1]> = {}): string {
  const dir = join(work, `img-${n++}`);
  writeImageDir(dir, { layers, tags: ['hostile/x:1'], ...o });
  return dir;
}

async function refused(source: string[], code: string): Promise<void> {
  const before = fingerprint(root);
  const r = await run(['inject', ...source, '--root', root]);
  expect(r.stderr).toMatch(new RegExp(`^dataroot: ${code}: `));
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  expect(fingerprint(root)).toEqual(before);
}

const ok: Spec[] = [
  { name: 'etc/', type: 'dir' },
  { name: 'etc/hello', data: 'hi\n' },
];

describe('inject refuses hostile archives and leaves the root unchanged', () => {
  it('an entry with ".." that escapes the layer', async () => {
    await refused([image([layerTar([...ok, { name: '../../escape', data: 'x' }])])], 'ARCHIVE_LAYER_UNSAFE');
  });

  it('an absolute path', async () => {
    await refused([image([layerTar([...ok, { name: '/etc/passwd', data: 'root::0:0::/:/bin/sh\n' }])])], 'ARCHIVE_LAYER_UNSAFE');
  });

  it('a symlink that escapes the layer, then a file written through it', async () => {
    await refused(
      [
        image([
          layerTar([
            { name: 'evil', type: 'symlink', linkname: '../../../../tmp' },
            { name: 'evil/pwned', data: 'x' },
          ]),
        ]),
      ],
      'ARCHIVE_LAYER_UNSAFE',
    );
  });

  it('a file written through an absolute symlink inside the layer (never followed)', async () => {
    await refused(
      [
        image([
          layerTar([
            { name: 'lnk', type: 'symlink', linkname: '/tmp' },
            { name: 'lnk/pwned', data: 'x' },
          ]),
        ]),
      ],
      'ARCHIVE_LAYER_UNSAFE',
    );
  });

  it('a hard link that escapes the layer', async () => {
    await refused([image([layerTar([...ok, { name: 'shadow', type: 'link', linkname: '../../../etc/shadow' }])])], 'ARCHIVE_LAYER_UNSAFE');
  });

  it('a layer whose sha256 is not the diffID the config names', async () => {
    const l = layerTar(ok);
    await refused([image([l], { diffIds: [sha(Buffer.from('something else'))] })], 'ARCHIVE_DIFFID_MISMATCH');
  });

  it("a config whose diff_ids do not match the manifest's layers", async () => {
    const l = layerTar(ok);
    await refused([image([l, layerTar([{ name: 'b', data: 'b' }])], { diffIds: [sha(l)] })], 'ARCHIVE_LAYER_COUNT_MISMATCH');
  });

  it('a decompression bomb (bounded ratio)', async () => {
    // 200 MB of zeros in one file: gzip makes it about 200 KB, a ratio near 1000.
    const big = Buffer.alloc(200 << 20);
    const l = layerTar([{ name: 'zeros', data: big }]);
    const dir = image([l], { compress: 'gzip' });
    await refused([dir], 'ARCHIVE_DECOMPRESSION_BOMB');
  });

  it('duplicate entries', async () => {
    await refused([image([layerTar([...ok, { name: 'etc/hello', data: 'again\n' }])])], 'ARCHIVE_DUPLICATE_ENTRY');
  });

  it('a layer that is not a tar', async () => {
    const dir = image([layerTar(ok)]);
    const bad = Buffer.from('this is not a tar archive at all, just text that goes on and on'.repeat(20));
    writeFileSync(join(dir, '0', 'layer.tar'), bad);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const cfgName = m[0].Config;
    const cfg = JSON.parse(readFileSync(join(dir, cfgName), 'utf8'));
    cfg.rootfs.diff_ids = [sha(bad)];
    const bytes = Buffer.from(JSON.stringify(cfg));
    writeFileSync(join(dir, `${sha(bytes).slice(7)}.json`), bytes);
    m[0].Config = `${sha(bytes).slice(7)}.json`;
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    await refused([dir], 'ARCHIVE_LAYER_INVALID');
  });

  it('a truncated archive', async () => {
    const dir = image([layerTar(ok)]);
    const tar = join(work, 'trunc.tar');
    tarOf(dir, tar);
    const b = readFileSync(tar);
    writeFileSync(tar, b.subarray(0, Math.floor(b.length / 2))); // inside the layer's data
    await refused([tar], 'ARCHIVE_(TRUNCATED|CORRUPT|LAYER_INVALID|MEMBER_MISSING|MANIFEST_INVALID)');
  });

  it('a gzipped archive that is not gzip inside', async () => {
    const p = join(work, 'notgz.tar.gz');
    writeFileSync(p, Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.alloc(100, 7)]));
    await refused([p], 'ARCHIVE_CORRUPT');
  });

  it('a config file that is not JSON (--config)', async () => {
    const p = join(work, 'notjson.json');
    writeFileSync(p, '{"rootfs": ');
    await refused(['--config', p], 'ARCHIVE_CONFIG_INVALID');
  });

  it('bad flags and missing sources are usage errors', async () => {
    await refused([join(work, 'nonexistent.tar')], 'ARCHIVE_NOT_FOUND');
    await refused(['--layer', join(work, 'x.tar')], 'USAGE_LAYER_WITHOUT_CONFIG');
    await refused(['--max-ratio', 'lots', join(work, 'x.tar')], 'USAGE_INVALID_ARGUMENT');
  });

  it('a well-formed image injects (the same harness accepts a good one)', async () => {
    const r = await run(['--json', 'inject', image([layerTar(ok)], { compress: 'gzip' }), '--root', join(work, 'root')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).layersWritten).toBe(1);
    const v = await run(['--json', 'verify', '--deep', '--root', join(work, 'root')]);
    expect(JSON.parse(v.stdout).findings).toEqual([]);
  });
});

import { spawnSync } from 'node:child_process';
import { chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandWords } from '../src/formats/docker/imageconfig.js';
import { run, runBin } from './support/cli.js';
import { layerTar, sha, writeImageDir } from './support/images.js';
import { needs } from './support/env.js';

/**
 * pack/edit without a daemon: byte-for-byte reproducibility across directories, times and owners;
 * what the archives hold (read back with GNU tar, an independent reader); squash semantics on
 * hand-made layers; bad input refused with a code, exit 2, and nothing left behind.
 */

type Obj = Record<string, any>;

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'dataroot-pack-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A source tree in a fresh temp dir: files, a subdir, a symlink, a hard link; times and owner as given. */
function sourceTree(mtime: number, uid: number): string {
  const root = mkdtempSync(join(work, 'src-'));
  mkdirSync(join(root, 'app', 'static'), { recursive: true });
  writeFileSync(join(root, 'app', 'run.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 });
  writeFileSync(join(root, 'app', 'static', 'index.html'), '<p>hi</p>\n');
  symlinkSync('run.sh', join(root, 'app', 'start'));
  linkSync(join(root, 'app', 'run.sh'), join(root, 'app', 'run-again.sh'));
  writeFileSync(join(root, 'notes.txt'), 'a single file\n');
  for (const p of ['app/run.sh', 'app/static/index.html', 'app/static', 'app', 'notes.txt']) {
    chownSync(join(root, p), uid, uid);
    utimesSync(join(root, p), mtime, mtime);
  }
  return root;
}

describe('pack is reproducible', () => {
  it.each([
    ['docker', []],
    ['oci', ['--format', 'oci']],
    ['oci+gzip', ['--format', 'oci', '--gzip']],
  ])('%s: the same inputs from two directories, with other mtimes and owners, give the same bytes', async (_name, fmt) => {
    const outs: Buffer[] = [];
    for (const [mtime, uid] of [
      [1_000_000_000, 0],
      [1_700_000_000, 1234],
    ] as const) {
      const src = sourceTree(mtime, uid);
      const out = join(src, 'out.tar');
      const r = await run(
        [
          'pack',
          '-o',
          out,
          ...fmt,
          '--layer',
          `${join(src, 'app')}:/opt/app`,
          '--layer',
          `${join(src, 'notes.txt')}:/`,
          '--entrypoint',
          '["/opt/app/run.sh"]',
          '--label',
          'b=2',
          '--label',
          'a=1',
          '-t',
          'repro:1',
        ],
        {
          SOURCE_DATE_EPOCH: '1600000000',
        },
      );
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      outs.push(readFileSync(out));
    }
    expect(outs[1]!.equals(outs[0]!)).toBe(true);
  });

  it('the options that set one string of the config land where docker reads them', async () => {
    const src = sourceTree(1_234_567_890, 1234);
    const dir = join(src, 'unpacked-strings');
    mkdirSync(dir);
    const out = join(src, 'strings.tar');
    const r = await run([
      '--json',
      'pack',
      '-o',
      out,
      '--layer',
      `${join(src, 'notes.txt')}:/`,
      '--workdir',
      '/srv',
      '--user',
      '1000:1000',
      '--stop-signal',
      'SIGINT',
      '--arch',
      'arm64',
      '--os',
      'linux',
      '--variant',
      'v8',
      '--author',
      'someone <a@b.c>',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout) as Obj;
    sh(`tar -xf ${out} -C ${dir}`);
    const config = JSON.parse(readFileSync(join(dir, `${o.images[0].id.slice(7)}.json`), 'utf8')) as Obj;
    expect([config['architecture'], config['os'], config['variant'], config['author']]).toEqual(['arm64', 'linux', 'v8', 'someone <a@b.c>']);
    expect([config['config']['WorkingDir'], config['config']['User'], config['config']['StopSignal']]).toEqual(['/srv', '1000:1000', 'SIGINT']);
  });

  it('what a layer holds: sorted, owner 0:0, the given mtime, modes, symlink, hard link, parents of DEST', async () => {
    const src = sourceTree(1_234_567_890, 1234);
    const dir = join(src, 'unpacked');
    mkdirSync(dir);
    const out = join(src, 'out.tar');
    const r = await run(['--json', 'pack', '-o', out, '--mtime', '2001-02-03T04:05:06Z', '--layer', `${join(src, 'app')}:/opt/app`]);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout) as Obj;
    const diff = o.images[0].layers[0].diffId.slice(7);
    sh(`tar -xf ${out} -C ${dir}`);
    const layer = join(dir, diff, 'layer.tar');
    expect(sha(readFileSync(layer))).toBe(o.images[0].layers[0].diffId);
    const listing = sh(`tar --numeric-owner --full-time -tvf ${layer}`).trim().split('\n');
    expect(listing.map((l) => l.split(/\s+/).slice(5).join(' '))).toEqual([
      'opt/',
      'opt/app/',
      'opt/app/run-again.sh',
      'opt/app/run.sh link to opt/app/run-again.sh',
      'opt/app/start -> run.sh',
      'opt/app/static/',
      'opt/app/static/index.html',
    ]);
    for (const l of listing) {
      expect(l.split(/\s+/)[1]).toBe('0/0');
      expect(l).toContain('2001-02-03 04:05:06');
    }
    expect(listing[2]).toMatch(/^-rwxr-xr-x /);
    const config = JSON.parse(readFileSync(join(dir, `${o.images[0].id.slice(7)}.json`), 'utf8')) as Obj;
    expect(config['created']).toBe('2001-02-03T04:05:06Z');
    expect(config['rootfs']['diff_ids']).toEqual([o.images[0].layers[0].diffId]);
    expect(config['history']).toEqual([{ created: '2001-02-03T04:05:06Z', created_by: 'dataroot pack --layer /opt/app' }]);
    expect(sha(readFileSync(join(dir, `${o.images[0].id.slice(7)}.json`)))).toBe(o.images[0].id);
  });

  it('the OCI layout: index.json names each tag, manifests and blobs by digest, gzip blobs decompress to the diffIDs', async () => {
    const src = sourceTree(1, 0);
    const out = join(src, 'o.tar');
    const dir = join(src, 'o');
    mkdirSync(dir);
    const r = await run(['--json', 'pack', '-o', out, '--format', 'oci', '--gzip', '--layer', join(src, 'app'), '-t', 'x/y:1', '-t', 'z']);
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout) as Obj;
    sh(`tar -xf ${out} -C ${dir}`);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Obj;
    expect(index['manifests'].map((m: Obj) => m.annotations)).toEqual([
      { 'io.containerd.image.name': 'docker.io/x/y:1', 'org.opencontainers.image.ref.name': '1' },
      { 'io.containerd.image.name': 'docker.io/library/z:latest', 'org.opencontainers.image.ref.name': 'latest' },
    ]);
    for (const name of readdirSync(join(dir, 'blobs', 'sha256'))) expect(sha(readFileSync(join(dir, 'blobs', 'sha256', name)))).toBe(`sha256:${name}`);
    const l = o.images[0].layers[0];
    expect(sha(gunzipSync(readFileSync(join(dir, 'blobs', 'sha256', l.digest.slice(7)))))).toBe(l.diffId);
    expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))).toEqual([
      { Config: `blobs/sha256/${o.images[0].id.slice(7)}`, RepoTags: ['x/y:1', 'z:latest'], Layers: [`blobs/sha256/${l.digest.slice(7)}`] },
    ]);
  });
});

describe('edit --squash on hand-made layers', () => {
  it('applies whiteouts and opaque directories, keeps hard links, replaces files by directories', async () => {
    const l1 = layerTar([
      { name: 'a/', type: 'dir' },
      { name: 'a/gone', data: 'x' },
      { name: 'a/kept', data: 'kept' },
      { name: 'o/', type: 'dir' },
      { name: 'o/old', data: 'old' },
      { name: 'f', data: 'file that becomes a dir' },
      { name: 'h', data: 'shared' },
    ]);
    const l2 = layerTar([
      { name: 'a/.wh.gone' },
      { name: 'o/', type: 'dir' },
      { name: 'o/.wh..wh..opq' },
      { name: 'o/new', data: 'new' },
      { name: 'f/', type: 'dir' },
      { name: 'f/inside', data: 'in' },
      { name: 'h2', type: 'link', linkname: 'h' },
    ]);
    const dir = join(work, 'squash-in');
    writeImageDir(dir, { layers: [l1, l2], tags: ['sq:1'] });
    const out = join(work, 'squash-out.tar');
    const r = await run(['--json', 'edit', dir, '-o', out, '--squash']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout) as Obj;
    expect(o.images[0].layers).toHaveLength(1);
    const unpacked = join(work, 'squash-unpacked');
    mkdirSync(unpacked);
    sh(`tar -xf ${out} -C ${unpacked}`);
    const layer = join(unpacked, o.images[0].layers[0].diffId.slice(7), 'layer.tar');
    const names = sh(`tar -tvf ${layer}`)
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).slice(5).join(' '));
    // Checked by hand against the overlay rules (docs/… whiteouts): gone and o/old hidden, f a directory now.
    expect(names).toEqual(['a/', 'a/kept', 'f/', 'f/inside', 'h', 'h2 link to h', 'o/', 'o/new']);
    const config = JSON.parse(readFileSync(join(unpacked, `${o.images[0].id.slice(7)}.json`), 'utf8')) as Obj;
    expect(config['history']).toEqual([{ created: '1970-01-01T00:00:00Z', created_by: 'dataroot edit --squash' }]);
  });
});

describe('command words', () => {
  it('splits like a shell, or takes a JSON array', () => {
    expect(commandWords('--cmd', `sh -c 'echo "a b"' x\\ y`)).toEqual(['sh', '-c', 'echo "a b"', 'x y']);
    expect(commandWords('--cmd', '["/bin/sh", "-c", "x"]')).toEqual(['/bin/sh', '-c', 'x']);
    expect(commandWords('--entrypoint', '')).toEqual([]);
  });
});

describe('bad input: a coded error, exit 2, no output and no temporary files left', () => {
  const cases: [string, (d: string) => string[], string][] = [
    ['a missing source path', (d) => ['pack', '-o', join(d, 'out.tar'), '--layer', join(d, 'nope')], 'PACK_SOURCE_MISSING'],
    [
      'a --layer-tar that is not a tar',
      (d) => (
        writeFileSync(join(d, 'bad.tar'), 'this is not a tar archive at all\n'.repeat(40)),
        ['pack', '-o', join(d, 'out.tar'), '--layer-tar', join(d, 'bad.tar')]
      ),
      'PACK_LAYER_NOT_TAR',
    ],
    [
      'a truncated gzip --layer-tar',
      (d) => (
        writeFileSync(join(d, 'bad.tar.gz'), Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2])),
        ['pack', '-o', join(d, 'out.tar'), '--layer-tar', join(d, 'bad.tar.gz')]
      ),
      'PACK_LAYER_NOT_TAR',
    ],
    [
      'a config file that is not JSON',
      (d) => (
        writeFileSync(join(d, 'c.json'), '{"rootfs": '),
        writeFileSync(join(d, 'l.tar'), layerTar([{ name: 'x', data: 'x' }])),
        ['pack', '-o', join(d, 'out.tar'), '--layer-tar', join(d, 'l.tar'), '--config-file', join(d, 'c.json')]
      ),
      'PACK_CONFIG_INVALID',
    ],
    [
      'a config file whose diff_ids are not the layers',
      (d) => (
        writeFileSync(join(d, 'l.tar'), layerTar([{ name: 'x', data: 'x' }])),
        writeFileSync(join(d, 'c.json'), JSON.stringify({ rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] } })),
        ['pack', '-o', join(d, 'out.tar'), '--layer-tar', join(d, 'l.tar'), '--config-file', join(d, 'c.json')]
      ),
      'PACK_CONFIG_MISMATCH',
    ],
    [
      'config flags with --config-file',
      (d) => ['pack', '-o', join(d, 'out.tar'), '--config-file', join(d, 'c.json'), '--label', 'a=b'],
      'USAGE_CONFIG_CONFLICT',
    ],
    ['an output directory that does not exist', (d) => ['pack', '-o', join(d, 'no', 'out.tar'), '--layer', d], 'USAGE_OUTPUT_DIR_MISSING'],
    ['an unknown option', (d) => ['pack', '-o', join(d, 'out.tar'), '--layr', d], 'USAGE_UNKNOWN_OPTION'],
    ['--gzip without oci', (d) => ['pack', '-o', join(d, 'out.tar'), '--gzip', '--layer', d], 'USAGE_GZIP_NEEDS_OCI'],
    ['a bad port', (d) => ['pack', '-o', join(d, 'out.tar'), '--layer', d, '--expose', '99999'], 'USAGE_BAD_PORT'],
    [
      'an edit of an image whose diff_ids and layers disagree',
      (d) => (
        writeImageDir(join(d, 'img'), { layers: [layerTar([{ name: 'x', data: 'x' }])], tags: ['bad:1'], diffIds: [] }),
        ['edit', join(d, 'img'), '-o', join(d, 'out.tar'), '--set-label', 'a=b']
      ),
      'ARCHIVE_LAYER_COUNT_MISMATCH',
    ],
    [
      'an --untag of a tag the image lacks',
      (d) => (
        writeImageDir(join(d, 'img'), { layers: [layerTar([{ name: 'x', data: 'x' }])], tags: ['t:1'] }),
        ['edit', join(d, 'img'), '-o', join(d, 'out.tar'), '--untag', 'other:1']
      ),
      'EDIT_NO_SUCH_TAG',
    ],
    [
      '--rm-label of a label that is not there',
      (d) => (
        writeImageDir(join(d, 'img'), { layers: [layerTar([{ name: 'x', data: 'x' }])], tags: ['t:1'] }),
        ['edit', join(d, 'img'), '-o', join(d, 'out.tar'), '--rm-label', 'nope']
      ),
      'EDIT_NO_SUCH_LABEL',
    ],
    [
      'an --add-layer that is not a tar',
      (d) => (
        writeImageDir(join(d, 'img'), { layers: [layerTar([{ name: 'x', data: 'x' }])], tags: ['t:1'] }),
        writeFileSync(join(d, 'junk'), 'junk'),
        ['edit', join(d, 'img'), '-o', join(d, 'out.tar'), '--add-layer', join(d, 'junk')]
      ),
      'PACK_LAYER_NOT_TAR',
    ],
  ];
  it.each(cases)('%s', (_name, args, code) => {
    const d = mkdtempSync(join(work, 'bad-'));
    const r = runBin(['--json', ...args(d)]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(JSON.parse(r.stderr).error.code).toBe(code);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(d).filter((n) => n === 'out.tar' || n.startsWith('.dataroot-') || n.includes('dataroot-tmp'))).toEqual([]);
  });
});

describe.runIf(needs('tar'))('a layer tar from GNU tar is kept byte for byte', () => {
  it('its diffID is its sha256', async () => {
    const src = sourceTree(5, 0);
    const tar = join(src, 'gnu.tar');
    sh(`tar -C ${src} -cf ${tar} app`);
    const r = await run(['--json', 'pack', '-o', join(src, 'out.tar'), '--layer-tar', tar]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as Obj).images[0].layers[0].diffId).toBe(sha(readFileSync(tar)));
  });
});

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { untar as unpackTar } from './support/untar.js';
import { needs } from './support/env.js';
import { buildOracleAsync, genWithOutput } from './support/gobolt.js';
import { run, runBin, SAMPLES } from './support/cli.js';

const AFTER = join(SAMPLES, 'after-build.tar.gz');
const FRESH = join(SAMPLES, 'fresh.tar.gz');

let tmp: string;
let after: { dir: string; cleanup(): void };
let fresh: { dir: string; cleanup(): void };
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dataroot-boltcli-'));
  after = unpackTar(AFTER);
  fresh = unpackTar(FRESH);
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  after.cleanup();
  fresh.cleanup();
});

describe('bolt commands on the real files of the samples', () => {
  it('keys and get read the volumes bucket; get decodes the JSON value', async () => {
    const db = join(after.dir, 'volumes/metadata.db');
    const keys = await run(['bolt', 'keys', db, 'volumes']);
    expect(keys.stdout).toBe('samplevol\n');
    const got = await run(['--json', 'bolt', 'get', db, 'volumes', 'samplevol']);
    expect(JSON.parse(got.stdout).value).toEqual({ json: { Name: 'samplevol', Driver: 'local', Labels: null, Options: null } });
  });

  it('--values hex, base64 and redacted show the same bytes', async () => {
    const db = join(after.dir, 'volumes/metadata.db');
    const raw = JSON.parse((await run(['--json', 'bolt', 'get', db, 'volumes', 'samplevol', '--values', 'hex'])).stdout).value.hex as string;
    const bytes = Buffer.from(raw, 'hex');
    expect(bytes.toString()).toContain('"Name":"samplevol"');
    const b64 = JSON.parse((await run(['--json', 'bolt', 'get', db, 'volumes', 'samplevol', '--values', 'base64'])).stdout).value.base64;
    expect(Buffer.from(b64, 'base64').equals(bytes)).toBe(true);
    const red = JSON.parse((await run(['--json', 'bolt', 'get', db, 'volumes', 'samplevol', '--values', 'redacted'])).stdout).value;
    expect(red).toBe(`<redacted len:${bytes.length} sha256:${createHash('sha256').update(bytes).digest('hex')}>`);
  });

  it('bolt diff of local-kv.db before and after the build names the new network, exit 1; a file against itself: exit 0', async () => {
    const a = join(fresh.dir, 'network/files/local-kv.db');
    const b = join(after.dir, 'network/files/local-kv.db');
    const tree = JSON.parse((await run(['--json', 'bolt', 'dump', b, 'libnetwork'])).stdout) as {
      bucket: Record<string, { json?: { name?: string; id?: string } }>;
    };
    const net = Object.entries(tree.bucket).find(([k, v]) => k.startsWith('docker/network/v1.0/network/') && v.json?.name === 'samplenet');
    expect(net).toBeDefined();
    const d = await run(['--json', 'bolt', 'diff', a, b]);
    expect(d.code).toBe(1);
    const changes = JSON.parse(d.stdout).changes as { change: string; path: string[]; key: string; right?: { json?: { name?: string } } }[];
    const added = changes.find((c) => c.change === 'added' && c.key === net![0]);
    expect(added?.path).toEqual(['libnetwork']);
    expect(added?.right?.json?.name).toBe('samplenet');
    // Nothing reported twice
    const keys = changes.map((c) => `${c.path.join('/')}/${c.key}`);
    expect(new Set(keys).size).toBe(keys.length);
    const same = await run(['bolt', 'diff', b, b]);
    expect(same.code).toBe(0);
    expect(same.stdout).toBe('no differences\n');
  });

  it('pages lists the metas, the freelist and the tree pages; page shows a meta page', async () => {
    const db = join(after.dir, 'network/files/local-kv.db');
    const pages = (await run(['bolt', 'pages', db])).stdout.split('\n');
    expect(pages[0]).toBe('ID       TYPE       ITEMS  OVRFLW');
    expect(pages[2]).toMatch(/^0 {8}meta {7}0 {6}/);
    expect(pages[3]).toMatch(/^1 {8}meta /);
    const page0 = (await run(['bolt', 'page', db, '0'])).stdout;
    expect(page0).toMatch(/^Page ID: {4}0\nPage Type: {2}meta\nTotal Size: 4096 bytes\nOverflow pages: 0\nVersion: {4}2\nPage Size: {2}4096 bytes\n/);
    const info = JSON.parse((await run(['--json', 'bolt', 'info', db])).stdout);
    expect(info.pageSize).toBe(4096);
    expect(info.kind).toBe('libnetwork');
  });
});

describe.runIf(needs('go'))('containerd metadata decoding', () => {
  // The Go oracle is built (once, cached) before the test, under the hook timeout: on a busy machine the build alone can take minutes.
  beforeAll(async () => void (await buildOracleAsync()));
  it('Go binary times and zig-zag varints decode to the values the Go writer used', async () => {
    const db = join(tmp, 'ctd.db');
    const expected = JSON.parse(genWithOutput(db, 5, 'containerd', 4096)) as Record<string, { createdat: string; size: number } | number>;
    const tree = JSON.parse((await run(['--json', 'bolt', 'dump', db])).stdout);
    const v1 = tree.bucket.v1.bucket;
    expect(v1.version).toEqual({ varint: expected['version'] });
    const images = v1.moby.bucket.images.bucket as Record<string, { bucket: Record<string, any> }>;
    const names = Object.keys(expected).filter((k) => k !== 'version');
    expect(Object.keys(images).sort()).toEqual(names.sort());
    for (const n of names) {
      const want = expected[n] as { createdat: string; size: number };
      expect(images[n]!.bucket['createdat']).toEqual({ time: want.createdat });
      expect(images[n]!.bucket['target'].bucket.size).toEqual({ varint: want.size });
      expect(images[n]!.bucket['labels'].bucket['org.example/k']).toMatch(/^v\d$/);
    }
    const raw = JSON.parse((await run(['--json', 'bolt', 'dump', '--raw', db])).stdout);
    expect(raw.bucket.v1.bucket.version).toEqual({ hex: '08' });
  });
});

describe('bolt bad input: coded error, exit 2', () => {
  const cases: [string, () => string[], string][] = [
    [
      'not a bolt file',
      () => {
        const f = join(tmp, 'text.db');
        writeFileSync(f, 'hello '.repeat(2000));
        return ['bolt', 'dump', f];
      },
      'BOLT_NOT_BOLT',
    ],
    ['a directory', () => ['bolt', 'info', tmp], 'IO_IS_DIRECTORY'],
    [
      'a truncated file',
      () => {
        const f = join(tmp, 'trunc.db');
        writeFileSync(f, readFileSync(join(after.dir, 'network/files/local-kv.db')).subarray(0, 6000));
        return ['bolt', 'check', f];
      },
      'BOLT_TRUNCATED',
    ],
    ['an unknown bucket path', () => ['bolt', 'keys', join(after.dir, 'volumes/metadata.db'), 'nope'], 'BOLT_BUCKET_NOT_FOUND'],
    ['a missing key', () => ['bolt', 'get', join(after.dir, 'volumes/metadata.db'), 'volumes', 'nope'], 'BOLT_KEY_NOT_FOUND'],
    ['a missing file', () => ['bolt', 'stats', join(tmp, 'absent.db')], 'IO_NOT_FOUND'],
    ['a bad page id', () => ['bolt', 'page', join(after.dir, 'volumes/metadata.db'), 'x'], 'USAGE_BAD_PAGE_ID'],
    ['a bad --values', () => ['bolt', 'dump', join(after.dir, 'volumes/metadata.db'), '--values', 'xml'], 'USAGE_INVALID_ARGUMENT'],
  ];
  it.each(cases)('%s', (_n, args, code) => {
    const r = runBin(args());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^dataroot: ${code}: `));
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a file whose meta pages are both damaged is refused; one damaged meta falls back to the other', async () => {
    const f = join(tmp, 'meta.db');
    copyFileSync(join(after.dir, 'volumes/metadata.db'), f);
    const b = readFileSync(f);
    b[4096 + 70] = b[4096 + 70]! ^ 0xff; // meta 1's txid: its checksum no longer matches
    writeFileSync(f, b);
    const one = await run(['--json', 'bolt', 'info', f]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout).metas[1].problem).toBe('checksum error');
    b[70] = b[70]! ^ 0xff;
    writeFileSync(f, b);
    const both = await run(['bolt', 'info', f]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^dataroot: BOLT_BAD_META: /);
  });
});

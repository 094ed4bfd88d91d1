import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBolt } from '../src/formats/bolt/write.js';
import { encodeVarint, s } from '../src/formats/containerd/encode.js';
import { spawnSync } from 'node:child_process';
import { run, SAMPLES } from './support/cli.js';
import { layerTar, sha, writeImageDir } from './support/images.js';
import { fingerprint } from './support/tree.js';

/**
 * `inject --store containerd` on a containerd root made without a containerd (a meta.db at schema
 * v1 version 3, as containerd 1.6 initialises it): what it writes reads back through dataroot's
 * containerd reader; refused inputs and unsafe roots change nothing.
 */

let work: string;
let n = 0;
let image: string;
let imageId: string;
let layer: Buffer;

function cdRoot(): string {
  const root = join(work, `root-${n++}`);
  mkdirSync(join(root, 'io.containerd.metadata.v1.bolt'), { recursive: true });
  const db = buildBolt({ entries: [{ key: s('v1'), bucket: { entries: [{ key: s('version'), value: encodeVarint(3) }] } }] }, { pageSize: 4096 });
  writeFileSync(join(root, 'io.containerd.metadata.v1.bolt', 'meta.db'), db);
  chmodSync(join(root, 'io.containerd.metadata.v1.bolt', 'meta.db'), 0o644);
  return root;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'dataroot-cdhostile-'));
  layer = layerTar([
    { name: 'app/', type: 'dir' },
    { name: 'app/hello', data: 'hi\n' },
    { name: 'etc/.wh.gone', data: '' },
  ]);
  image = join(work, 'img');
  imageId = writeImageDir(image, { layers: [layer], tags: ['app:1'] }).id;
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function refused(root: string, args: string[], code: string): Promise<void> {
  const before = fingerprint(root);
  const r = await run(['--root', root, 'inject', ...args]);
  expect(r.stderr).toMatch(new RegExp(`^dataroot: ${code}: `));
  expect(r.code).toBe(2);
  expect(fingerprint(root)).toEqual(before);
}

describe('inject --store containerd on a root made without containerd', () => {
  it('writes the blobs and records; dataroot containerd images and content read them back', async () => {
    const root = cdRoot();
    const r = await run(['--root', root, 'inject', image, '--namespace', 'ns1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.store).toBe('containerd');
    expect(res.images[0].names).toEqual(['docker.io/library/app:1']);
    expect(res.images[0].configDigest).toBe(imageId);
    const blobs = readdirSync(join(root, 'io.containerd.content.v1.content/blobs/sha256')).sort();
    expect(blobs).toEqual([res.images[0].id, imageId, sha(layer)].map((d: string) => d.slice(7)).sort());
    expect(readdirSync(join(root, 'io.containerd.content.v1.content/ingest'))).toEqual([]);
    const imgs = await run(['--containerd-root', root, 'containerd', 'images', '--namespace', 'ns1', '--json']);
    expect(imgs.code, imgs.stderr).toBe(0);
    const list = JSON.parse(imgs.stdout);
    const rows = (Array.isArray(list) ? list : (list.images ?? list.Images)) as Record<string, any>[];
    expect(JSON.stringify(rows)).toContain(res.images[0].id);
    expect(JSON.stringify(rows)).toContain('docker.io/library/app:1');
    // Injected again: nothing rewritten, the same records.
    const again = await run(['--root', root, 'inject', image, '--namespace', 'ns1', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).blobsWritten).toBe(0);
    expect(JSON.parse(again.stdout).imagesReplaced).toEqual(['docker.io/library/app:1']);
  });

  it('an invalid namespace is a usage error', async () => {
    await refused(cdRoot(), [image, '--namespace', '../x'], 'USAGE_BAD_NAMESPACE');
  });

  it('a blobs directory that is a symlink leading out is refused', async () => {
    const root = cdRoot();
    const out = join(work, `outside-${n++}`);
    mkdirSync(out);
    mkdirSync(join(root, 'io.containerd.content.v1.content'), { recursive: true });
    symlinkSync(out, join(root, 'io.containerd.content.v1.content/blobs'));
    await refused(root, [image], 'STORE_TARGET_UNSAFE');
    expect(readdirSync(out)).toEqual([]);
  });

  it('an ingest directory that is a symlink is refused', async () => {
    const root = cdRoot();
    const out = join(work, `outside-${n++}`);
    mkdirSync(out);
    mkdirSync(join(root, 'io.containerd.content.v1.content'), { recursive: true });
    symlinkSync(out, join(root, 'io.containerd.content.v1.content/ingest'));
    await refused(root, [image], 'STORE_TARGET_UNSAFE');
    expect(readdirSync(out)).toEqual([]);
  });

  it('a blob already in the store with other bytes under the digest is refused (not trusted, not overwritten)', async () => {
    const root = cdRoot();
    mkdirSync(join(root, 'io.containerd.content.v1.content/blobs/sha256'), { recursive: true });
    writeFileSync(join(root, 'io.containerd.content.v1.content/blobs/sha256', imageId.slice(7)), 'x'.repeat(10));
    const meta = readFileSync(join(root, 'io.containerd.metadata.v1.bolt/meta.db'));
    const r = await run(['--root', root, 'inject', image]);
    // The meta.db is put back as it was (the tombstone written before staging goes with it).
    expect(readFileSync(join(root, 'io.containerd.metadata.v1.bolt/meta.db')).equals(meta)).toBe(true);
    expect(r.stderr).toMatch(/^dataroot: CONTAINERD_BLOB_CORRUPT: /);
    expect(r.code).toBe(2);
    expect(readdirSync(join(root, 'io.containerd.content.v1.content/ingest'))).toEqual([]);
  });

  it('a layer whose bytes are not the config diffID is refused', async () => {
    const bad = join(work, 'bad');
    writeImageDir(bad, { layers: [layer], tags: ['bad:1'], diffIds: [sha(Buffer.from('other'))] });
    const root = cdRoot();
    const meta = readFileSync(join(root, 'io.containerd.metadata.v1.bolt/meta.db'));
    const r = await run(['--root', root, 'inject', bad]);
    expect(readFileSync(join(root, 'io.containerd.metadata.v1.bolt/meta.db')).equals(meta)).toBe(true);
    expect(readdirSync(join(root, 'io.containerd.content.v1.content/blobs/sha256'))).toEqual([]);
    expect(r.stderr).toMatch(/^dataroot: ARCHIVE_DIFFID_MISMATCH: /);
    expect(r.code).toBe(2);
    expect(readdirSync(join(root, 'io.containerd.content.v1.content/ingest'))).toEqual([]);
  });

  it('--store containerd on a directory that holds no containerd store', async () => {
    const root = join(work, `empty-${n++}`);
    mkdirSync(root);
    await refused(root, [image, '--store', 'containerd'], 'CONTAINERD_ROOT_NOT_FOUND');
  });

  it('a meta.db that is a symlink is not a containerd root', async () => {
    const root = join(work, `link-${n++}`);
    mkdirSync(join(root, 'io.containerd.metadata.v1.bolt'), { recursive: true });
    symlinkSync('/etc/passwd', join(root, 'io.containerd.metadata.v1.bolt/meta.db'));
    await refused(root, [image, '--store', 'containerd'], 'CONTAINERD_ROOT_NOT_FOUND');
  });

  it('a dockerd 20.10 vfs root with its own containerd (no images there): auto keeps the graphdriver store, as dockerd would', async () => {
    const root = join(work, `vfs-${n++}`);
    mkdirSync(root);
    const x = spawnSync('tar', ['--numeric-owner', '-xzf', join(SAMPLES, 'fresh.tar.gz'), '-C', root]);
    expect(x.status).toBe(0);
    // The fresh overlay2 sample made a vfs root (vfs is no "prior" graphdriver for dockerd 29).
    rmSync(join(root, 'overlay2'), { recursive: true, force: true });
    spawnSync('mv', [join(root, 'image/overlay2'), join(root, 'image/vfs')]);
    mkdirSync(join(root, 'vfs', 'dir'), { recursive: true });
    expect(readdirSync(join(root, 'containerd/daemon/io.containerd.metadata.v1.bolt'))).toContain('meta.db');
    const meta = readFileSync(join(root, 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db'));
    const r = await run(['--root', root, 'inject', image, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.store).toBeUndefined();
    expect(res.driver).toBe('vfs');
    expect(readFileSync(join(root, 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db')).equals(meta)).toBe(true);
    // Asked for explicitly, the containerd store is written.
    const c = await run(['--root', root, 'inject', image, '--store', 'containerd', '--json']);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout).store).toBe('containerd');
  });

  it('a meta.db at a schema version no containerd 1.x-2.x writes is refused before anything is written', async () => {
    const root = join(work, `v9-${n++}`);
    mkdirSync(join(root, 'io.containerd.metadata.v1.bolt'), { recursive: true });
    writeFileSync(
      join(root, 'io.containerd.metadata.v1.bolt', 'meta.db'),
      buildBolt({ entries: [{ key: s('v1'), bucket: { entries: [{ key: s('version'), value: encodeVarint(9) }] } }] }, { pageSize: 4096 }),
    );
    await refused(root, [image], 'CONTAINERD_SCHEMA_UNKNOWN');
  });
});

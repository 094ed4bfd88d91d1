import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, indexEntry } from '../src/formats/snapstore/index.js';
import { contentKind, identityLine } from '../src/formats/snapstore/manifest.js';
import { CHUNK, CHUNK_ENTRY, decodeChunk, decodeRecordHead, RECORD_HEAD } from '../src/formats/snapstore/pack.js';
import { fileBatch, nativeAvailable, packFiles } from '../src/io/native.js';
import { scanTree, takeSnapshot } from '../src/ops/snapshot.js';
import { isCarried, type ManifestEntry } from '../src/store/snapshots/manifest.js';
import { SnapshotStore } from '../src/store/snapshots/store.js';

/**
 * The content pipeline (io/native packFiles: read, hash, compress and write on native threads,
 * the records and index written from its results through formats/snapstore) must give the sha256,
 * size and kind (formats/snapstore contentKind) of every file, store each kept content once,
 * nothing for metadata-only paths, nothing for content the store already has; and every object
 * must read back byte for byte. Sizes straddle the 4 MiB chunk, contents straddle every kind
 * rule, and duplicates fall both inside one run and across runs.
 */

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function files(entries: Awaited<ReturnType<typeof scanTree>>['entries']): Map<string, ManifestEntry> {
  const out = new Map<string, ManifestEntry>();
  for (const e of entries) if (!isCarried(e) && e.type === 'file') out.set(e.path, e);
  return out;
}

/** Every object's chunk table, read from a store's pack files through the format's codecs (the .idx, then each record). */
function packChunks(storeDir: string): Map<string, { method: number; offset: number; stored: number }[]> {
  const out = new Map<string, { method: number; offset: number; stored: number }[]>();
  const packs = join(storeDir, 'packs');
  for (const n of readdirSync(packs).filter((x) => x.endsWith('.idx'))) {
    const ix = decodeIndex(readFileSync(join(packs, n)));
    const pack = readFileSync(join(packs, n.replace(/\.idx$/, '.pack')));
    for (let i = 0; i < ix.count; i++) {
      const { sha256, offset } = indexEntry(ix, i);
      const head = decodeRecordHead(pack.subarray(offset, offset + RECORD_HEAD));
      expect(head.sha256).toBe(sha256);
      const table = pack.subarray(offset + RECORD_HEAD, offset + RECORD_HEAD + head.chunks * CHUNK_ENTRY);
      out.set(
        sha256,
        Array.from({ length: head.chunks }, (_, k) => decodeChunk(table, k)),
      );
    }
  }
  return out;
}

function fill(n: number, seed: number): Buffer {
  // compressible at zstd's fast levels too (which find repeats but do not entropy-code literals):
  // a text of words from a small vocabulary
  let s = '';
  for (let i = 0; s.length < n; i++)
    s += `${['layer', 'image', 'sha256', 'config', 'diff', 'lower', 'merged', 'work'][(i * 7 + seed) % 8]}-${(i * 31 + seed) % 13} `;
  return Buffer.from(s.slice(0, n));
}

describe.runIf(nativeAvailable())('the content pipeline', () => {
  let work: string;
  let tree: string;
  const contents = new Map<string, Buffer>();

  const put = (rel: string, data: Buffer): void => {
    const abs = join(tree, rel);
    mkdirSync(join(abs, '..'), { recursive: true });
    writeFileSync(abs, data);
    contents.set(rel, data);
  };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-packfiles-'));
    tree = join(work, 'tree');
    mkdirSync(tree);
    put('empty', Buffer.alloc(0));
    put('small.txt', Buffer.from('hello\n'));
    put('tiny-bin', Buffer.from([1, 2, 3]));
    put('doc.json', Buffer.from('  \n {"a": [1, 2, 3]}\n'));
    put('list.json', Buffer.from('[1,2]'));
    put('gz', Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), randomBytes(500)]));
    const bolt = Buffer.alloc(4096 * 4);
    bolt.writeUInt32LE(0xed0cdaed, 16);
    put('meta.db', bolt);
    // a control byte only after the first 8 KiB: text by the rules, which look at 8 KiB
    put('late-ctl', Buffer.concat([fill(9000, 1), Buffer.from([0, 1, 2])]));
    put('ctl-at-8191', Buffer.concat([fill(8191, 2), Buffer.from([5]), fill(100, 3)]));
    put('d/random', randomBytes(300_000));
    put('d/text', fill(200_000, 4));
    put('d/dup-a', fill(50_000, 5));
    put('d/e/dup-b', fill(50_000, 5));
    put('big/exact-chunk', fill(CHUNK, 6));
    put('big/chunk-plus-one', fill(CHUNK + 1, 7));
    put('big/chunk-minus-one', fill(CHUNK - 1, 8));
    put('big/nine-mib', Buffer.concat([fill(5 << 20, 9), randomBytes(4 << 20)]));
    put('big/nine-mib-copy', readFileSync(join(tree, 'big/nine-mib')));
    // incompressible whole chunks are written raw from where they were read
    put('big/random-8m', randomBytes((8 << 20) + 12288));
    put('meta-only/secret', fill(70_000, 10));
    put('meta-only/also', Buffer.from('{"x":1}'));
    linkSync(join(tree, 'd/text'), join(tree, 'd/text-link'));
    for (let i = 0; i < 300; i++) put(`many/f${i}`, i % 3 === 0 ? randomBytes(i * 37) : fill(i * 53, 100 + i));
    // around the largest file that is gathered with others into one frame (128 KiB)
    put('edge/small-max', fill(128 << 10, 11));
    put('edge/small-max-plus-one', fill((128 << 10) + 1, 12));
    // groups that compress and groups that do not (random only)
    for (let i = 0; i < 40; i++) put(`rnd/r${i}`, randomBytes(60_000 + i));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const snapshot = async (storeDir: string, root = tree, name = 'native', metadataOnly = ['meta-only/*']) => {
    const store = SnapshotStore.open(storeDir, { create: true });
    const r = await takeSnapshot(store, root, { name, exclude: [], metadataOnly, live: false });
    return { store, r, entries: files(store.readManifest(r.snapshot).entries()) };
  };

  it('hashes, classifies and stores every file, each content once, metadata-only ones not', async () => {
    const nat = await snapshot(join(work, 'store-native'));
    expect(nat.entries.size).toBe(contents.size + 1); // and the hard link
    for (const [rel, data] of contents) {
      const e = nat.entries.get(rel)!;
      expect(e.sha256, rel).toBe(sha(data));
      expect(e.kind, rel).toBe(contentKind(data.subarray(0, 8192)));
      const stored = !rel.startsWith('meta-only/');
      expect(e.stored, rel).toBe(stored);
      expect(nat.store.has(e.sha256!), rel).toBe(stored || [...contents].some(([p, d]) => !p.startsWith('meta-only/') && sha(d) === e.sha256));
      if (stored) expect(nat.store.readAll(e.sha256!, rel).equals(data), rel).toBe(true);
    }
    // every distinct kept content once
    const distinct = new Map([...contents].filter(([p]) => !p.startsWith('meta-only/')).map(([, d]) => [sha(d), d.length]));
    expect(nat.r.snapshot.newBytes).toBe([...distinct.values()].reduce((a, b) => a + b, 0));
    const all = [...contents.values()].reduce((a, d) => a + d.length, 0);
    expect(nat.r.stats.hashedBytes).toBe(all);
  });

  it('without --metadata-only (contents read while the entries are built): every file, and the manifest written while reading is the one its entries encode to', async () => {
    const nat = await snapshot(join(work, 'store-native-all'), tree, 'native', []);
    for (const [rel, data] of contents) {
      const e = nat.entries.get(rel)!;
      expect([rel, e.sha256, e.size, e.kind, e.stored]).toEqual([rel, sha(data), data.length, contentKind(data.subarray(0, 8192)), true]);
      expect(nat.store.readAll(e.sha256!, rel).equals(data), rel).toBe(true);
    }
    // the hard link's second path was not read again
    expect(nat.entries.get('d/text-link')!.link ?? nat.entries.get('d/text')!.link).toBeDefined();
    expect(nat.r.stats.hashedBytes).toBe([...contents.values()].reduce((a, d) => a + d.length, 0));
    const m = nat.store.readManifest(nat.r.snapshot);
    const [text] = m.parts();
    const identity = text.subarray(m.idStart, m.idEnd).toString('utf8');
    expect(identity.split('\n').length).toBeGreaterThan(300);
    expect(identity).toBe(
      m
        .entries()
        .map((e) => `${identityLine(e)}\n`)
        .join(''),
    );
  });

  it('a first snapshot of thousands of entries: the identity section, put together in pieces while the contents are read, is the one its entries encode to', async () => {
    const big = join(work, 'thousands');
    for (let d = 0; d < 30; d++) {
      mkdirSync(join(big, `d${d}`), { recursive: true });
      for (let i = 0; i < 200; i++) writeFileSync(join(big, `d${d}`, `f${i}`), i % 2 === 0 ? randomBytes(200 + i) : fill(300 + i, d));
    }
    // large files keep the threads busy for many polls while the small ones come in
    for (let i = 0; i < 4; i++) writeFileSync(join(big, `large${i}`), fill(24 << 20, i));
    const store = SnapshotStore.open(join(work, 'store-thousands'), { create: true });
    const r = await takeSnapshot(store, big, { name: 'many', exclude: [], metadataOnly: [], live: false });
    const m = store.readManifest(r.snapshot);
    const identity = m.parts()[0].subarray(m.idStart, m.idEnd).toString('utf8');
    expect(m.header.count).toBe(1 + 30 + 30 * 200 + 4);
    expect(identity.split('\n').length - 1).toBe(m.header.count);
    expect(identity).toBe(
      m
        .entries()
        .map((e) => `${identityLine(e)}\n`)
        .join(''),
    );
    rmSync(big, { recursive: true, force: true });
  });

  it('small files share zstd frames (method 3) or raw groups, larger ones have frames of their own, large ones a frame a 4 MiB', async () => {
    const dir = join(work, 'store-methods');
    const nat = await snapshot(dir, tree, 'native', []);
    const chunks = packChunks(dir);
    const of = (rel: string): number[] => chunks.get(nat.entries.get(rel)!.sha256!)!.map((c) => c.method);
    const small = [...contents].filter(([, d]) => d.length > 0 && d.length <= 128 << 10).map(([rel]) => rel);
    expect(small.length).toBeGreaterThan(300);
    for (const rel of small) expect([[0], [3]], rel).toContainEqual(of(rel));
    // which group a file joins depends on the threads, but text files share frames somewhere
    expect(small.filter((rel) => of(rel)[0] === 3).length).toBeGreaterThan(50);
    expect(of('edge/small-max-plus-one')).toEqual([1]);
    expect(of('d/random')).toEqual([0]);
    expect(of('big/nine-mib')).toEqual([1, 1, 0]); // 4 MiB text, 4 MiB text and random, 1 MiB random
    expect(of('big/random-8m')).toEqual([0, 0, 0]);
    expect(of('empty')).toEqual([]);
    for (const [rel, data] of contents) expect(nat.store.readAll(nat.entries.get(rel)!.sha256!, rel).equals(data), rel).toBe(true);
  });

  it('a small file that grows past the group size after the walk: its new content, with a warning', async () => {
    const root = join(work, 'growing');
    cpSync(tree, root, { recursive: true });
    const store = SnapshotStore.open(join(work, 'store-grow'), { create: true });
    const grown = Buffer.concat([readFileSync(join(root, 'small.txt')), fill(300_000, 13)]);
    const r = await takeSnapshot(store, root, {
      name: 'g',
      exclude: [],
      metadataOnly: [],
      live: false,
      onWalked: () => writeFileSync(join(root, 'small.txt'), grown),
    });
    expect(r.stats.warnings).toContain(`small.txt changed size while it was read (6 → ${grown.length})`);
    const e = files(store.readManifest(r.snapshot).entries()).get('small.txt')!;
    expect(e.size).toBe(grown.length);
    expect(store.readAll(e.sha256!, 'small.txt').equals(grown)).toBe(true);
  });

  it('a damaged byte in a shared frame: what it spoils is refused as corrupt, nothing reads back wrong', async () => {
    const dir = join(work, 'store-damage');
    const nat = await snapshot(dir, tree, 'native', []);
    const chunks = packChunks(dir);
    const byHex = new Map([...nat.entries.values()].filter((e) => e.sha256 !== undefined).map((e) => [e.sha256!, e.path]));
    const [, first] = [...chunks].find(([, c]) => c.length === 1 && c[0]!.method === 3)!;
    const frame = first[0]!;
    const sharing = [...chunks].filter(([, c]) => c.length === 1 && c[0]!.method === 3 && c[0]!.offset === frame.offset).map(([hex]) => hex);
    expect(sharing.length).toBeGreaterThan(1);
    const packs = join(dir, 'packs');
    const packName = readdirSync(packs).find((x) => x.endsWith('.pack'))!;
    const pack = readFileSync(join(packs, packName));
    for (let k = 0; k < 8; k++) pack[frame.offset + Math.floor((frame.stored * (k + 1)) / 9)]! ^= 0x5a;
    writeFileSync(join(packs, packName), pack);
    const fresh = SnapshotStore.open(dir, { create: false });
    let refused = 0;
    for (const hex of sharing) {
      const rel = byHex.get(hex)!;
      try {
        expect(fresh.readAll(hex, rel).equals(contents.get(rel)!), rel).toBe(true);
      } catch (e) {
        expect(e, rel).toMatchObject({ code: 'SNAPSHOT_OBJECT_CORRUPT' });
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('stores nothing that the store already has (a copy of the tree elsewhere adds no pack)', async () => {
    const storeDir = join(work, 'store-twice');
    const first = await snapshot(storeDir);
    const packs = readdirSync(join(storeDir, 'packs')).sort();
    const copy = join(work, 'copy');
    cpSync(tree, copy, { recursive: true });
    const second = await snapshot(storeDir, copy, 'copy');
    expect(second.r.previous).toBeUndefined(); // another source: everything was read again
    // cpSync copies the hard link as a second file: read twice, stored once
    expect(second.r.stats.hashedBytes).toBe(first.r.stats.hashedBytes + contents.get('d/text')!.length);
    expect(second.r.snapshot.newBytes).toBe(0);
    expect(second.r.snapshot.packs).toEqual([]);
    expect(readdirSync(join(storeDir, 'packs')).sort()).toEqual(packs);
    rmSync(copy, { recursive: true, force: true });
  });

  it('the head samples the addon takes classify as contentKind does, on 3,000 generated heads', async () => {
    const dir = join(work, 'kinds');
    mkdirSync(dir);
    const heads: Buffer[] = [];
    const alphabet = [0x00, 0x08, 0x09, 0x0a, 0x0d, 0x20, 0x7b, 0x5b, 0x41, 0x1f, 0x8b, 0xed, 0x0c, 0xda, 0xff];
    for (let i = 0; i < 3000; i++) {
      const n = [0, 1, 2, 19, 20, 21, 100, 8191, 8192, 8193][i % 10]!;
      const b = Buffer.alloc(n);
      for (let k = 0; k < n; k++) b[k] = i % 4 === 0 ? alphabet[(k * 7 + i) % alphabet.length]! : 0x20 + ((k + i) % 90);
      if (i % 5 === 1 && n >= 20) b.writeUInt32LE(i % 2 ? 0xed0cdaed : 0xedda0ced, 16);
      if (i % 7 === 2 && n >= 2) b.set([0x1f, 0x8b]);
      if (i % 11 === 3 && n >= 3) b.set([0x20, 0x0a, i % 2 ? 0x7b : 0x5b]);
      heads.push(b);
      writeFileSync(join(dir, `h${i}`), b);
    }
    const r = await packFiles(
      fileBatch(heads.map((_, i) => ({ abs: join(dir, `h${i}`), keep: false }))),
      undefined,
      { tables: [], stride: 48 },
      { level: 1, threads: 3 },
    );
    r.results.forEach((f, i) => {
      expect({ i, kind: f.kind, sha: f.sha256, size: f.size }).toEqual({
        i,
        kind: contentKind(heads[i]!.subarray(0, 8192)),
        sha: sha(heads[i]!),
        size: heads[i]!.length,
      });
    });
  });

  it('a file that disappears before it is read: SNAPSHOT_SOURCE_CHANGED naming it, no pack left', async () => {
    const root = join(work, 'vanishing');
    cpSync(tree, root, { recursive: true });
    const storeDir = join(work, 'store-vanish');
    const store = SnapshotStore.open(storeDir, { create: true });
    const victim = join(root, 'many', 'f150');
    await expect(takeSnapshot(store, root, { name: 'v', exclude: [], metadataOnly: [], live: false, onWalked: () => rmSync(victim) })).rejects.toMatchObject({
      code: 'SNAPSHOT_SOURCE_CHANGED',
      message: expect.stringContaining(`${victim} disappeared`),
    });
    expect(readdirSync(join(storeDir, 'packs'))).toEqual([]);
    expect(store.snapshots()).toEqual([]);
  });

  it('a file replaced by a FIFO before it is read: a coded error at once, not a read that waits for a writer', async () => {
    const root = join(work, 'fifo-swap');
    cpSync(tree, root, { recursive: true });
    const store = SnapshotStore.open(join(work, 'store-fifo'), { create: true });
    const victim = join(root, 'small.txt');
    await expect(
      takeSnapshot(store, root, {
        name: 'f',
        exclude: [],
        metadataOnly: [],
        live: false,
        onWalked: () => {
          rmSync(victim);
          execFileSync('mkfifo', [victim]);
        },
      }),
    ).rejects.toMatchObject({ code: 'SNAPSHOT_SOURCE_CHANGED', message: expect.stringContaining(`${victim} cannot be read (EINVAL)`) });
    expect(store.snapshots()).toEqual([]);
  });

  it('a pack on tmpfs (direct writes or their buffered fallback) reads back byte for byte', async () => {
    if (!existsSync('/dev/shm') || !statSync('/dev/shm').isDirectory()) return;
    const storeDir = mkdtempSync(join('/dev/shm', 'dataroot-packfiles-'));
    try {
      const nat = await snapshot(join(storeDir, 'store'));
      for (const [rel, data] of contents)
        if (!rel.startsWith('meta-only/')) expect(nat.store.readAll(nat.entries.get(rel)!.sha256!, rel).equals(data), rel).toBe(true);
    } finally {
      rmSync(storeDir, { recursive: true, force: true });
    }
  });

  it('--compress-level: 19 stores less than -100, both read back byte for byte; a level out of range is a usage error', async () => {
    const stored: number[] = [];
    for (const level of [19, -100]) {
      const store = SnapshotStore.open(join(work, `store-level-${level}`), { create: true });
      const r = await takeSnapshot(store, tree, { name: 'l', exclude: [], metadataOnly: [], live: false, level });
      stored.push(r.snapshot.storedBytes);
      const entries = files(store.readManifest(r.snapshot).entries());
      for (const [rel, data] of contents) expect(store.readAll(entries.get(rel)!.sha256!, rel).equals(data), rel).toBe(true);
    }
    expect(stored[0]!).toBeLessThan(stored[1]!);
    const store = SnapshotStore.open(join(work, `store-level-bad`), { create: true });
    await expect(takeSnapshot(store, tree, { name: 'l', exclude: [], metadataOnly: [], live: false, level: 20 })).rejects.toMatchObject({
      code: 'USAGE_BAD_LEVEL',
    });
    expect(store.snapshots()).toEqual([]);
    expect(readdirSync(join(work, `store-level-bad`, 'packs'))).toEqual([]);
  });

  it('DATAROOT_NO_DIRECT_IO: packs written through the page cache read back byte for byte', async () => {
    process.env['DATAROOT_NO_DIRECT_IO'] = '1';
    try {
      const r = await snapshot(join(work, 'store-buffered'), tree, 'native', []);
      for (const [rel, data] of contents) expect(r.store.readAll(r.entries.get(rel)!.sha256!, rel).equals(data), rel).toBe(true);
    } finally {
      delete process.env['DATAROOT_NO_DIRECT_IO'];
    }
  });

  // A full disk, made with a small tmpfs (root only; CI runs as root).
  it.runIf(process.getuid?.() === 0)('a disk that fills up mid-snapshot: SNAPSHOT_WRITE_FAILED, nothing registered, no pack left', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'dataroot-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    try {
      const store = SnapshotStore.open(join(mnt, 'store'), { create: true });
      await expect(takeSnapshot(store, tree, { name: 'full', exclude: [], metadataOnly: [], live: false })).rejects.toMatchObject({
        code: 'SNAPSHOT_WRITE_FAILED',
        message: expect.stringContaining('ENOSPC'),
      });
      expect(store.snapshots()).toEqual([]);
      expect(readdirSync(join(mnt, 'store', 'packs'))).toEqual([]);
      expect(existsSync(join(mnt, 'store', 'snapshots', 'full.manifest'))).toBe(false);
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  it('store versions: a new store is version 2; a version 1 store is read and becomes 2 with its first new pack; a later version is refused plainly', async () => {
    const dir = join(work, 'store-versions');
    const first = await snapshot(dir, join(tree, 'd'), 'one', []);
    const marker = join(dir, 'dataroot-store.json');
    expect(JSON.parse(readFileSync(marker, 'utf8'))).toMatchObject({ format: 'dataroot-snapshot-store', version: 2 });
    // as an older dataroot left it
    writeFileSync(marker, JSON.stringify({ format: 'dataroot-snapshot-store', version: 1, created: '2026-01-01T00:00:00.000Z' }));
    const v1 = SnapshotStore.open(dir, { create: false });
    const e = first.entries.get('text')!;
    expect(v1.readAll(e.sha256!, 'text').equals(contents.get('d/text')!)).toBe(true);
    // nothing new: no pack, still version 1
    const again = await takeSnapshot(v1, join(tree, 'd'), { name: 'two', exclude: [], metadataOnly: [], live: false });
    expect(again.snapshot.packs).toEqual([]);
    expect(JSON.parse(readFileSync(marker, 'utf8')).version).toBe(1);
    // a new pack: version 2, its creation time kept
    await takeSnapshot(SnapshotStore.open(dir, { create: false }), join(tree, 'many'), { name: 'three', exclude: [], metadataOnly: [], live: false });
    expect(JSON.parse(readFileSync(marker, 'utf8'))).toEqual({ format: 'dataroot-snapshot-store', version: 2, created: '2026-01-01T00:00:00.000Z' });
    writeFileSync(marker, JSON.stringify({ format: 'dataroot-snapshot-store', version: 3 }));
    expect(() => SnapshotStore.open(dir, { create: false })).toThrow(
      expect.objectContaining({ code: 'SNAPSHOT_NOT_A_STORE', message: expect.stringContaining('version 3') }),
    );
  });

  it('hashing alone (no pack) gives the sha256 and size of every file', async () => {
    const { entries } = await scanTree(tree, { exclude: [], metadataOnly: [] });
    const got = files(entries);
    for (const [rel, data] of contents) expect([rel, got.get(rel)!.sha256, got.get(rel)!.size]).toEqual([rel, sha(data), data.length]);
  });
});

/**
 * Regenerates test/fixtures/snapstore/: two small snapshot stores written through the
 * formats/snapstore codecs, as the two kinds of store that exist were written, with what they
 * must read as beside them (`<store>.expected.json`):
 *   v1-brotli  a version 1 store as early dataroot builds without libzstd wrote it: brotli and raw
 *              chunks, a gzip manifest;
 *   v2-zstd    a version 2 store as dataroot writes it: zstd and raw chunks, small files as slices
 *              of one shared zstd frame, a DRM2 manifest of two zstd frames.
 * Run: npx vite-node scripts/fixtures-snapstore.ts (needs the addon or Node 22.15+ for zstd).
 * The bytes are committed: a decoder change that reads them differently fails test/snapshot-fixtures.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zc, gzipSync } from 'node:zlib';
import { encodeIndex, type IndexEntry } from '../src/formats/snapstore/index.js';
import { encodeManifestFile, type ManifestEntry } from '../src/formats/snapstore/manifest.js';
import { encodeRecord, METHOD_BROTLI, METHOD_RAW, METHOD_ZSTD, METHOD_ZSTD_SLICE, PACK_MAGIC, type Chunk } from '../src/formats/snapstore/pack.js';
import { encodeRegistry, encodeStoreMarker, manifestPathOf, STORE_FORMAT, type RegisteredSnapshot } from '../src/formats/snapstore/registry.js';
import { zstdCompressAsync } from '../src/io/zstd.js';
import { manifestOf } from '../src/store/snapshots/manifest.js';

const OUT = fileURLToPath(new URL('../test/fixtures/snapstore/', import.meta.url));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

const text = (s: string): Buffer => Buffer.from(s);
/** Deterministic bytes that do not compress. */
function noise(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const CONTENTS: Record<string, Buffer> = {
  'a.json': text('{"images":{"busybox:latest":"sha256:0123"}}\n'),
  'b.txt': text('layer image config diff lower merged work '.repeat(20)),
  'c.bin': noise(64, 7),
  'd/big': Buffer.concat([text('chunk one '.repeat(30)), noise(100, 9)]),
};

function entries(): ManifestEntry[] {
  const base = { uid: 0, gid: 0, mtime: '1700000000123456789', atime: '1700000000123456789', ctime: '1700000000123456789', dev: '2049', nlink: 1 };
  const file = (path: string, ino: number, kind: NonNullable<ManifestEntry['kind']>, nlink = 1): ManifestEntry => ({
    ...base,
    path,
    type: 'file',
    mode: 0o644,
    size: CONTENTS[path]!.length,
    ino: String(ino),
    nlink,
    sha256: sha(CONTENTS[path]!),
    stored: true,
    kind,
  });
  return [
    { ...base, path: '', type: 'dir', mode: 0o755, size: 0, ino: '100' },
    file('a.json', 101, 'json'),
    file('b.txt', 102, 'text', 2),
    file('c.bin', 103, 'binary'),
    { ...base, path: 'd', type: 'dir', mode: 0o700, size: 0, ino: '104', xattrs: { 'user.note': Buffer.from('kept').toString('base64') } },
    file('d/big', 105, 'text'),
    { ...base, path: 'h', type: 'file', mode: 0o644, size: CONTENTS['b.txt']!.length, ino: '102', nlink: 2, link: 'b.txt' },
    { ...base, path: 'l', type: 'symlink', mode: 0o777, size: 6, ino: '106', target: 'a.json' },
    { ...base, path: 'n', type: 'fifo', mode: 0o600, size: 0, ino: '107' },
  ];
}

/** A pack of objects, each a list of chunks made by `put` (which appends their bytes); its index. */
class Pack {
  bytes: Buffer[] = [Buffer.from(PACK_MAGIC)];
  at = PACK_MAGIC.length;
  index: IndexEntry[] = [];
  append(b: Uint8Array): number {
    const off = this.at;
    this.bytes.push(Buffer.from(b));
    this.at += b.length;
    return off;
  }
  object(content: Buffer, chunks: Chunk[]): void {
    const rec = encodeRecord(Buffer.from(sha(content), 'hex'), content.length, chunks);
    this.index.push({ sha256: Buffer.from(sha(content), 'hex'), offset: this.append(rec), size: content.length });
  }
}

async function v2(): Promise<Pack> {
  const p = new Pack();
  // a.json and b.txt: slices of one shared zstd frame
  const group = Buffer.concat([CONTENTS['a.json']!, CONTENTS['b.txt']!]);
  const frame = await zstdCompressAsync(group, 3);
  const fo = p.append(frame);
  p.object(CONTENTS['a.json']!, [
    { method: METHOD_ZSTD_SLICE, offset: fo, stored: frame.length, raw: group.length, start: 0, len: CONTENTS['a.json']!.length },
  ]);
  p.object(CONTENTS['b.txt']!, [
    { method: METHOD_ZSTD_SLICE, offset: fo, stored: frame.length, raw: group.length, start: CONTENTS['a.json']!.length, len: CONTENTS['b.txt']!.length },
  ]);
  // c.bin raw
  const c = CONTENTS['c.bin']!;
  p.object(c, [{ method: METHOD_RAW, offset: p.append(c), stored: c.length, raw: c.length }]);
  // d/big: a zstd chunk, then a raw one
  const big = CONTENTS['d/big']!;
  const z = await zstdCompressAsync(big.subarray(0, 300), 3);
  const zo = p.append(z);
  const ro = p.append(big.subarray(300));
  p.object(big, [
    { method: METHOD_ZSTD, offset: zo, stored: z.length, raw: 300 },
    { method: METHOD_RAW, offset: ro, stored: 100, raw: 100 },
  ]);
  return p;
}

function v1(): Pack {
  const p = new Pack();
  const br = (b: Buffer): Buffer => brotliCompressSync(b, { params: { [zc.BROTLI_PARAM_QUALITY]: 5 } });
  for (const name of ['a.json', 'b.txt']) {
    const z = br(CONTENTS[name]!);
    p.object(CONTENTS[name]!, [{ method: METHOD_BROTLI, offset: p.append(z), stored: z.length, raw: CONTENTS[name]!.length }]);
  }
  const c = CONTENTS['c.bin']!;
  p.object(c, [{ method: METHOD_RAW, offset: p.append(c), stored: c.length, raw: c.length }]);
  const big = CONTENTS['d/big']!;
  const z = br(big.subarray(0, 300));
  const zo = p.append(z);
  const ro = p.append(big.subarray(300));
  p.object(big, [
    { method: METHOD_BROTLI, offset: zo, stored: z.length, raw: 300 },
    { method: METHOD_RAW, offset: ro, stored: 100, raw: 100 },
  ]);
  return p;
}

async function write(name: string, version: 1 | 2, pack: Pack, packId: string, snap: string): Promise<void> {
  const dir = join(OUT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'packs'), { recursive: true });
  mkdirSync(join(dir, 'snapshots'), { recursive: true });
  writeFileSync(join(dir, 'packs', `${packId}.pack`), Buffer.concat(pack.bytes));
  writeFileSync(join(dir, 'packs', `${packId}.idx`), encodeIndex(pack.index));
  const options = { exclude: [], metadataOnly: [], live: false };
  const m = manifestOf({ name: snap, created: '2026-01-02T03:04:05.000Z', source: '/var/lib/docker', options }, entries());
  const [first, second] = m.parts();
  const manifest =
    version === 1
      ? gzipSync(Buffer.concat([first, second]), { level: 9 })
      : Buffer.from(encodeManifestFile(first.length, second.length, await zstdCompressAsync(first, 1), await zstdCompressAsync(second, 1)));
  writeFileSync(join(dir, manifestPathOf(snap)), manifest);
  const registered: RegisteredSnapshot = {
    name: snap,
    created: '2026-01-02T03:04:05.000Z',
    source: '/var/lib/docker',
    manifest: manifestPathOf(snap),
    manifestSha256: sha(manifest),
    entries: m.count,
    logicalBytes: Object.values(CONTENTS).reduce((a, b) => a + b.length, 0),
    newBytes: Object.values(CONTENTS).reduce((a, b) => a + b.length, 0),
    storedBytes: pack.at,
    packs: [packId],
    options,
  };
  writeFileSync(join(dir, 'registry.json'), encodeRegistry({ format: STORE_FORMAT, version: 1, snapshots: [registered] }));
  writeFileSync(join(dir, 'dataroot-store.json'), encodeStoreMarker({ format: STORE_FORMAT, version, created: '2026-01-02T03:04:05.000Z' }));
  const expected = {
    version,
    snapshots: [registered],
    entries: m.entries(),
    index: [...pack.index]
      .sort((a, b) => Buffer.compare(Buffer.from(a.sha256), Buffer.from(b.sha256)))
      .map((e) => ({ sha256: Buffer.from(e.sha256).toString('hex'), offset: e.offset, size: e.size })),
    contents: Object.fromEntries(Object.entries(CONTENTS).map(([k, v]) => [k, { sha256: sha(v), base64: v.toString('base64') }])),
  };
  writeFileSync(join(OUT, `${name}.expected.json`), `${JSON.stringify(expected, null, 1)}\n`);
}

await write('v1-brotli', 1, v1(), 'lz0old00-0badc0de', 'old');
await write('v2-zstd', 2, await v2(), 'mib3x000-0a1b2c3d', 'new');
console.log(`wrote ${OUT}`);

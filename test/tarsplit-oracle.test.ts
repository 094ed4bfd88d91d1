import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarReader } from '../src/formats/tar/reader.js';
import { decodeEntries } from '../src/formats/tarsplit/entries.js';
import { assemble, disassemble } from '../src/formats/tarsplit/stream.js';
import { needs } from './support/env.js';
import { tarsplitOracle } from './support/gobolt.js';

/**
 * Differential tests of the tar reader and tar-split against Debian's tar-split 0.11.2 (the
 * version dockerd 20.10 vendors) and Go's archive/tar: archives written by Go's writer from random
 * seeds (ustar, PAX, GNU; long names, large ids, xattrs, links, devices, global headers, record
 * padding) and by GNU tar. Our tar-split stream must equal tar-split's byte for byte, and both
 * assemblers must rebuild the original archive from it.
 */

async function* chunks(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, Math.min(b.length, o + size));
}

/** Our tar-split NDJSON of an archive, and its regular files' contents extracted under `dir`. */
async function ours(tar: Uint8Array, chunkSize: number, dir?: string): Promise<string> {
  let out = '';
  await disassemble(
    new TarReader(chunks(tar, chunkSize)),
    (l) => (out += l),
    async (e, data) => {
      if (dir === undefined || e.dataSize === 0) return;
      const parts: Uint8Array[] = [];
      for await (const c of data) parts.push(c);
      const p = join(dir, Buffer.from(e.name).toString('utf8'));
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, Buffer.concat(parts));
    },
  );
  return out;
}

async function reassemble(ndjson: string, dir: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  const files = {
    async open(name: Uint8Array) {
      const p = join(dir, Buffer.from(name).toString('utf8'));
      try {
        const data = readFileSync(p);
        return (async function* () {
          yield data;
        })();
      } catch {
        return undefined;
      }
    },
  };
  for await (const c of assemble(decodeEntries(chunks(Buffer.from(ndjson), 777)), files)) parts.push(c);
  return Buffer.concat(parts);
}

describe.runIf(needs('go'))('tar reader and tar-split vs Go (tar-split 0.11.2, archive/tar)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-tarsplit-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const seeds = Array.from({ length: 40 }, (_, i) => i + 1);

  it.each(seeds)('Go-written archive, seed %i: headers, tar-split stream and reassembly', async (seed) => {
    const tarPath = join(dir, `go-${seed}.tar`);
    tarsplitOracle(['gentar', String(seed), tarPath]);
    const tar = readFileSync(tarPath);
    // Headers as Go's reader sees them.
    const want = tarsplitOracle(['list', tarPath])
      .stdout.trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const got: Record<string, unknown>[] = [];
    const tr = new TarReader(chunks(tar, 4096));
    for (let e = await tr.next(); e !== undefined; e = await tr.next()) {
      got.push({
        name: Buffer.from(e.name).toString('base64'),
        linkname: Buffer.from(e.linkname).toString('base64'),
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        mtime: e.mtime,
        uname: e.uname,
        gname: e.gname,
        devmajor: e.devmajor,
        devminor: e.devminor,
        xattrs: Object.fromEntries([...e.xattrs].map(([k, v]) => [k, Buffer.from(v).toString('utf8')])),
      });
    }
    // Go's JSON encodes []byte as base64 and a global header's fields as zero values.
    expect(got).toEqual(want);
    // tar-split stream, byte for byte.
    const goJson = join(dir, `go-${seed}.json`);
    tarsplitOracle(['disasm', tarPath, goJson]);
    const files = join(dir, `files-${seed}`);
    mkdirSync(files);
    const mine = await ours(tar, 4096, files);
    expect(mine).toBe(readFileSync(goJson, 'utf8'));
    // Fed one byte at a time: the same stream.
    expect(await ours(tar, 1)).toBe(mine);
    // Reassembly by us and by tar-split gives back the archive.
    expect((await reassemble(mine, files)).equals(tar)).toBe(true);
    const outTar = join(dir, `re-${seed}.tar`);
    tarsplitOracle(['asm', goJson, files, outTar]);
    expect(readFileSync(outTar).equals(tar)).toBe(true);
  });

  it.each(['gnu', 'posix', 'ustar', 'oldgnu'])('GNU tar --format=%s (long names, long link targets, record padding)', async (format) => {
    const src = join(dir, `src-${format}`);
    const long = 'd'.repeat(90);
    mkdirSync(join(src, long, 'sub'), { recursive: true });
    writeFileSync(join(src, long, 'sub', `${'f'.repeat(80)}.txt`), 'long path\n');
    writeFileSync(join(src, 'small'), 'x'.repeat(1000));
    writeFileSync(join(src, 'empty'), '');
    symlinkSync('t'.repeat(120), join(src, 'longlink'));
    const tarPath = join(dir, `gnu-${format}.tar`);
    const r = spawnSync('tar', [`--format=${format}`, '--sort=name', '-C', src, '-cf', tarPath, '.'], { encoding: 'utf8' });
    if (format === 'ustar') {
      // ustar cannot hold a 120-byte link target: GNU tar says so and skips it.
      expect(r.stderr).toMatch(/too long/);
    } else expect(r.status).toBe(0);
    const tar = readFileSync(tarPath);
    expect(tar.length % 10240).toBe(0);
    const goJson = join(dir, `gnu-${format}.json`);
    tarsplitOracle(['disasm', tarPath, goJson]);
    const files = join(dir, `gnufiles-${format}`);
    mkdirSync(files);
    const mine = await ours(tar, 65536, files);
    expect(mine).toBe(readFileSync(goJson, 'utf8'));
    expect((await reassemble(mine, files)).equals(tar)).toBe(true);
  });
});

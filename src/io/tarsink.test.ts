import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatarootError } from '../formats/errors.js';
import { TarFile, TarFileOut, TarStream, type TarOut } from './tarsink.js';

/**
 * The tar sinks against the archive built by hand: each entry's 512-byte header, its contents,
 * zeros to the next block, and two zero blocks at the end. TarFileOut reads small files into its
 * run and large ones by copiers, out of order on the thread pool; the bytes must be the same.
 */

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dataroot-tarsink-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

let opened = 0;
let closed = 0;
function source(name: string, content: Buffer): () => { fd: number; close(): void } {
  const p = join(dir, name);
  writeFileSync(p, content);
  return () => {
    const fd = openSync(p, 'r');
    opened++;
    return {
      fd,
      close: () => {
        closeSync(fd);
        closed++;
      },
    };
  };
}

const pad = (n: number): number => (512 - (n % 512)) % 512;

/** Sizes around the block, the small-file limit (256 KiB), the run (4 MiB) and the copier buffer (1 MiB); 150 small files pass the 64 reads in flight. */
const SIZES = [
  1,
  511,
  512,
  513,
  4096,
  256 << 10,
  (256 << 10) + 1,
  1 << 20,
  (1 << 20) + 7,
  3_000_001,
  5 << 20,
  ...Array.from({ length: 150 }, (_, i) => 1 + ((i * 7919) % 60_000)),
];

async function build(sink: TarOut): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const [i, size] of SIZES.entries()) {
    const header = randomBytes(512);
    const content = randomBytes(size);
    const open = source(`f${i}`, content);
    await sink.put(header);
    await sink.data(open(), size, `f${i}`);
    parts.push(header, content, Buffer.alloc(pad(size)));
  }
  await sink.end();
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

describe('tar sinks', () => {
  it('TarFileOut writes the archive built by hand, every source closed', async () => {
    opened = closed = 0;
    const out = new TarFile(join(dir, 'out.tar'));
    const sink = new TarFileOut(out.fd);
    const want = await build(sink);
    out.commit();
    const got = readFileSync(join(dir, 'out.tar'));
    expect(got.length).toBe(want.length);
    expect(sink.size).toBe(want.length);
    expect(got.equals(want)).toBe(true);
    expect(closed).toBe(opened);
    expect(opened).toBe(SIZES.length);
  });

  it('TarStream hands out the same bytes', async () => {
    const chunks: Buffer[] = [];
    const sink = new TarStream((b) => chunks.push(Buffer.from(b)), 1 << 16);
    const want = await build(sink);
    expect(Buffer.concat(chunks).equals(want)).toBe(true);
  });

  for (const [what, size] of [
    ['a small file', 10_000],
    ['a large file', 2 << 20],
  ] as const) {
    it(`${what} shorter than its header says is EXPORT_SOURCE_CHANGED; after settle nothing is open or in flight`, async () => {
      opened = closed = 0;
      const out = new TarFile(join(dir, 'bad.tar'));
      const sink = new TarFileOut(out.fd);
      const ok = source('ok', randomBytes(600_000));
      const short = source('short', randomBytes(size - 100));
      let err: unknown;
      try {
        await sink.put(randomBytes(512));
        await sink.data(ok(), 600_000, 'ok');
        await sink.put(randomBytes(512));
        await sink.data(short(), size, 'short');
        for (let i = 0; i < 100; i++) {
          await sink.put(randomBytes(512));
          await sink.data(ok(), 600_000, `ok${i}`);
        }
        await sink.end();
      } catch (e) {
        err = e;
        await sink.settle();
      }
      expect(err).toBeInstanceOf(DatarootError);
      expect((err as DatarootError).code).toBe('EXPORT_SOURCE_CHANGED');
      expect(closed).toBe(opened);
      // Nothing lands after settle: the temp file's size stays put, and nothing was renamed into place.
      const before = fstatSync(out.fd).size;
      await new Promise((r) => setTimeout(r, 100));
      expect(fstatSync(out.fd).size).toBe(before);
      expect(statSync(join(dir, 'bad.tar'), { throwIfNoEntry: false })).toBeUndefined();
      out.abort();
      expect(statSync(join(dir, 'bad.tar'), { throwIfNoEntry: false })).toBeUndefined();
    });
  }
});

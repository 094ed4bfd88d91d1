import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeLogEntry, frame } from '../formats/logs/logentry.js';
import { Confined } from './confined.js';
import { gunzipChunks, tailFrames, tailLines } from './logfiles.js';

const reader =
  (b: Buffer) =>
  (buf: Uint8Array, pos: number): number => {
    if (pos < 0) return 0;
    const part = b.subarray(pos, pos + buf.length);
    buf.set(part);
    return part.length;
  };

/** pkg/tailfile's result, from the newline positions (what the backwards scan must equal). */
function expected(b: Buffer, req: number): { start: number; end: number; found: number } {
  if (b.length <= 1) return { start: 0, end: 0, found: 0 };
  const nl: number[] = [];
  for (let i = 0; i < b.length; i++) if (b[i] === 0x0a) nl.push(i);
  const found = Math.min(nl.length, req);
  if (found === 0) return { start: 0, end: 0, found: 0 };
  const end = nl[nl.length - 1]! + 1;
  const start = found === req && nl.length > req ? nl[nl.length - req - 1]! + 1 : 0;
  return { start, end, found };
}

describe('tail readers', () => {
  it('tailLines equals the newline arithmetic on random files (long lines across the 64 KiB blocks too)', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let t = 0; t < 300; t++) {
      const len = rnd(t % 10 === 0 ? 200_000 : 300);
      const b = Buffer.alloc(len);
      for (let i = 0; i < len; i++) b[i] = rnd(t % 10 === 0 ? 40000 : 6) === 0 ? 0x0a : 0x61;
      for (const req of [1, 2, 3, 7, 50]) expect(tailLines(reader(b), b.length, req), `case ${t} req ${req}`).toEqual(expected(b, req));
    }
  });

  it('tailFrames walks footers back from the end and checks each header', () => {
    const recs = [0, 1, 2, 3].map((i) =>
      Buffer.from(frame(encodeLogEntry({ source: 'stdout', timeNano: BigInt(i), line: Buffer.from(`l${i}`), partial: false, partialMeta: undefined }))),
    );
    const all = Buffer.concat(recs);
    expect(tailFrames(reader(all), all.length, 2, 'f')).toEqual({ start: recs[0]!.length + recs[1]!.length, end: all.length, found: 2 });
    expect(tailFrames(reader(all), all.length, 10, 'f')).toEqual({ start: 0, end: all.length, found: 4 });
    const bad = Buffer.from(all);
    bad.writeUInt32BE(0x7fffffff, bad.length - 4);
    expect(() => tailFrames(reader(bad), bad.length, 1, 'f')).toThrow(/more than the file holds/);
    const mism = Buffer.from(all);
    mism.writeUInt32BE(recs[3]!.length - 8 + 1, mism.length - 4);
    expect(() => tailFrames(reader(mism), mism.length, 1, 'f')).toThrow();
  });
});

describe('gunzipChunks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dataroot-logfiles-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('stops a decompression bomb at its bound with a coded error', async () => {
    writeFileSync(join(dir, 'bomb.gz'), gzipSync(Buffer.alloc(8 << 20)));
    const fs = Confined.open(dir);
    const f = fs.openFile('bomb.gz')!;
    let got = 0;
    await expect(
      (async () => {
        for await (const c of gunzipChunks(f, 1 << 20, 'bomb.gz')) got += c.length;
      })(),
    ).rejects.toMatchObject({ code: 'LOG_DECOMPRESSED_TOO_LARGE' });
    expect(got).toBeLessThanOrEqual(1 << 20);
    f.close();
  });
  it('corrupt gzip is LOG_GZIP_CORRUPT', async () => {
    const gz = gzipSync(Buffer.from('hello world '.repeat(1000)));
    gz[gz.length - 20]! ^= 0xff;
    writeFileSync(join(dir, 'bad.gz'), gz);
    const f = Confined.open(dir).openFile('bad.gz')!;
    await expect(
      (async () => {
        for await (const _c of gunzipChunks(f, 1 << 30, 'bad.gz'));
      })(),
    ).rejects.toMatchObject({ code: 'LOG_GZIP_CORRUPT' });
    f.close();
  });
});

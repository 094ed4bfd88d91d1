import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseGzipHeader } from './header.js';

/** A gzip member with FEXTRA as Go's compress/gzip writes it (Header.Extra as is), hand-built. */
function withExtra(extra: string, body: Buffer): Buffer {
  const plain = gzipSync(body);
  const x = Buffer.from(extra);
  const head = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, x.length & 0xff, x.length >> 8]);
  return Buffer.concat([head, x, plain.subarray(10)]);
}

describe('gzip header (the lastTime dockerd puts in a compressed log rotation)', () => {
  it('reads FEXTRA and where the data starts; the member still decompresses', () => {
    const extra = '{"lastTime":"2026-12-05T23:10:05.164615675Z"}';
    const gz = withExtra(extra, Buffer.from('hello\n'));
    const h = parseGzipHeader(gz);
    expect(h.ok).toBe(true);
    if (!h.ok) return;
    expect(Buffer.from(h.header.extra!).toString()).toBe(extra);
    expect(h.header.dataStart).toBe(12 + extra.length);
    expect(gunzipSync(gz).toString()).toBe('hello\n');
  });
  it('no FEXTRA: none', () => {
    const h = parseGzipHeader(gzipSync(Buffer.from('x')));
    expect(h.ok && h.header.extra === undefined && h.header.dataStart === 10).toBe(true);
  });
  it.each([
    ['short', Buffer.from([0x1f, 0x8b, 8])],
    ['magic', Buffer.from('not gzip at all')],
    ['method', Buffer.from([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0])],
    ['short', Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 1, 2])],
  ])('%s', (reason, b) => {
    expect(parseGzipHeader(b)).toEqual({ ok: false, reason });
  });
});

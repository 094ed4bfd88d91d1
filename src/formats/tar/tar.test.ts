import { describe, expect, it } from 'vitest';
import { BLOCK, TYPE, decodeHeader, encodeHeader, parseNumeric, parsePax, paxRecord } from './header.js';
import { TarReader } from './reader.js';
import { Crc64, crc64 } from '../tarsplit/crc64.js';
import { base64, decodeEntry, encodeEntry, goJsonString, unbase64 } from '../tarsplit/entries.js';
import { cleanPath, TarSplitWriter } from '../tarsplit/stream.js';

const te = new TextEncoder();

async function* feed(b: Uint8Array, size = b.length || 1): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < b.length; o += size) yield b.subarray(o, Math.min(b.length, o + size));
}

/** A hand-built ustar header for "hello" (10 bytes, mode 0644, uid/gid 0, mtime 0o14000000000). */
function handHeader(): Uint8Array {
  const b = new Uint8Array(BLOCK);
  b.set(te.encode('hello'), 0);
  b.set(te.encode('0000644\0'), 100);
  b.set(te.encode('0000000\0'), 108);
  b.set(te.encode('0000000\0'), 116);
  b.set(te.encode('00000000012\0'), 124);
  b.set(te.encode('14000000000\0'), 136);
  b[156] = 0x30;
  b.set(te.encode('ustar\u000000'), 257);
  // Checksum by hand: sum of all bytes with the field as 8 spaces.
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  b.set(te.encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
  return b;
}

describe('tar header codec', () => {
  it('decodes a hand-built ustar header', () => {
    const h = decodeHeader(handHeader());
    expect(new TextDecoder().decode(h.name)).toBe('hello');
    expect(h).toMatchObject({ mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0o14000000000, type: TYPE.REG, format: 'ustar', checksumValid: true });
  });

  it('flags a wrong checksum as data (the reader then refuses it)', async () => {
    const b = handHeader();
    b[0] = 0x48; // "Hello"
    expect(decodeHeader(b).checksumValid).toBe(false);
    const tr = new TarReader(feed(b));
    await expect(tr.next()).rejects.toMatchObject({ code: 'TAR_BAD_HEADER' });
  });

  it.each([
    ['octal with NUL', '0000644\0', 0o644],
    ['octal with space', '   644 \0', 0o644],
    ['empty', '\0\0\0\0\0\0\0\0', 0],
  ])('numbers: %s', (_n, field, want) => {
    expect(parseNumeric(te.encode(field), 0, 8)).toBe(want);
  });

  it('base-256 numbers, positive and negative, and refuses what exceeds 2^53', () => {
    const pos = new Uint8Array([0x80, 0, 0, 0, 0, 0, 0x01, 0x00, 0, 0, 0, 0x05]);
    expect(parseNumeric(pos, 0, 12)).toBe(0x010000000005);
    const neg = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    expect(parseNumeric(neg, 0, 12)).toBe(-2);
    const huge = new Uint8Array([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(parseNumeric(huge, 0, 12)).toBeUndefined();
    expect(parseNumeric(te.encode('0000009\0'), 0, 8)).toBeUndefined();
  });

  it('PAX records: self-including lengths, round trip', () => {
    const r = paxRecord('path', te.encode('a'.repeat(95)));
    expect(new TextDecoder().decode(r)).toBe(`105 path=${'a'.repeat(95)}\n`);
    const m = parsePax(new Uint8Array([...paxRecord('path', te.encode('x/y')), ...paxRecord('SCHILY.xattr.user.k', te.encode('v'))]));
    expect(new TextDecoder().decode(m.get('path'))).toBe('x/y');
    expect(new TextDecoder().decode(m.get('SCHILY.xattr.user.k'))).toBe('v');
    expect(() => parsePax(te.encode('99 path=x\n'))).toThrow(expect.objectContaining({ code: 'TAR_BAD_PAX' }));
  });

  it('encodes a header that decodes to the same fields; long names spill into prefix or PAX', () => {
    const { block, pax } = encodeHeader({ name: te.encode('dir/file'), mode: 0o755, uid: 1, gid: 2, size: 3, mtime: 4, type: TYPE.REG });
    expect(pax).toEqual([]);
    expect(decodeHeader(block)).toMatchObject({ mode: 0o755, uid: 1, gid: 2, size: 3, mtime: 4, checksumValid: true });
    const long = `${'p'.repeat(120)}/${'n'.repeat(90)}`;
    const split = encodeHeader({ name: te.encode(long), mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, type: TYPE.REG });
    expect(split.pax).toEqual([]);
    const d = decodeHeader(split.block);
    expect(`${new TextDecoder().decode(d.prefix)}/${new TextDecoder().decode(d.name)}`).toBe(long);
    expect(encodeHeader({ name: te.encode('x'.repeat(300)), mode: 0, uid: 0, gid: 0, size: 0, mtime: 0, type: TYPE.REG }).pax.map(([k]) => k)).toEqual([
      'path',
    ]);
    expect(encodeHeader({ name: te.encode('x'), mode: 0, uid: 9_000_000, gid: 0, size: 0, mtime: 0, type: TYPE.REG }).pax.map(([k]) => k)).toEqual(['uid']);
  });
});

describe('tar reader on bad input', () => {
  it('a truncated header, truncated data and an impossible size are coded errors', async () => {
    const h = handHeader();
    await expect(new TarReader(feed(h.subarray(0, 100))).next()).rejects.toMatchObject({ code: 'TAR_TRUNCATED' });
    const tr = new TarReader(feed(new Uint8Array([...h, ...te.encode('hel')])));
    await tr.next();
    await expect(
      (async () => {
        for await (const _ of tr.data()) void _;
      })(),
    ).rejects.toMatchObject({ code: 'TAR_TRUNCATED' });
    const big = handHeader();
    big.set(te.encode('77777777777\0'), 124);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : big[i]!;
    big.set(te.encode(`${sum.toString(8).padStart(6, '0')}\0 `), 148);
    const t2 = new TarReader(feed(big));
    const e = await t2.next();
    expect(e?.size).toBe(0o77777777777);
    await expect(t2.next()).rejects.toMatchObject({ code: 'TAR_TRUNCATED' });
  });

  it('an empty stream is an empty archive', async () => {
    const tr = new TarReader(feed(new Uint8Array()));
    expect(await tr.next()).toBeUndefined();
    expect(tr.end).toMatchObject({ length: 0 });
  });
});

describe('CRC-64/ISO (Go hash/crc64 with crc64.ISO)', () => {
  it('check value of "123456789" is 0xb90956c775a41001', () => {
    expect(Buffer.from(crc64(te.encode('123456789'))).toString('hex')).toBe('b90956c775a41001');
  });
  it('empty input is 0, and chunking does not matter', () => {
    expect(Buffer.from(crc64(new Uint8Array())).toString('hex')).toBe('0000000000000000');
    const data = new Uint8Array(1000).map((_, i) => (i * 7919) & 0xff);
    const whole = Buffer.from(crc64(data)).toString('hex');
    for (const cut of [1, 7, 8, 9, 500]) {
      const c = new Crc64().update(data.subarray(0, cut)).update(data.subarray(cut));
      expect(Buffer.from(c.digest()).toString('hex')).toBe(whole);
    }
  });
});

describe('tar-split entries', () => {
  it('encode as Go json.Encoder does (HTML escaped, size and name omitted when empty, null payload)', () => {
    expect(encodeEntry({ type: 2, payload: te.encode('ab'), position: 0 })).toBe('{"type":2,"payload":"YWI=","position":0}\n');
    expect(encodeEntry({ type: 1, name: te.encode('a<b>&c\u2028'), size: 0, crc: null, position: 3 })).toBe(
      '{"type":1,"name":"a\\u003cb\\u003e\\u0026c\\u2028","payload":null,"position":3}\n',
    );
    expect(encodeEntry({ type: 1, name: new Uint8Array([0xff, 0x41]), size: 1, crc: new Uint8Array(8), position: 1 })).toBe(
      '{"type":1,"name_raw":"/0E=","size":1,"payload":"AAAAAAAAAAA=","position":1}\n',
    );
    expect(goJsonString('\b\f\u0001')).toBe('"\\u0008\\u000c\\u0001"');
  });

  it('decode what they encode; reject what is not an entry', () => {
    const e = decodeEntry('{"type":1,"name_raw":"/0E=","size":1,"payload":"AAAAAAAAAAA=","position":1}', 1);
    expect(e).toMatchObject({ type: 1, size: 1, position: 1 });
    expect(Array.from((e as { name: Uint8Array }).name)).toEqual([0xff, 0x41]);
    expect(() => decodeEntry('{"type":1,"size":-5,"payload":null}', 2)).toThrow(expect.objectContaining({ code: 'TARSPLIT_INVALID' }));
    expect(() => decodeEntry('{"type":9}', 3)).toThrow(expect.objectContaining({ code: 'TARSPLIT_INVALID' }));
    expect(() => decodeEntry('not json', 4)).toThrow(expect.objectContaining({ code: 'TARSPLIT_INVALID' }));
  });

  it('base64 round trips every length', () => {
    for (let n = 0; n < 20; n++) {
      const b = new Uint8Array(n).map((_, i) => i * 37);
      expect(base64(b)).toBe(Buffer.from(b).toString('base64'));
      expect(Array.from(unbase64(base64(b))!)).toEqual(Array.from(b));
    }
    expect(unbase64('abc')).toBeUndefined();
  });

  it('a duplicate path (after cleaning) is refused, as the packer does', () => {
    expect(cleanPath('./a//b/../c/')).toBe('a/c');
    const w = new TarSplitWriter(() => {});
    w.file(te.encode('./a/b'), 0, null);
    expect(() => w.file(te.encode('a/b/'), 0, null)).toThrow(expect.objectContaining({ code: 'TAR_DUPLICATE_PATH' }));
  });
});

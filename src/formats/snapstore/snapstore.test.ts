import { describe, expect, it } from 'vitest';
import { DatarootError } from '../errors.js';
import { toHex } from '../bytes.js';
import { decodeIndex, encodeIndex, indexEntry, searchIndex } from './index.js';
import {
  contentKind,
  decodeEntry,
  decodeHeader,
  decodeManifestFile,
  encodeManifestFile,
  entryPathBytes,
  entryPathProblem,
  headSample,
  identityLine,
  kindOfSample,
  volatileLine,
  type ManifestEntry,
} from './manifest.js';
import { decodeChunk, decodeRecordHead, encodeRecord, METHOD_RAW, METHOD_ZSTD, METHOD_ZSTD_SLICE, RECORD_HEAD } from './pack.js';
import { decodeRegistry, decodeStoreMarker, encodeRegistry, encodeStoreMarker, type Registry } from './registry.js';

const fill = (b: number, n = 32): Uint8Array => new Uint8Array(n).fill(b);
const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return e instanceof DatarootError ? e.code : `not coded: ${(e as Error).message}`;
  }
  return 'no error';
};

describe('pack records (hand-checked bytes)', () => {
  it('a record of one raw and one slice chunk', () => {
    const rec = encodeRecord(fill(0x11), 5, [
      { method: METHOD_RAW, offset: 8, stored: 5, raw: 5 },
      { method: METHOD_ZSTD_SLICE, offset: 0x1000, stored: 0x20, raw: 0x01020a, start: 0x010203, len: 7 },
    ]);
    expect(toHex(rec)).toBe(
      [
        '11'.repeat(32),
        '0500000000000000', // content size
        '02000000', // chunk count
        '00000000', // reserved
        // chunk 0: offset, stored, raw, method 0, 7 reserved
        '0800000000000000 0500000000000000 0500000000000000 00 00000000000000',
        // chunk 1: offset, stored, raw, method 3, start u24 (little-endian), length u32
        '0010000000000000 2000000000000000 0a02010000000000 03 030201 07000000',
      ]
        .join('')
        .replace(/ /g, ''),
    );
    const head = decodeRecordHead(rec.subarray(0, RECORD_HEAD));
    expect(head).toEqual({ sha256: '11'.repeat(32), size: 5, chunks: 2 });
    expect(decodeChunk(rec.subarray(RECORD_HEAD), 1)).toEqual({
      method: METHOD_ZSTD_SLICE,
      offset: 0x1000,
      stored: 0x20,
      raw: 0x01020a,
      start: 0x010203,
      len: 7,
    });
  });

  it.each([
    ['an unknown method', (t: Uint8Array) => (t[24] = 9)],
    ['a raw chunk whose stored size differs', (t: Uint8Array) => (t[8] = 6)],
    ['a chunk larger than 4 MiB', (t: Uint8Array) => (t[16 + 3] = 1)],
    ['a chunk inside the magic', (t: Uint8Array) => (t[0] = 2)],
  ])('refuses %s as SNAPSHOT_OBJECT_CORRUPT', (_, damage) => {
    const rec = encodeRecord(fill(1), 5, [{ method: METHOD_RAW, offset: 8, stored: 5, raw: 5 }]);
    const table = rec.subarray(RECORD_HEAD);
    damage(table);
    expect(code(() => decodeChunk(table, 0))).toBe('SNAPSHOT_OBJECT_CORRUPT');
  });

  it('a slice outside its frame and a record naming too many chunks are corrupt; a short head is premature EOF', () => {
    const rec = encodeRecord(fill(1), 5, [{ method: METHOD_ZSTD_SLICE, offset: 8, stored: 10, raw: 10, start: 8, len: 3 }]);
    expect(code(() => decodeChunk(rec.subarray(RECORD_HEAD), 0))).toBe('SNAPSHOT_OBJECT_CORRUPT');
    const head = rec.slice(0, RECORD_HEAD);
    head.set([0xff, 0xff, 0xff, 0x7f], 40);
    expect(code(() => decodeRecordHead(head))).toBe('SNAPSHOT_OBJECT_CORRUPT');
    expect(() => decodeRecordHead(rec.subarray(0, 47))).toThrow(RangeError);
    expect(decodeChunk(encodeRecord(fill(1), 9, [{ method: METHOD_ZSTD, offset: 4096, stored: 4, raw: 9 }]).subarray(RECORD_HEAD), 0).method).toBe(METHOD_ZSTD);
  });
});

describe('pack index (hand-checked bytes)', () => {
  it('magic, count, entries sorted by sha256', () => {
    const b = encodeIndex([
      { sha256: fill(0xbb), offset: 0x2000, size: 1 },
      { sha256: fill(0xaa), offset: 0x10, size: 3 },
    ]);
    expect(toHex(b)).toBe(
      [
        '4452494458310a00',
        '0200000000000000',
        'aa'.repeat(32),
        '1000000000000000',
        '0300000000000000',
        'bb'.repeat(32),
        '0020000000000000',
        '0100000000000000',
      ].join(''),
    );
    const ix = decodeIndex(b);
    expect(ix.count).toBe(2);
    expect(indexEntry(ix, 1)).toEqual({ sha256: 'bb'.repeat(32), offset: 0x2000, size: 1 });
    expect(searchIndex(ix, fill(0xbb))).toBe(1);
    expect(searchIndex(ix, fill(0xcc))).toBe(-1);
  });

  it('a wrong magic, a count that does not fill the file, and a digest listed twice are refused', () => {
    const b = encodeIndex([{ sha256: fill(1), offset: 8, size: 1 }]);
    expect(code(() => decodeIndex(b.subarray(0, b.length - 1)))).toBe('SNAPSHOT_STORE_CORRUPT');
    const bad = b.slice();
    bad[0] = 0;
    expect(code(() => decodeIndex(bad))).toBe('SNAPSHOT_STORE_CORRUPT');
    const huge = b.slice();
    huge.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 8);
    expect(code(() => decodeIndex(huge))).toBe('SNAPSHOT_STORE_CORRUPT');
    expect(() =>
      encodeIndex([
        { sha256: fill(1), offset: 8, size: 1 },
        { sha256: fill(1), offset: 9, size: 1 },
      ]),
    ).toThrow(RangeError);
  });
});

describe('manifest lines and container (hand-checked)', () => {
  const e: ManifestEntry = {
    path: 'a/b',
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 1,
    size: 3,
    mtime: '1700000000000000001',
    atime: '2',
    ctime: '3',
    ino: '42',
    dev: '2049',
    nlink: 1,
    sha256: 'ab'.repeat(32),
    stored: true,
    kind: 'text',
    xattrs: { 'user.z': 'eg==', 'user.a': 'YQ==' },
  };

  it('an identity line and a volatile line', () => {
    expect(identityLine(e)).toBe(`["a/b","file",420,0,1,3,"${'ab'.repeat(32)}",1,null,null,null,{"user.a":"YQ==","user.z":"eg=="},null,null,"text"]`);
    expect(volatileLine(e)).toBe('["1700000000000000001","2","3","42","2049",1]');
    expect(decodeEntry(identityLine(e), volatileLine(e))).toEqual({ ...e, xattrs: { 'user.a': 'YQ==', 'user.z': 'eg==' } });
  });

  it.each([
    ['not JSON', '["a"', '["1","2","3","4","5",1]'],
    ['a mode past 07777', '["a","file",65536,0,0,0,null,null,null,null,null,null,null,null,null]', '["1","2","3","4","5",1]'],
    ['an unknown type', '["a","door",420,0,0,0,null,null,null,null,null,null,null,null,null]', '["1","2","3","4","5",1]'],
    ['a path that is not a string', '[1,"file",420,0,0,0,null,null,null,null,null,null,null,null,null]', '["1","2","3","4","5",1]'],
    ['a sha256 that is not 64 hex digits', '["a","file",420,0,0,0,"../x",1,null,null,null,null,null,null,null]', '["1","2","3","4","5",1]'],
    ['times that are not decimal', '["a","file",420,0,0,0,null,null,null,null,null,null,null,null,null]', '["1e3","2","3","4","5",1]'],
  ])('refuses a line with %s as SNAPSHOT_MANIFEST_CORRUPT', (_, id, vol) => {
    expect(code(() => decodeEntry(id, vol))).toBe('SNAPSHOT_MANIFEST_CORRUPT');
  });

  it('the container: "DRM2", three u64 sizes, two frames', () => {
    const b = encodeManifestFile(1, 2, Uint8Array.of(0xf1), Uint8Array.of(0xf2, 0xf3));
    expect(toHex(b)).toBe('44524d32' + '0100000000000000' + '0200000000000000' + '0100000000000000' + 'f1' + 'f2f3');
    expect(decodeManifestFile(b)).toEqual({
      kind: 'zstd',
      identitySize: 1,
      volatileSize: 2,
      identityFrame: Uint8Array.of(0xf1),
      volatileFrame: Uint8Array.of(0xf2, 0xf3),
    });
    expect(decodeManifestFile(Uint8Array.of(0x1f, 0x8b, 8))).toMatchObject({ kind: 'gzip' });
    expect(code(() => decodeManifestFile(b.subarray(0, 20)))).toBe('SNAPSHOT_MANIFEST_CORRUPT');
    const big = b.slice();
    big[11] = 0xff; // an identity part of 2^63 bytes
    expect(code(() => decodeManifestFile(big))).toBe('SNAPSHOT_MANIFEST_CORRUPT');
    expect(code(() => decodeHeader('{"format":"dataroot-snapshot","version":3,"count":0,"identityBytes":0}'))).toBe('SNAPSHOT_MANIFEST_CORRUPT');
  });

  it.each([
    ['', undefined],
    ['a/b', undefined],
    ['..x/y..', undefined],
    ['/etc/passwd', 'is absolute'],
    ['../x', 'has a ".." component'],
    ['a/../../x', 'has a ".." component'],
    ['a/./b', 'has a "." component'],
    ['a//b', 'has an empty component'],
    ['a/', 'has an empty component'],
    ['a\0b', 'holds a NUL byte'],
  ])('entry path %j: %s', (p, problem) => {
    expect(entryPathProblem(new TextEncoder().encode(p))).toBe(problem);
  });

  it('pathBase64 is what is checked when present', () => {
    const bytes = entryPathBytes({ path: 'innocent', pathBase64: btoa('../x') });
    expect(entryPathProblem(bytes)).toBe('has a ".." component');
  });
});

describe('content kinds', () => {
  it.each([
    [[], 'empty'],
    [[0x1f, 0x8b, 8], 'gzip'],
    [[0x20, 0x0a, 0x7b], 'json'],
    [[0x5b], 'json'],
    [[0x41, 0x08], 'binary'],
    [[0x41, 0x09, 0x0a], 'text'],
  ])('%j is %s', (bytes, kind) => {
    expect(contentKind(Uint8Array.from(bytes))).toBe(kind);
  });

  it('BoltDB magic at 16 (both byte orders), and a control byte after 8 KiB is not looked at', () => {
    const b = new Uint8Array(20);
    b.set([0xed, 0xda, 0x0c, 0xed], 16);
    expect(contentKind(b)).toBe('bolt');
    const late = new Uint8Array(9000).fill(0x41);
    late[8500] = 0;
    expect(contentKind(late)).toBe('text');
    expect(kindOfSample(headSample(late))).toBe('text');
  });
});

describe('registry and marker (every path-shaped name checked)', () => {
  const snap = {
    name: 'one',
    created: 't',
    source: '/r',
    manifest: 'snapshots/one.manifest',
    manifestSha256: 'a'.repeat(64),
    entries: 1,
    logicalBytes: 0,
    newBytes: 0,
    storedBytes: 0,
    packs: ['mib3x-0a1b2c3d'],
    options: { exclude: [], metadataOnly: [], live: false },
  };
  const reg = (s: object): string => JSON.stringify({ format: 'dataroot-snapshot-store', version: 1, snapshots: [s] });

  it('round-trips, as hand-checked text', () => {
    const r: Registry = { format: 'dataroot-snapshot-store', version: 1, snapshots: [snap] };
    expect(encodeRegistry(r)).toBe(
      '{\n "format": "dataroot-snapshot-store",\n "version": 1,\n "snapshots": [\n  {\n   "name": "one",\n   "created": "t",\n   "source": "/r",\n   "manifest": "snapshots/one.manifest",\n' +
        `   "manifestSha256": "${'a'.repeat(64)}",\n   "entries": 1,\n   "logicalBytes": 0,\n   "newBytes": 0,\n   "storedBytes": 0,\n   "packs": [\n    "mib3x-0a1b2c3d"\n   ],\n` +
        '   "options": {\n    "exclude": [],\n    "metadataOnly": [],\n    "live": false\n   }\n  }\n ]\n}\n',
    );
    expect(decodeRegistry(encodeRegistry(r))).toEqual(r);
    expect(encodeStoreMarker({ format: 'dataroot-snapshot-store', version: 2, created: 'c' })).toBe(
      '{"format":"dataroot-snapshot-store","version":2,"created":"c"}\n',
    );
  });

  it.each([
    ['a manifest outside snapshots/', { ...snap, manifest: '../precious' }],
    ['an absolute manifest', { ...snap, manifest: '/etc/passwd' }],
    ['a manifest of another name shape', { ...snap, manifest: 'snapshots/../../x.manifest' }],
    ['a pack name with a slash', { ...snap, packs: ['../../x'] }],
    ['a pack name with dots', { ...snap, packs: ['..'] }],
    ['a name with a slash', { ...snap, name: 'a/b' }],
    ['a negative size', { ...snap, logicalBytes: -1 }],
    ['a sha256 that is not hex', { ...snap, manifestSha256: 'x' }],
  ])('refuses %s as SNAPSHOT_STORE_CORRUPT', (_, s) => {
    expect(code(() => decodeRegistry(reg(s)))).toBe('SNAPSHOT_STORE_CORRUPT');
  });

  it('a marker of another format or a version not read is SNAPSHOT_NOT_A_STORE', () => {
    expect(decodeStoreMarker('{"format":"dataroot-snapshot-store","version":1}').version).toBe(1);
    expect(code(() => decodeStoreMarker('{"format":"dataroot-snapshot-store","version":3}'))).toBe('SNAPSHOT_NOT_A_STORE');
    expect(code(() => decodeStoreMarker('{"format":"other","version":2}'))).toBe('SNAPSHOT_NOT_A_STORE');
    expect(code(() => decodeStoreMarker('nope'))).toBe('SNAPSHOT_NOT_A_STORE');
  });
});

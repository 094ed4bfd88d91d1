import { describe, expect, it } from 'vitest';
import { buildBolt, type BoltVisitor } from '../bolt/write.js';
import { BoltFile } from '../bolt/db.js';
import { BufferSource } from '../bolt/source.js';
import { EditVisitor } from '../bolt/edit.js';
import { PruneVisitor } from '../bolt/prune.js';
import { walkBolt } from '../bolt/walk.js';
import { MemorySink, BoltWriter } from '../bolt/write.js';
import { encodeUtf8, toHex } from '../bytes.js';
import { sha256Digest } from '../digest/digest.js';
import { encodeBinaryTime, encodeUvarint, encodeVarint, s } from './encode.js';
import { blobRecordEdits, dockerSchema2Manifest, goString, imageRecordEdits, manifestGcLabels } from './records.js';
import { decodeBinaryTime, formatBinaryTime, uvarintExact, varintExact } from './values.js';

describe('containerd value encoders', () => {
  it.each([
    [0, '00'],
    [1, '02'],
    [-1, '01'],
    [578, '8409'],
    [3, '06'],
    // as containerd 1.6 stored a 1999360-byte blob's size in meta.db (read from a ctr import)
    [1999360, '8088f401'],
  ])('varint %s is Go binary.PutVarint %s, and decodes back', (n, hex) => {
    expect(toHex(encodeVarint(n))).toBe(hex);
    expect(varintExact(encodeVarint(n))).toBe(BigInt(n));
  });

  it('uvarint: LEB128, 2^64-1 in 10 bytes, refuses negatives', () => {
    expect(toHex(encodeUvarint(300))).toBe('ac02');
    expect(encodeUvarint((1n << 64n) - 1n).length).toBe(10);
    expect(uvarintExact(encodeUvarint((1n << 64n) - 1n))).toBe((1n << 64n) - 1n);
    expect(() => encodeUvarint(-1)).toThrow(RangeError);
  });

  it('a UTC time is Go MarshalBinary v1 (hand-checked: 1970-01-01T00:00:01.5Z)', () => {
    // 62135596801 seconds since year 1 = 0x0000000E7791F701, 500000000 ns = 0x1DCD6500, offset -1.
    const b = encodeBinaryTime({ unix: 1n, nanos: 500_000_000 });
    expect(toHex(b)).toBe('010000000e7791f7011dcd6500ffff');
    expect(formatBinaryTime(decodeBinaryTime(b)!)).toBe('1970-01-01T00:00:01.5Z');
  });
});

describe('containerd records', () => {
  it('the synthesized manifest is byte for byte the one ctr import 1.6 made for the same archive (digest from a real import)', () => {
    const m = dockerSchema2Manifest({ digest: 'sha256:ad5bc30bdc4abcfd4b1b1b5c708e9bb073236a24643604a72fc563a0e70f4f81', size: 523 }, [
      {
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
        digest: 'sha256:aa5f5b11006850750062583c2e298de6091ce414941bde70dcfbc7f8e1947a89',
        size: 1999360,
      },
      {
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
        digest: 'sha256:bced9c19664d1c8eec1bbe07936911a7745fddb82b922114096138e114ea1490',
        size: 3584,
      },
    ]);
    expect(m.length).toBe(578);
    expect(sha256Digest(encodeUtf8(m))).toBe('sha256:2d39ca7f48afc419076c20c55b98cca18b19c5b9a5b7025da13e55ad4040e0c0');
  });

  it('goString escapes as encoding/json does', () => {
    expect(goString('a<b>&c')).toBe('"a\\u003cb\\u003e\\u0026c"');
  });

  it('gc labels of a manifest: config and l.<i>', () => {
    expect(manifestGcLabels('sha256:c', ['sha256:a', 'sha256:b'])).toEqual({
      'containerd.io/gc.ref.content.config': 'sha256:c',
      'containerd.io/gc.ref.content.l.0': 'sha256:a',
      'containerd.io/gc.ref.content.l.1': 'sha256:b',
    });
  });

  it('records applied to a file, an old record pruned and recreated: the tree read back', () => {
    const t = { unix: 1_700_000_000n, nanos: 5 };
    const old = buildBolt(
      {
        entries: [
          {
            key: s('v1'),
            bucket: {
              entries: [
                { key: s('version'), value: encodeVarint(3) },
                {
                  key: s('moby'),
                  bucket: {
                    entries: [
                      {
                        key: s('images'),
                        bucket: { entries: [{ key: s('docker.io/library/a:1'), bucket: { entries: [{ key: s('stale'), value: s('x') }] } }] },
                      },
                    ],
                  },
                },
              ],
            },
          },
        ],
      },
      { pageSize: 4096 },
    );
    const db = BoltFile.open(new BufferSource(old));
    const sink = new MemorySink();
    const w = new BoltWriter(sink, { pageSize: 4096 });
    const edits = [
      { op: 'bucket' as const, path: [s('v1'), s('moby')], key: s('content') },
      { op: 'bucket' as const, path: [s('v1'), s('moby'), s('content')], key: s('blob') },
      ...blobRecordEdits('moby', { digest: 'sha256:aa', size: 578, labels: { 'containerd.io/gc.ref.content.config': 'sha256:c' }, created: t, updated: t }),
      ...imageRecordEdits('moby', {
        name: 'docker.io/library/a:1',
        target: { digest: 'sha256:aa', mediaType: 'm', size: 578, annotations: {} },
        labels: {},
        created: t,
        updated: t,
      }),
    ];
    const ev = new EditVisitor(w, edits);
    const pv = new PruneVisitor(ev, [[s('v1'), s('moby'), s('images'), s('docker.io/library/a:1')]]);
    walkBolt(db, pv);
    ev.finish();
    w.finish();
    expect(pv.dropped).toBe(1);
    const seen: string[] = [];
    const stack: string[] = [];
    const v: BoltVisitor = {
      bucket: (k) => {
        stack.push(new TextDecoder().decode(k));
        seen.push(`${stack.join('/')}/`);
      },
      put: (k, val) => seen.push(`${[...stack, new TextDecoder().decode(k)].join('/')}=${toHex(val)}`),
      end: () => void stack.pop(),
    };
    walkBolt(BoltFile.open(new BufferSource(sink.bytes())), v);
    const tb = toHex(encodeBinaryTime(t));
    expect(seen).toEqual([
      'v1/',
      'v1/moby/',
      'v1/moby/content/',
      'v1/moby/content/blob/',
      'v1/moby/content/blob/sha256:aa/',
      `v1/moby/content/blob/sha256:aa/createdat=${tb}`,
      'v1/moby/content/blob/sha256:aa/labels/',
      `v1/moby/content/blob/sha256:aa/labels/containerd.io/gc.ref.content.config=${toHex(s('sha256:c'))}`,
      'v1/moby/content/blob/sha256:aa/size=8409',
      `v1/moby/content/blob/sha256:aa/updatedat=${tb}`,
      'v1/moby/images/',
      'v1/moby/images/docker.io/library/a:1/',
      `v1/moby/images/docker.io/library/a:1/createdat=${tb}`,
      'v1/moby/images/docker.io/library/a:1/target/',
      `v1/moby/images/docker.io/library/a:1/target/digest=${toHex(s('sha256:aa'))}`,
      `v1/moby/images/docker.io/library/a:1/target/mediatype=${toHex(s('m'))}`,
      'v1/moby/images/docker.io/library/a:1/target/size=8409',
      `v1/moby/images/docker.io/library/a:1/updatedat=${tb}`,
      'v1/version=06',
    ]);
  });
});

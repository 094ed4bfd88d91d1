import { describe, expect, it } from 'vitest';
import { DatarootError } from '../errors.js';
import { fromHex } from '../bytes.js';
import { decodeAny, decodeAnyValue } from './any.js';
import { isBlobDigest, isIdentifier, isSnapshotId } from './identifiers.js';
import { formatPlatform, matchesHost, normalizePlatform } from './oci.js';
import { goHumanDuration, goHumanSize, progressBytes } from './units.js';
import { decodeBinaryTime, formatBinaryTime, uvarintAt, uvarintExact, varintExact } from './values.js';
import { readFields } from './wire.js';

const hex = (s: string): Uint8Array => fromHex(s)!;

describe('containerd values (hand-checked bytes from a containerd 1.6 meta.db)', () => {
  it('a blob size: bc be 80 01 is the zig-zag varint 1052574', () => {
    // 0x3c + 0x3e<<7 + 0<<14 + 1<<21 = 2105148; zig-zag: 2105148 / 2.
    expect(varintExact(hex('bcbe8001'))).toBe(1052574n);
    expect(varintExact(hex('06'))).toBe(3n);
    expect(varintExact(hex('01'))).toBe(-1n);
    expect(uvarintExact(hex('05'))).toBe(5n);
  });

  it('a varint must use every byte, end inside 10 bytes and fit 64 bits', () => {
    expect(uvarintExact(hex('0500'))).toBeUndefined();
    expect(uvarintExact(hex('80'))).toBeUndefined();
    expect(uvarintExact(hex('ffffffffffffffffff7f'))).toBeUndefined();
    expect(uvarintExact(hex('ffffffffffffffffff01'))).toBe(2n ** 64n - 1n);
    expect(uvarintAt(hex('010002'), 0)).toEqual({ value: 1n, next: 1 });
  });

  it('a Go MarshalBinary time: 63932105314 s after year 1, 267328329 ns, UTC', () => {
    const t = decodeBinaryTime(hex('010000000ee2a682620fef1b49ffff'))!;
    expect(t.nanos).toBe(267328329);
    expect(t.offsetMin).toBeUndefined();
    expect(formatBinaryTime(t)).toBe('2026-12-05T22:08:34.267328329Z');
    // Zone +02:00 and a whole second.
    const z = hex('010000000ee2a6826200000000' + '0078');
    expect(formatBinaryTime(decodeBinaryTime(z)!)).toBe('2026-12-06T00:08:34+02:00');
    expect(decodeBinaryTime(hex('0100'))).toBeUndefined();
    expect(decodeBinaryTime(hex('010000000ee2a682623b9aca00ffff'))).toBeUndefined();
  });
});

describe('protobuf wire and Any', () => {
  // A container's runtime options as containerd 1.6 stored them (ctr run --runc-root /tmp/cdx2/cd/runc).
  const options = hex('0a1a636f6e7461696e6572642e72756e632e76312e4f7074696f6e7312133a112f746d702f636478322f63642f72756e63');

  it('the runc options Any: type URL, then field 7 (Root) of containerd.runc.v1.Options', () => {
    const a = decodeAny(options);
    expect(a.typeUrl).toBe('containerd.runc.v1.Options');
    // What ctr containers info printed as the value: base64 OhEvdG1wL2NkeDIvY2QvcnVuYw==.
    expect(Buffer.from(a.value).toString('base64')).toBe('OhEvdG1wL2NkeDIvY2QvcnVuYw==');
    expect(decodeAnyValue(a)).toEqual({ decoded: 'proto', value: { Root: '/tmp/cdx2/cd/runc' } });
  });

  it('a runtime-spec Any holds JSON', () => {
    const json = new TextEncoder().encode('{"ociVersion":"1.0.2-dev"}');
    const url = new TextEncoder().encode('types.containerd.io/opencontainers/runtime-spec/1/Spec');
    const b = new Uint8Array([0x0a, url.length, ...url, 0x12, json.length, ...json]);
    expect(decodeAnyValue(decodeAny(b))).toEqual({ decoded: 'json', value: { ociVersion: '1.0.2-dev' } });
  });

  it.each([
    ['a length past the end', '0a05616263', 'PROTO_TRUNCATED'],
    ['a varint cut short', '08ff', 'PROTO_TRUNCATED'],
    ['a fixed64 cut short', '09010203', 'PROTO_TRUNCATED'],
    ['a group (wire type 3)', '0b', 'PROTO_INVALID'],
    ['field number 0', '00', 'PROTO_INVALID'],
  ])('%s is %s', (_n, bytes, code) => {
    let err: unknown;
    try {
      readFields(hex(bytes));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatarootError);
    expect((err as DatarootError).code).toBe(code);
  });

  it('an Any without a type URL is refused', () => {
    expect(() => decodeAny(hex('1200'))).toThrow(DatarootError);
  });

  it('random bytes end in a value or a coded error, never anything else', () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from({ length: rnd() % 40 }, rnd);
      try {
        decodeAnyValue(decodeAny(b));
      } catch (e) {
        expect(e).toBeInstanceOf(DatarootError);
      }
    }
  });
});

describe('names, platforms and ctr formats', () => {
  it('identifiers, digests and snapshot ids are checked before they become paths', () => {
    expect(isIdentifier('k8s.io')).toBe(true);
    expect(isIdentifier('moby')).toBe(true);
    for (const bad of ['', '../x', 'a/b', 'a..b', '-a', 'a'.repeat(77)]) expect(isIdentifier(bad)).toBe(false);
    expect(isBlobDigest(`sha256:${'a'.repeat(64)}`)).toBe(true);
    for (const bad of [`sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `sha256:../${'a'.repeat(61)}`]) expect(isBlobDigest(bad)).toBe(false);
    expect(isSnapshotId('12')).toBe(true);
    for (const bad of ['0', '01', '1a', '../1', '99999999999999999']) expect(isSnapshotId(bad)).toBe(false);
  });

  it('platforms: normalized and matched as platforms.Default() on amd64', () => {
    expect(formatPlatform(normalizePlatform({ os: 'linux', architecture: 'x86_64' }))).toBe('linux/amd64');
    const host = { os: 'linux', architecture: 'amd64' };
    expect(matchesHost({ os: 'linux', architecture: 'amd64' }, host)).toBe(true);
    expect(matchesHost({ os: 'linux', architecture: 'arm64' }, host)).toBe(false);
    expect(matchesHost({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm64' })).toBe(true);
  });

  it('sizes and ages as ctr prints them (values from ctr content ls, images ls and snapshots usage)', () => {
    expect(goHumanSize(1999360)).toBe('1.999MB');
    expect(goHumanSize(2560)).toBe('2.56kB');
    expect(goHumanSize(530)).toBe('530B');
    expect(goHumanSize(1052574)).toBe('1.053MB');
    expect(progressBytes(53248)).toBe('52.0 KiB');
    expect(progressBytes(12288)).toBe('12.0 KiB');
    expect(progressBytes(2039808)).toBe('1.9 MiB');
    expect(goHumanDuration(32)).toBe('32 seconds');
    expect(goHumanDuration(0.2)).toBe('Less than a second');
  });
});

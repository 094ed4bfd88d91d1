import { describe, expect, it } from 'vitest';
import { sha256Digest, chainIds } from './digest.js';
import { goRFC3339Nano, parseGoTime } from '../docker/gotime.js';
import { parseReference } from '../docker/reference.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('sha256 (pure TS)', () => {
  it.each([
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
  ])('FIPS 180-2 vector %j', (s, hex) => {
    expect(sha256Digest(enc(s))).toBe(`sha256:${hex}`);
  });

  it('a million "a" (multi-block)', () => {
    expect(sha256Digest(enc('a'.repeat(1_000_000)))).toBe('sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
  });
});

describe('chainIds', () => {
  it('chain[0] is the first diffID; later ones hash "parent diff"', () => {
    const d1 = `sha256:${'a'.repeat(64)}`;
    const d2 = `sha256:${'b'.repeat(64)}`;
    const [c1, c2] = chainIds([d1, d2]);
    expect(c1).toBe(d1);
    expect(c2).toBe(sha256Digest(enc(`${d1} ${d2}`)));
  });
});

describe('Go time formatting', () => {
  it.each([
    ['2026-11-25T18:12:26.123456789Z', '2026-11-25T18:12:26.123456789Z'],
    ['2026-11-25T18:12:26.120000000Z', '2026-11-25T18:12:26.12Z'],
    ['2026-11-25T18:12:26Z', '2026-11-25T18:12:26Z'],
    ['2026-11-25T18:12:26.5+01:00', '2026-11-25T18:12:26.5+01:00'],
  ])('%s', (i, o) => expect(goRFC3339Nano(i)).toBe(o));
  it('unix seconds honour the zone', () => {
    expect(parseGoTime('1970-01-01T01:00:00+01:00')?.unix).toBe(0);
  });
});

describe('references', () => {
  it.each([
    ['foo:1', 'docker.io/library/foo:1'],
    ['user/app:v', 'docker.io/user/app:v'],
    ['localhost/buildtest:v1', 'localhost/buildtest:v1'],
    ['registry:5000/x/y:t', 'registry:5000/x/y:t'],
  ])('%s normalizes to %s', (f, n) => expect(parseReference(f)?.normalized).toBe(n));
  it('a digest reference', () => {
    const r = parseReference(`foo@sha256:${'c'.repeat(64)}`);
    expect(r?.digest).toBe(`sha256:${'c'.repeat(64)}`);
    expect(r?.tag).toBeUndefined();
  });
});

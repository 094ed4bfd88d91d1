import { describe, expect, it } from 'vitest';
import {
  civilFromDays,
  compareInstant,
  daysFromCivil,
  dockerTimestamp,
  formatRFC3339Nano,
  formatRFC3339NanoFixed,
  instantFromNanos,
  parseGoDuration,
  parseRFC3339,
  parseUnixTimestamp,
  queryEscape,
  ZERO_INSTANT,
} from './timestamp.js';

describe('instants as Go prints them', () => {
  // Hand-checked: 1700000000 is 2023-11-14T22:13:20Z (date -u -d @1700000000).
  it('RFC3339NanoFixed pads the fraction to nine digits, Z for UTC', () => {
    expect(formatRFC3339NanoFixed({ sec: 1700000000, nsec: 5000, off: 0 })).toBe('2023-11-14T22:13:20.000005000Z');
    expect(formatRFC3339NanoFixed({ sec: 1700000000, nsec: 0, off: 2 * 3600 })).toBe('2023-11-15T00:13:20.000000000+02:00');
    expect(formatRFC3339NanoFixed({ sec: 1700000000, nsec: 0, off: -(5 * 3600 + 30 * 60) })).toBe('2023-11-14T16:43:20.000000000-05:30');
    expect(formatRFC3339NanoFixed(ZERO_INSTANT)).toBe('0001-01-01T00:00:00.000000000Z');
  });

  it('RFC3339Nano drops trailing zeros of the fraction', () => {
    expect(formatRFC3339Nano({ sec: 1700000000, nsec: 120000000, off: 0 })).toBe('2023-11-14T22:13:20.12Z');
    expect(formatRFC3339Nano({ sec: 1700000000, nsec: 0, off: 0 })).toBe('2023-11-14T22:13:20Z');
  });

  it('parses RFC 3339 with any fraction length and zone, and refuses out-of-range fields', () => {
    expect(parseRFC3339('2023-11-14T22:13:20.000005Z')).toEqual({ sec: 1700000000, nsec: 5000, off: 0 });
    expect(parseRFC3339('2023-11-15T00:13:20.1234567891+02:00')).toEqual({ sec: 1700000000, nsec: 123456789, off: 7200 });
    expect(parseRFC3339('2023-02-29T00:00:00Z')).toBeUndefined();
    expect(parseRFC3339('2024-02-29T00:00:00Z')).toBeDefined();
    expect(parseRFC3339('2023-11-14T24:00:00Z')).toBeUndefined();
    expect(parseRFC3339('2023-11-14 22:13:20Z')).toBeUndefined();
  });

  it('keeps the zone it was written in when printed again', () => {
    const s = '2023-11-15T00:13:20.5+02:00';
    expect(formatRFC3339Nano(parseRFC3339(s)!)).toBe(s);
  });

  it('converts nanoseconds, negative ones too (time.Unix(0, n))', () => {
    expect(instantFromNanos(1700000000123456789n)).toEqual({ sec: 1700000000, nsec: 123456789, off: 0 });
    expect(instantFromNanos(-1n)).toEqual({ sec: -1, nsec: 999999999, off: 0 });
    expect(compareInstant(instantFromNanos(-1n), instantFromNanos(0n))).toBe(-1);
  });

  it('days from the civil date and back agree over 800 years', () => {
    for (let z = -200000; z <= 100000; z += 997) {
      const { y, m, d } = civilFromDays(z);
      expect(daysFromCivil(y, m, d)).toBe(z);
    }
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(daysFromCivil(2000, 3, 1)).toBe(11017);
  });
});

describe('Go durations (time.ParseDuration)', () => {
  it.each([
    ['10m', 600_000_000_000n],
    ['1h30m', 5_400_000_000_000n],
    ['1.5h', 5_400_000_000_000n],
    ['-5s', -5_000_000_000n],
    ['300ms', 300_000_000n],
    ['2us', 2000n],
    ['0', 0n],
  ])('%s', (s, ns) => {
    expect(parseGoDuration(s)).toBe(ns);
  });
  it.each(['', '10', 'h', '1d', '1h 2m', '.h'])('refuses %j', (s) => {
    expect(parseGoDuration(s)).toBeUndefined();
  });
});

describe('docker logs --since/--until values (GetTimestamp, then parseTimestamp)', () => {
  const now = Date.UTC(2024, 0, 2, 3, 4, 5, 600);
  it('a duration is now minus it, in whole seconds', () => {
    expect(dockerTimestamp('10m', now, 0)).toEqual({ ok: true, sec: Math.floor(now / 1000) - 600, nsec: 0 });
  });
  it('RFC 3339 with a zone keeps its nanoseconds', () => {
    expect(dockerTimestamp('2023-11-14T22:13:20.000005Z', now, 3600)).toEqual({ ok: true, sec: 1700000000, nsec: 5000 });
    expect(dockerTimestamp('2023-11-15T00:13:20+02:00', now, 0)).toEqual({ ok: true, sec: 1700000000, nsec: 0 });
  });
  it('without a zone: the local zone (its offset now)', () => {
    expect(dockerTimestamp('2023-11-14T23:13:20', now, 3600)).toEqual({ ok: true, sec: 1700000000, nsec: 0 });
    expect(dockerTimestamp('2023-11-14T23:13', now, 3600)).toEqual({ ok: true, sec: 1700000000 - 20, nsec: 0 });
    expect(dockerTimestamp('2023-11-14T23', now, 3600)).toEqual({ ok: true, sec: 1700000000 - 13 * 60 - 20, nsec: 0 });
    expect(dockerTimestamp('2023-11-14', now, 0)).toEqual({ ok: true, sec: 1699920000, nsec: 0 });
  });
  it('a date with a zone', () => {
    expect(dockerTimestamp('2023-11-14Z', now, 3600)).toEqual({ ok: true, sec: 1699920000, nsec: 0 });
  });
  it('Unix seconds pass through, the fraction scaled by its written length', () => {
    expect(dockerTimestamp('1700000000', now, 0)).toEqual({ ok: true, sec: 1700000000, nsec: 0 });
    expect(dockerTimestamp('1700000000.5', now, 0)).toEqual({ ok: true, sec: 1700000000, nsec: 500000000 });
    expect(parseUnixTimestamp('1700000000.000000001')).toEqual({ ok: true, sec: 1700000000, nsec: 1 });
  });
  it('refuses what does not parse', () => {
    expect(dockerTimestamp('2023-13-01', now, 0).ok).toBe(false);
    expect(dockerTimestamp('yesterday', now, 0).ok).toBe(false);
  });
});

describe('url.QueryEscape (docker logs --details)', () => {
  it('escapes as Go does: space as +, reserved and non-ASCII as %XX', () => {
    const enc = new TextEncoder();
    expect(queryEscape(enc.encode('a b&c=d/é~_.-'))).toBe('a+b%26c%3Dd%2F%C3%A9~_.-');
  });
});

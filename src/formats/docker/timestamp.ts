/**
 * Instants as Docker's log machinery handles them: parsed from RFC 3339 (json-file's `time`),
 * from nanoseconds since the epoch (the local driver's `time_nano`), and from what `docker logs
 * --since/--until` accept (Go durations, RFC 3339 with or without zone, dates, Unix timestamps);
 * printed as Go's `RFC3339NanoFixed` and `RFC3339Nano`. Calendar arithmetic is done on integers
 * (days from the civil date), so any year Go can hold prints as Go prints it.
 */

export interface Instant {
  /** Seconds since the Unix epoch (floor). */
  sec: number;
  /** Nanoseconds within the second, 0 ≤ nsec < 1e9. */
  nsec: number;
  /** The zone offset the time was written in, in seconds east of UTC (for printing as Go would). */
  off: number;
}

/** Go's zero time.Time (0001-01-01T00:00:00Z). */
export const ZERO_INSTANT: Instant = { sec: -62135596800, nsec: 0, off: 0 };

export function isZeroInstant(t: Instant): boolean {
  return t.sec === ZERO_INSTANT.sec && t.nsec === 0;
}

export function compareInstant(a: Instant, b: Instant): number {
  return a.sec !== b.sec ? (a.sec < b.sec ? -1 : 1) : a.nsec !== b.nsec ? (a.nsec < b.nsec ? -1 : 1) : 0;
}

/** Nanoseconds since the epoch as an Instant in UTC (Go's time.Unix(0, n)). */
export function instantFromNanos(n: bigint): Instant {
  let sec = n / 1_000_000_000n;
  let nsec = n % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec), off: 0 };
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Days since 1970-01-01 → the proleptic Gregorian date (Howard Hinnant's civil_from_days). */
export function civilFromDays(z0: number): { y: number; m: number; d: number } {
  const z = z0 + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

function daysIn(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [31, 0, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;
}

/** Seconds since the epoch of a wall-clock time at a zone offset (seconds east), or undefined when a field is out of range. */
export function unixOf(y: number, mo: number, d: number, h: number, mi: number, s: number, off: number): number | undefined {
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 59) return undefined;
  return daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off;
}

const pad = (n: number, w: number): string => {
  const s = String(Math.abs(n)).padStart(w, '0');
  return n < 0 ? `-${s}` : s;
};

function wall(t: Instant): string {
  const local = t.sec + t.off;
  const days = Math.floor(local / 86400);
  const rem = local - days * 86400;
  const { y, m, d } = civilFromDays(days);
  return `${pad(y, 4)}-${pad(m, 2)}-${pad(d, 2)}T${pad(Math.floor(rem / 3600), 2)}:${pad(Math.floor((rem % 3600) / 60), 2)}:${pad(rem % 60, 2)}`;
}

function zone(off: number): string {
  if (off === 0) return 'Z';
  const a = Math.abs(off);
  return `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 3600), 2)}:${pad(Math.floor((a % 3600) / 60), 2)}`;
}

/** Go's `2006-01-02T15:04:05.000000000Z07:00` (jsonmessage.RFC3339NanoFixed): what `docker logs -t` prints. */
export function formatRFC3339NanoFixed(t: Instant): string {
  return `${wall(t)}.${pad(t.nsec, 9)}${zone(t.off)}`;
}

/** Go's time.RFC3339Nano: the fraction without trailing zeros (none when zero). */
export function formatRFC3339Nano(t: Instant): string {
  const frac = t.nsec === 0 ? '' : `.${pad(t.nsec, 9).replace(/0+$/, '')}`;
  return `${wall(t)}${frac}${zone(t.off)}`;
}

const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})$/;

/** Go's time.Parse(time.RFC3339, s): a fraction of any length is accepted after the seconds. */
export function parseRFC3339(s: string): Instant | undefined {
  const m = RFC3339_RE.exec(s);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, se, frac, z] = m;
  let off = 0;
  if (z !== 'Z') {
    const oh = Number(z!.slice(1, 3));
    const om = Number(z!.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    off = (z!.startsWith('-') ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const sec = unixOf(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(se), off);
  if (sec === undefined) return undefined;
  const nsec = frac === undefined ? 0 : Number(frac.slice(0, 9).padEnd(9, '0'));
  return { sec, nsec, off };
}

const UNITS: Record<string, bigint> = { ns: 1n, us: 1000n, µs: 1000n, μs: 1000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/** Go's time.ParseDuration, in nanoseconds (e.g. `1h30m`, `-1.5h`, `300ms`); undefined when it does not parse. */
export function parseGoDuration(s: string): bigint | undefined {
  let rest = s;
  let neg = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    neg = rest[0] === '-';
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') return undefined;
  let total = 0n;
  while (rest !== '') {
    const m = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/.exec(rest);
    if (m === null || (m[1] === '' && (m[2] === undefined || m[2] === ''))) return undefined;
    const unit = UNITS[m[3]!]!;
    const whole = BigInt(m[1] === '' ? '0' : m[1]!);
    let v = whole * unit;
    if (m[2] !== undefined && m[2] !== '') {
      // Go keeps the fraction's digits while they fit and scales them by the unit.
      const digits = m[2].slice(0, 18);
      v += (BigInt(digits) * unit) / 10n ** BigInt(digits.length);
    }
    total += v;
    if (total > 9_223_372_036_854_775_807n) return undefined;
    rest = rest.slice(m[0].length);
  }
  return neg ? -total : total;
}

export type TimestampResult = { ok: true; sec: number; nsec: number } | { ok: false; error: string };

/** Server side (api/types/time.parseTimestamp): `seconds[.fraction]`, the fraction scaled to nanoseconds. */
export function parseUnixTimestamp(value: string): TimestampResult {
  const dot = value.indexOf('.');
  const a = dot < 0 ? value : value.slice(0, dot);
  if (!/^[+-]?\d{1,19}$/.test(a)) return { ok: false, error: `invalid timestamp ${JSON.stringify(value)}` };
  const sec = Number(a);
  if (dot < 0) return { ok: true, sec, nsec: 0 };
  const b = value.slice(dot + 1);
  if (!/^[+-]?\d{1,19}$/.test(b)) return { ok: false, error: `invalid timestamp ${JSON.stringify(value)}` };
  const n = Number(b);
  // Go scales by the fraction's length as written (a sign counts), in float64.
  let nsec = Math.trunc(n * 10 ** (9 - b.length));
  // time.Unix normalises nanoseconds outside [0, 1e9).
  let s = sec + Math.floor(nsec / 1e9);
  nsec -= Math.floor(nsec / 1e9) * 1e9;
  if (nsec < 0) {
    nsec += 1e9;
    s -= 1;
  }
  return { ok: true, sec: s, nsec };
}

/**
 * What `docker logs --since/--until VALUE` means: the CLI's GetTimestamp (a Go duration before
 * `now`; RFC 3339 with a zone; a date or date-time without one, in the local zone whose offset
 * now is `localOffset` seconds east; else a Unix timestamp), then the daemon's parseTimestamp.
 */
export function dockerTimestamp(value: string, nowMs: number, localOffset: number): TimestampResult {
  const d = parseGoDuration(value);
  if (value !== '0' && d !== undefined) {
    const ns = BigInt(Math.floor(nowMs)) * 1_000_000n - d;
    const sec = ns >= 0n ? ns / 1_000_000_000n : -((-ns + 999_999_999n) / 1_000_000_000n);
    return { ok: true, sec: Number(sec), nsec: 0 };
  }
  const inLocation = !(/[zZ+]/.test(value) || value.split('-').length - 1 === 3);
  const off = inLocation ? localOffset : undefined;
  let parsed: Instant | undefined;
  const z = '(Z|[+-]\\d{2}:\\d{2})';
  const zoneOff = (zs: string): number | undefined => {
    if (zs === 'Z') return 0;
    const oh = Number(zs.slice(1, 3));
    const om = Number(zs.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    return (zs.startsWith('-') ? -1 : 1) * (oh * 3600 + om * 60);
  };
  const build = (m: RegExpExecArray | null, fields: number, hasZone: boolean, hasFrac: boolean): Instant | undefined => {
    if (m === null) return undefined;
    const n = (i: number): number => (i > fields || m[i] === undefined ? 0 : Number(m[i]));
    const zi = 1 + fields + (hasFrac ? 1 : 0);
    const o = hasZone ? zoneOff(m[zi]!) : off!;
    if (o === undefined) return undefined;
    const sec = unixOf(n(1), n(2), n(3), n(4), n(5), n(6), o);
    if (sec === undefined) return undefined;
    const frac = hasFrac ? (m[1 + fields] ?? '') : '';
    return { sec, nsec: frac === '' ? 0 : Number(frac.slice(0, 9).padEnd(9, '0')), off: o };
  };
  const date = '(\\d{4})-(\\d{2})-(\\d{2})';
  if (value.includes('.')) {
    parsed = inLocation
      ? build(new RegExp(`^${date}T(\\d{2}):(\\d{2}):(\\d{2})(?:\\.(\\d+))?$`).exec(value), 6, false, true)
      : build(new RegExp(`^${date}T(\\d{2}):(\\d{2}):(\\d{2})(?:\\.(\\d+))?${z}$`).exec(value), 6, true, true);
  } else if (value.includes('T')) {
    let colons = value.split(':').length - 1;
    if (!inLocation && !/[zZ]/.test(value) && colons > 0) colons--;
    const time = colons === 0 ? 'T(\\d{2})' : colons === 1 ? 'T(\\d{2}):(\\d{2})' : 'T(\\d{2}):(\\d{2}):(\\d{2})';
    const fields = 3 + Math.min(colons, 2) + 1;
    parsed = build(new RegExp(`^${date}${time}${inLocation ? '' : z}$`).exec(value), fields, !inLocation, false);
  } else {
    parsed = build(new RegExp(`^${date}${inLocation ? '' : z}$`).exec(value), 3, !inLocation, false);
  }
  if (parsed !== undefined) return { ok: true, sec: parsed.sec, nsec: parsed.nsec };
  if (value.includes('-')) return { ok: false, error: `cannot parse ${JSON.stringify(value)} as a time` };
  const u = parseUnixTimestamp(value);
  return u.ok ? u : { ok: false, error: `failed to parse value as time or duration: ${JSON.stringify(value)}` };
}

/** Go's url.QueryEscape of a UTF-8 string's bytes (what `docker logs --details` prints for attributes). */
export function queryEscape(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x5f || b === 0x2e || b === 0x7e)
      out += String.fromCharCode(b);
    else if (b === 0x20) out += '+';
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Go's time formatting as Docker prints it. Times in Docker's JSON are RFC 3339 with up to nine
 * fractional digits; Go's RFC3339Nano drops trailing zeros of the fraction.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

export interface GoTime {
  /** Seconds since the Unix epoch (floor), as Go's Unix(). */
  unix: number;
  /** Nanoseconds within the second. */
  nanos: number;
  /** The zone as written: `Z` or `+hh:mm`. */
  zone: string;
  /** Wall-clock fields as written (local to the zone). */
  wall: string;
}

export function parseGoTime(s: string): GoTime | undefined {
  const m = RFC3339.exec(s);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, se, frac, zone] = m;
  const utcMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se));
  if (Number.isNaN(utcMs)) return undefined;
  let offsetMin = 0;
  if (zone !== 'Z') {
    const sign = zone!.startsWith('-') ? -1 : 1;
    offsetMin = sign * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(4, 6)));
  }
  const nanos = frac === undefined ? 0 : Number(frac.slice(0, 9).padEnd(9, '0'));
  return { unix: Math.floor(utcMs / 1000) - offsetMin * 60, nanos, zone: zone!, wall: `${y}-${mo}-${d}T${h}:${mi}:${se}` };
}

/** time.RFC3339Nano of a parsed time, keeping its zone. */
export function formatRFC3339Nano(t: GoTime): string {
  const frac = t.nanos === 0 ? '' : `.${String(t.nanos).padStart(9, '0').replace(/0+$/, '')}`;
  return `${t.wall}${frac}${t.zone}`;
}

/** Re-formats an RFC 3339 string as Go would print the parsed time; the input when it does not parse. */
export function goRFC3339Nano(s: string): string {
  const t = parseGoTime(s);
  return t === undefined ? s : formatRFC3339Nano(t);
}

/** Go's zero time.Time as RFC 3339. */
export const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

export function isGoZeroTime(s: string | undefined): boolean {
  return s === undefined || s === '' || s.startsWith('0001-01-01T00:00:00');
}

/**
 * docker/go-units as the docker CLI prints sizes, with Go's `%.*g` reproduced exactly: the digits
 * of the binary value rounded half to even (1125 B is "1.12kB", not "1.13kB"), and the exponent
 * form where Go uses it (999950 B is "1e+03kB").
 */

/** The exact decimal expansion of a finite double ≥ 0: digits without leading or trailing zeros, and the decimal point's position. */
function exactDecimal(x: number): { d: string; dp: number } {
  if (x === 0) return { d: '', dp: 0 };
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, x);
  const bits = v.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let e: number;
  if (expBits === 0) e = -1074;
  else {
    mant |= 1n << 52n;
    e = expBits - 1075;
  }
  let s: string;
  let dp: number;
  if (e >= 0) {
    s = (mant << BigInt(e)).toString();
    dp = s.length;
  } else {
    s = (mant * 5n ** BigInt(-e)).toString();
    dp = s.length + e;
  }
  return { d: s.replace(/0+$/, ''), dp };
}

/** Rounds to `p` significant digits, half to even on an exact tie (strconv's fixed-precision rounding). */
function roundDigits(x: { d: string; dp: number }, p: number): { d: string; dp: number } {
  if (x.d.length <= p) return x;
  const head = x.d.slice(0, p);
  const rest = x.d.slice(p);
  const up = rest[0]! > '5' || (rest[0] === '5' && (rest.length > 1 || (Number(head[head.length - 1]) & 1) === 1));
  if (!up) return { d: head.replace(/0+$/, ''), dp: x.dp };
  const inc = (BigInt(head) + 1n).toString();
  const dp = inc.length > head.length ? x.dp + 1 : x.dp;
  return { d: inc.replace(/0+$/, ''), dp };
}

/** Go's fmt `%.{p}g` of a finite double ≥ 0. */
export function goFormatG(x: number, p: number): string {
  const { d, dp } = roundDigits(exactDecimal(x), p);
  const nd = d.length;
  let eprec = p;
  if (eprec > nd && nd >= dp) eprec = nd;
  const exp = dp - 1;
  if (exp < -4 || exp >= eprec) {
    const digits = d === '' ? '0' : d;
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const prec = p > dp ? nd : p;
  const decimals = Math.max(prec - dp, 0);
  const digit = (i: number): string => (i >= 0 && i < nd ? d[i]! : '0');
  let int = '';
  if (dp > 0) for (let i = 0; i < dp; i++) int += digit(i);
  else int = '0';
  let frac = '';
  for (let i = 0; i < decimals; i++) frac += digit(dp + i);
  return decimals > 0 ? `${int}.${frac}` : int;
}

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** units.HumanSizeWithPrecision: decimal units, `%.{precision}g`. */
export function humanSizeWithPrecision(size: number, precision: number): string {
  let v = size;
  let i = 0;
  while (v >= 1000 && i < DECIMAL_UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return `${goFormatG(v, precision)}${DECIMAL_UNITS[i]}`;
}

/** units.HumanSize: four significant digits. */
export function goHumanSize(size: number): string {
  return humanSizeWithPrecision(size, 4);
}

/**
 * The size and age formats `ctr` prints (pure): go-units' HumanSize (decimal, four significant
 * digits: `1.999MB`), containerd's progress.Bytes (binary, one decimal: `1.9 MiB`) and go-units'
 * HumanDuration (`32 seconds`).
 */

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSizeWithPrecision(size, 4), as `%.4g` prints it. */
export function goHumanSize(size: number, precision = 4): string {
  let v = size;
  let i = 0;
  while (v >= 1000 && i < DECIMAL.length - 1) {
    v /= 1000;
    i++;
  }
  return `${goG(v, precision)}${DECIMAL[i]}`;
}

/** Go's %.Ng for the non-negative values sizes take (no exponent below 10^N). */
function goG(v: number, precision: number): string {
  if (v === 0) return '0';
  const s = v.toPrecision(precision);
  if (s.includes('e')) return s.replace(/\.?0+e/, 'e').replace(/e\+?(-?)(\d)$/, 'e$10$2');
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

/** containerd's progress.Bytes.String(): `%.1f %s` over 1024-based units (`12.0 KiB`, `0.0 B`). */
export function progressBytes(size: number): string {
  let v = size;
  let i = 0;
  while (v >= 1024 && i < BINARY.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${BINARY[i]}`;
}

/** go-units HumanDuration. */
export function goHumanDuration(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(s / 3600 / 24 / 365)} years`;
}

/**
 * The size and age formats `ctr` prints (pure): go-units' HumanSize (decimal, four significant
 * digits: `1.999MB`), containerd's progress.Bytes (binary, one decimal: `1.9 MiB`) and go-units'
 * HumanDuration (`32 seconds`).
 */

import { humanSizeWithPrecision } from '../docker/units.js';

/** go-units HumanSizeWithPrecision(size, 4), as `%.4g` prints it (Go's exact rounding). */
export function goHumanSize(size: number, precision = 4): string {
  return humanSizeWithPrecision(size, precision);
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

/** go-units HumanDuration (the one `docker ps` uses too). */
export { humanDuration as goHumanDuration } from '../docker/apitypes.js';

import { readFileSync } from 'node:fs';

const AT_PAGESZ = 6n;
let cached: number | undefined;

/**
 * The page size of this machine (what bbolt's os.Getpagesize() returns, and so the page size of a
 * new bbolt file): AT_PAGESZ from the process's auxiliary vector, 4096 when it cannot be read.
 */
export function hostPageSize(): number {
  if (cached !== undefined) return cached;
  cached = 4096;
  try {
    const auxv = readFileSync('/proc/self/auxv');
    const v = new DataView(auxv.buffer, auxv.byteOffset, auxv.byteLength);
    for (let off = 0; off + 16 <= auxv.length; off += 16) {
      const type = v.getBigUint64(off, true);
      if (type === 0n) break;
      if (type === AT_PAGESZ) {
        const ps = Number(v.getBigUint64(off + 8, true));
        if (ps >= 512 && ps <= 1 << 24 && (ps & (ps - 1)) === 0) cached = ps;
        break;
      }
    }
  } catch {
    // not Linux, or /proc is not mounted: keep 4096
  }
  return cached;
}

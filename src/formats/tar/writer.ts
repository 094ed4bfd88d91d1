/**
 * Writing tar archives: ustar headers, with a PAX `x` header first when a field does not fit
 * (long names, large ids, xattrs). Pure: it returns the blocks; the caller streams them. Output is
 * a function of the fields only, so equal inputs give equal bytes.
 */
import { concatBytes } from '../bytes.js';
import { BLOCK, TYPE, encodeHeader, padding, paxData, withPaxHeader, type HeaderFields } from './header.js';

const te = new TextEncoder();

export interface WriteEntry extends HeaderFields {
  /** Extended attributes, written as PAX SCHILY.xattr.* records. */
  xattrs?: Map<string, Uint8Array>;
}

/** The header blocks of an entry (PAX header if needed, then the ustar header). */
export function entryHeader(e: WriteEntry): Uint8Array {
  const { block, pax } = encodeHeader(e);
  for (const [k, v] of e.xattrs ?? []) pax.push([`SCHILY.xattr.${k}`, v]);
  if (pax.length === 0) return block;
  const data = paxData(pax);
  const name = te.encode(`PaxHeaders/${new TextDecoder().decode(e.name).split('/').pop()!.slice(0, 80)}`);
  const { block: xh } = encodeHeader({ name, mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: e.mtime, type: TYPE.PAX });
  return withPaxHeader(xh, data, block);
}

/** Zero bytes that pad `size` bytes of data to a block boundary. */
export function dataPadding(size: number): Uint8Array {
  return new Uint8Array(padding(size));
}

/** The end of an archive: two zero blocks. */
export function tarEnd(): Uint8Array {
  return new Uint8Array(2 * BLOCK);
}

/** A whole small archive in memory (tests, configs). */
export function tarBytes(entries: { entry: WriteEntry; data?: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { entry, data } of entries) {
    parts.push(entryHeader(entry));
    if (data !== undefined && data.length > 0) {
      parts.push(data);
      parts.push(dataPadding(data.length));
    }
  }
  parts.push(tarEnd());
  return concatBytes(parts);
}

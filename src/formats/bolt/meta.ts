import { view } from '../bytes.js';
import { MAGIC, MAGIC_SWAPPED, META_CHECKSUM_SPAN, META_OFFSET, META_SIZE, PGID_NO_FREELIST, VERSION } from './constants.js';

/** Field offsets inside the meta struct (after the 16-byte page header). */
const M_MAGIC = 0;
const M_VERSION = 4;
const M_PAGE_SIZE = 8;
const M_FLAGS = 12;
const M_ROOT = 16;
const M_ROOT_SEQ = 24;
const M_FREELIST = 32;
const M_PGID = 40;
const M_TXID = 48;
const M_CHECKSUM = 56;

export type MetaProblem = 'invalid database' | 'version mismatch' | 'checksum error' | 'big-endian database';

export interface Meta {
  magic: number;
  version: number;
  pageSize: number;
  flags: number;
  root: bigint;
  rootSequence: bigint;
  freelist: bigint;
  pgid: bigint;
  txid: bigint;
  checksum: bigint;
  /** FNV-1a 64 of the 56 bytes before the checksum. */
  computedChecksum: bigint;
  /** Undefined when the meta validates (HEAD rules: a zero checksum is an error). */
  problem: MetaProblem | undefined;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

export function fnv1a64(bytes: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) {
    h ^= BigInt(bytes[i]!);
    h = (h * FNV_PRIME) & MASK64;
  }
  return h;
}

/**
 * Decodes the meta struct of a page whose first bytes are `page` (at least 80 bytes).
 * Validity is returned as data (`problem`), in bbolt's order: magic, version, checksum.
 */
export function decodeMeta(page: Uint8Array): Meta {
  if (page.length < META_OFFSET + META_SIZE) throw new RangeError('meta page shorter than 80 bytes');
  const v = view(page.subarray(META_OFFSET, META_OFFSET + META_SIZE));
  const magic = v.getUint32(M_MAGIC, true);
  const meta: Meta = {
    magic,
    version: v.getUint32(M_VERSION, true),
    pageSize: v.getUint32(M_PAGE_SIZE, true),
    flags: v.getUint32(M_FLAGS, true),
    root: v.getBigUint64(M_ROOT, true),
    rootSequence: v.getBigUint64(M_ROOT_SEQ, true),
    freelist: v.getBigUint64(M_FREELIST, true),
    pgid: v.getBigUint64(M_PGID, true),
    txid: v.getBigUint64(M_TXID, true),
    checksum: v.getBigUint64(M_CHECKSUM, true),
    computedChecksum: fnv1a64(page.subarray(META_OFFSET, META_OFFSET + META_CHECKSUM_SPAN)),
    problem: undefined,
  };
  if (magic !== MAGIC) meta.problem = magic === MAGIC_SWAPPED ? 'big-endian database' : 'invalid database';
  else if (meta.version !== VERSION) meta.problem = 'version mismatch';
  else if (meta.checksum !== meta.computedChecksum) meta.problem = 'checksum error';
  return meta;
}

export function hasFreelist(meta: Meta): boolean {
  return meta.freelist !== PGID_NO_FREELIST;
}

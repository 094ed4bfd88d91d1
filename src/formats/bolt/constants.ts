/** bbolt on-disk constants (see shared/reference/bbolt-format.md §2-§5). */
export const MAGIC = 0xed0cdaed;
/** The magic as a little-endian reader sees the bytes a big-endian host wrote (ed 0c da ed). */
export const MAGIC_SWAPPED = 0xedda0ced;
export const VERSION = 2;

export const PAGE_HEADER_SIZE = 16;
export const ELEMENT_SIZE = 16;
export const BUCKET_HEADER_SIZE = 16;
export const META_OFFSET = 16;
export const META_SIZE = 64;
/** The checksum covers the 56 meta bytes before it. */
export const META_CHECKSUM_SPAN = 56;

export const FLAG_BRANCH = 0x01;
export const FLAG_LEAF = 0x02;
export const FLAG_META = 0x04;
export const FLAG_FREELIST = 0x10;
export const LEAF_FLAG_BUCKET = 0x01;

/** meta.freelist when the freelist is not persisted (NoFreelistSync). */
export const PGID_NO_FREELIST = 0xffffffffffffffffn;
export const FREELIST_COUNT_ESCAPE = 0xffff;

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 1 << 24;

/** The type name bbolt's CLI prints (v1.4+: exact equality; anything else unknown<xx>). */
export function pageTypeName(flags: number): string {
  switch (flags) {
    case FLAG_BRANCH:
      return 'branch';
    case FLAG_LEAF:
      return 'leaf';
    case FLAG_META:
      return 'meta';
    case FLAG_FREELIST:
      return 'freelist';
    default:
      return `unknown<${flags.toString(16).padStart(2, '0')}>`;
  }
}

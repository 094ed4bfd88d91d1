/**
 * The header of a gzip member (RFC 1952 §2.3): what dockerd's log rotation writes into it. Go's
 * compress/gzip puts `Header.Extra` in the FEXTRA field as is (no subfield structure); the log
 * rotation stores `{"lastTime":"…"}` there, the time of the last entry of the compressed file.
 */
export interface GzipHeader {
  /** Bytes of the FEXTRA field, when the flag is set. */
  extra: Uint8Array | undefined;
  /** Where the compressed data starts. */
  dataStart: number;
}

export type GzipHeaderResult = { ok: true; header: GzipHeader } | { ok: false; reason: 'short' | 'magic' | 'method' };

const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;
const FHCRC = 2;

/** Parses the header from the first bytes of a file (`short` when they end before the header does). */
export function parseGzipHeader(b: Uint8Array): GzipHeaderResult {
  if (b.length < 10) return { ok: false, reason: b.length >= 2 && (b[0] !== 0x1f || b[1] !== 0x8b) ? 'magic' : 'short' };
  if (b[0] !== 0x1f || b[1] !== 0x8b) return { ok: false, reason: 'magic' };
  if (b[2] !== 8) return { ok: false, reason: 'method' };
  const flg = b[3]!;
  let i = 10;
  let extra: Uint8Array | undefined;
  if ((flg & FEXTRA) !== 0) {
    if (i + 2 > b.length) return { ok: false, reason: 'short' };
    const xlen = b[i]! | (b[i + 1]! << 8);
    i += 2;
    if (i + xlen > b.length) return { ok: false, reason: 'short' };
    extra = b.subarray(i, i + xlen);
    i += xlen;
  }
  for (const f of [FNAME, FCOMMENT]) {
    if ((flg & f) === 0) continue;
    const z = b.indexOf(0, i);
    if (z < 0) return { ok: false, reason: 'short' };
    i = z + 1;
  }
  if ((flg & FHCRC) !== 0) i += 2;
  if (i > b.length) return { ok: false, reason: 'short' };
  return { ok: true, header: { extra, dataStart: i } };
}

/** Most bytes a header can take with FEXTRA (names and comments aside). */
export const GZIP_HEADER_MAX = 10 + 2 + 0xffff;

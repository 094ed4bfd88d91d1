/** Small pure helpers over Uint8Array/DataView. No Buffer, no fs. */

export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!]!;
  return s;
}

export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** bytes.Compare: unsigned lexicographic, a shorter prefix sorts first. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** The parts one after another, in a new array; `total` is their summed length when the caller keeps it. */
export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** concatBytes, except that a single part is returned as it is (no copy). */
export function joinBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  return parts.length === 1 ? parts[0]! : concatBytes(parts, total);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Loose = new TextDecoder('utf-8');

/** Strict UTF-8 decode, or undefined when the bytes are not valid UTF-8. */
export function utf8OrUndefined(b: Uint8Array): string | undefined {
  try {
    return utf8Strict.decode(b);
  } catch {
    return undefined;
  }
}

export function utf8(b: Uint8Array): string {
  return utf8Loose.decode(b);
}

const encoder = new TextEncoder();
export function encodeUtf8(s: string): Uint8Array {
  return encoder.encode(s);
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]*$/u;

/** Go's isPrintable as bbolt's CLI uses it: valid UTF-8 and every rune unicode.IsPrint. */
export function printableText(b: Uint8Array): string | undefined {
  const s = utf8OrUndefined(b);
  if (s === undefined) return undefined;
  return PRINTABLE.test(s) ? s : undefined;
}

/** A copy that owns its memory. (Buffer#slice is a view, not a copy: never use it to copy.) */
export function copyBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

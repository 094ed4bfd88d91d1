/**
 * CRC-64/ISO as Go's hash/crc64 computes it with MakeTable(crc64.ISO): reflected polynomial
 * 0xD800000000000000, initial value and final XOR all ones. The 64-bit state is kept as two
 * 32-bit halves and the input is consumed eight bytes at a time (slicing-by-8), so a layer's files
 * can be checked in pure TypeScript at a useful speed.
 */
const POLY_HI = 0xd8000000;

/** 8 tables of 256 entries, each entry as [hi, lo] in two Uint32Arrays. */
const T_HI: Uint32Array[] = [];
const T_LO: Uint32Array[] = [];

function init(): void {
  if (T_HI.length > 0) return;
  const hi0 = new Uint32Array(256);
  const lo0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let hi = 0;
    let lo = i;
    for (let k = 0; k < 8; k++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (carry !== 0) hi = (hi ^ POLY_HI) >>> 0;
    }
    hi0[i] = hi;
    lo0[i] = lo;
  }
  T_HI.push(hi0);
  T_LO.push(lo0);
  for (let t = 1; t < 8; t++) {
    const ph = T_HI[t - 1]!;
    const pl = T_LO[t - 1]!;
    const h = new Uint32Array(256);
    const l = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      // next[i] = table0[prev[i] & 0xff] ^ (prev[i] >> 8)
      const vh = ph[i]!;
      const vl = pl[i]!;
      const idx = vl & 0xff;
      h[i] = (hi0[idx]! ^ (vh >>> 8)) >>> 0;
      l[i] = (lo0[idx]! ^ ((vl >>> 8) | ((vh & 0xff) << 24))) >>> 0;
    }
    T_HI.push(h);
    T_LO.push(l);
  }
}

/** A running CRC-64/ISO. */
export class Crc64 {
  private hi = 0xffffffff;
  private lo = 0xffffffff;

  constructor() {
    init();
  }

  update(data: Uint8Array): this {
    let hi = this.hi;
    let lo = this.lo;
    const n = data.length;
    let i = 0;
    const [h0, h1, h2, h3, h4, h5, h6, h7] = T_HI as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
    const [l0, l1, l2, l3, l4, l5, l6, l7] = T_LO as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
    for (; i + 8 <= n; i += 8) {
      const a = (lo ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
      const b = (hi ^ (data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24))) >>> 0;
      hi =
        (h7[a & 0xff]! ^
          h6[(a >>> 8) & 0xff]! ^
          h5[(a >>> 16) & 0xff]! ^
          h4[a >>> 24]! ^
          h3[b & 0xff]! ^
          h2[(b >>> 8) & 0xff]! ^
          h1[(b >>> 16) & 0xff]! ^
          h0[b >>> 24]!) >>>
        0;
      lo =
        (l7[a & 0xff]! ^
          l6[(a >>> 8) & 0xff]! ^
          l5[(a >>> 16) & 0xff]! ^
          l4[a >>> 24]! ^
          l3[b & 0xff]! ^
          l2[(b >>> 8) & 0xff]! ^
          l1[(b >>> 16) & 0xff]! ^
          l0[b >>> 24]!) >>>
        0;
    }
    for (; i < n; i++) {
      const idx = (lo ^ data[i]!) & 0xff;
      const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0;
      hi = (h0[idx]! ^ (hi >>> 8)) >>> 0;
      lo = (l0[idx]! ^ nlo) >>> 0;
    }
    this.hi = hi;
    this.lo = lo;
    return this;
  }

  /** The 8-byte big-endian sum (Go's Hash.Sum(nil)), as tar-split stores it. */
  digest(): Uint8Array {
    const hi = ~this.hi >>> 0;
    const lo = ~this.lo >>> 0;
    const out = new Uint8Array(8);
    const v = new DataView(out.buffer);
    v.setUint32(0, hi, false);
    v.setUint32(4, lo, false);
    return out;
  }
}

export function crc64(data: Uint8Array): Uint8Array {
  return new Crc64().update(data).digest();
}

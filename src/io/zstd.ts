import * as zlib from 'node:zlib';
import { decompress as fzstdDecompress } from 'fzstd';
import { DatarootError } from '../formats/errors.js';
import { nativeAvailable, nativeZstd } from './native.js';

/**
 * zstd for the snapshot store, the same on every install: a store written anywhere reads here.
 * Decompression uses Node's own zstd where it has one (node:zlib, 22.15 and later), else the
 * native addon's libzstd when the addon is loaded, else fzstd (pure JavaScript). Compression
 * (only writers compress) uses Node's zstd or the addon.
 */
type ZlibZstd = {
  zstdDecompressSync?: (b: Uint8Array, o?: object) => Buffer;
  zstdCompressSync?: (b: Uint8Array, o?: object) => Buffer;
  constants: Record<string, number>;
};
const z = zlib as unknown as ZlibZstd;

const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function corrupt(e: unknown): DatarootError {
  return new DatarootError('IO_ZSTD_CORRUPT', `zstd data is corrupt: ${(e as Error).message}`);
}

/** Which decompressor runs here (for `info` and tests). */
export function zstdBackend(): 'node:zlib' | 'addon' | 'fzstd' {
  if (z.zstdDecompressSync !== undefined) return 'node:zlib';
  if (nativeAvailable() && nativeZstd() !== undefined) return 'addon';
  return 'fzstd';
}

/** A whole zstd frame (or frames) back to its `size` bytes; anything else is IO_ZSTD_CORRUPT. */
export function zstdDecompress(data: Uint8Array, size: number): Buffer {
  let out: Uint8Array;
  try {
    const backend = zstdBackend();
    if (backend === 'node:zlib') out = z.zstdDecompressSync!(data, { maxOutputLength: Math.max(size, 1) });
    else if (backend === 'addon') out = nativeZstd()!.decompress(asBuffer(data), size);
    else out = fzstdDecompress(data, new Uint8Array(size));
  } catch (e) {
    throw corrupt(e);
  }
  if (out.length !== size) throw new DatarootError('IO_ZSTD_CORRUPT', `zstd data decompresses to ${out.length} bytes, not ${size}`);
  return asBuffer(out);
}

/** The same off the main thread where the addon can (the input must not change meanwhile). */
export async function zstdDecompressAsync(data: Uint8Array, size: number): Promise<Buffer> {
  const n = zstdBackend() === 'addon' ? nativeZstd() : undefined;
  if (n === undefined) return zstdDecompress(data, size);
  let out: Buffer;
  try {
    out = await n.decompressAsync(asBuffer(data), size);
  } catch (e) {
    throw corrupt(e);
  }
  if (out.length !== size) throw new DatarootError('IO_ZSTD_CORRUPT', `zstd data decompresses to ${out.length} bytes, not ${size}`);
  return out;
}

/** Which compressor a snapshot writer uses here: the addon, else Node's zstd; null when neither is there (for `info`). */
export function zstdCompressBackend(): 'addon' | 'node:zlib' | null {
  if (nativeAvailable() && nativeZstd() !== undefined) return 'addon';
  return z.zstdCompressSync !== undefined ? 'node:zlib' : null;
}

/** zstd compression at `level` (writers only: Node's zstd or the addon). */
export async function zstdCompressAsync(data: Uint8Array, level: number): Promise<Buffer> {
  const n = zstdCompressBackend() === 'addon' ? nativeZstd() : undefined;
  if (n !== undefined) return n.compressAsync(asBuffer(data), level);
  if (z.zstdCompressSync !== undefined) return z.zstdCompressSync(data, { params: { [z.constants['ZSTD_c_compressionLevel']!]: level } });
  throw new DatarootError('IO_NATIVE_UNAVAILABLE', "writing a snapshot store needs zstd: dataroot's native addon (see `dataroot info`) or Node 22.15 or later");
}

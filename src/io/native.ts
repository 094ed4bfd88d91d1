import { spawnSync } from 'node:child_process';
import { existsSync, lutimesSync, readFileSync, type BigIntStats } from 'node:fs';
import { availableParallelism, constants as osConstants } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { ioErrorCode } from '../formats/errorcodes.js';
import { HEAD_BYTES, kindOfSample, type ContentKind } from '../formats/snapstore/manifest.js';
import { packageRoot } from './pkg.js';

/**
 * The native addon's typed facade: the system calls Node lacks (extended attributes, mknod,
 * nanosecond utimes of symlinks, openat2, flock probes), the tree scan and the snapshot content
 * pipeline (native/, built by node-gyp). Everything that needs them goes through this module.
 * Without the addon, read commands still work (callers fall back to Node where Node can do it);
 * `addonState()` says why it is absent.
 */
interface Addon {
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  lsetxattr(path: string, name: string, value: Buffer): void;
  mknod(path: string, mode: number, major: number, minor: number): void;
  lutimens(path: string, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  flockProbe(path: string): boolean;
  openBeneath(base: string, rel: string, flags: number, mode: number): number;
  scandir(path: string): Buffer;
  scanTree(
    root: string,
    prevIdentity: Buffer | null,
    prevVolatile: Buffer | null,
    carry: boolean,
    xattrs: boolean,
    threads: number,
    files: boolean,
    volatileTemplate: Uint8Array,
  ): [number, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  packFiles(
    paths: Buffer,
    count: number,
    keep: Buffer,
    packPath: string | null,
    start: number,
    indexes: Buffer[],
    indexStride: number,
    progress: Float64Array,
    level: number,
    threads: number,
    results?: Buffer,
  ): Promise<[Buffer, Buffer, number, number, string, string]>;
  // Properties, not methods: they are handed out detached (nativeZstd), and the addon's functions use no `this`.
  zstdCompressAsync: (data: Buffer, level: number) => Promise<Buffer>;
  zstdDecompress: (data: Buffer, size: number) => Buffer;
  zstdDecompressAsync: (data: Buffer, size: number) => Promise<Buffer>;
}

/**
 * The addon as npm builds it: `node-gyp rebuild` of binding.gyp at install (scripts/build-native.mjs)
 * into build/Release/. When that build failed, the script left its reason in build/native-build.json.
 */
const ADDON = join(packageRoot(), 'build', 'Release', 'dataroot_native.node');
const BUILD_REPORT = join(packageRoot(), 'build', 'native-build.json');

let addon: Addon | undefined;
let loadError: string | undefined;

function buildFailure(): string | undefined {
  try {
    const r = JSON.parse(readFileSync(BUILD_REPORT, 'utf8')) as { ok?: boolean; reason?: string };
    return r.ok === false ? r.reason : undefined;
  } catch {
    return undefined;
  }
}

/** DATAROOT_NO_NATIVE set (non-empty): behave as an install whose addon did not build (tests). */
function disabled(): boolean {
  return (process.env['DATAROOT_NO_NATIVE'] ?? '') !== '';
}

function load(): Addon {
  if (addon !== undefined && !disabled()) return addon;
  if (disabled()) throw new DatarootError('IO_NATIVE_UNAVAILABLE', "this needs dataroot's native addon, which DATAROOT_NO_NATIVE turns off");
  if (loadError === undefined) {
    if (!existsSync(ADDON))
      loadError = `it was not built (${buildFailure() ?? 'npm install builds it with node-gyp, which needs python3, make, a C compiler and libzstd-dev'})`;
    else {
      try {
        addon = createRequire(import.meta.url)(ADDON) as Addon;
        return addon;
      } catch (e) {
        loadError = `cannot load ${ADDON}: ${(e as Error).message}`;
      }
    }
  }
  throw new DatarootError('IO_NATIVE_UNAVAILABLE', `this needs dataroot's native addon: ${loadError}`);
}

/** Whether the addon can be loaded (tests and feature probes). */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

/** The commands that stop with IO_NATIVE_UNAVAILABLE without the addon (the build script prints the same list). */
export const NEEDS_ADDON = [
  'snapshot',
  'restore',
  'reset',
  'inject',
  'pack/edit --into-root',
  'container diff and verify --deep of overlay2 roots (opaque directories)',
  'export, mount and find of layers with xattrs (file capabilities, opaque directories)',
];

export interface AddonState {
  /** loaded: usable; disabled: DATAROOT_NO_NATIVE; missing: not built (reason says why); broken: built but cannot load. */
  state: 'loaded' | 'disabled' | 'missing' | 'broken';
  path: string;
  reason?: string;
  /** What does not work without it. */
  unavailable: string[];
}

/** The addon's state, for `dataroot info`. */
export function addonState(): AddonState {
  if (nativeAvailable()) return { state: 'loaded', path: ADDON, unavailable: [] };
  const reason = loadError ?? 'DATAROOT_NO_NATIVE is set';
  const state = disabled() ? 'disabled' : existsSync(ADDON) ? 'broken' : 'missing';
  return { state, path: ADDON, reason, unavailable: NEEDS_ADDON };
}

/** The addon's zstd (the snapshot store's io/zstd picks among backends), or undefined. */
export function nativeZstd():
  { decompress: Addon['zstdDecompress']; decompressAsync: Addon['zstdDecompressAsync']; compressAsync: Addon['zstdCompressAsync'] } | undefined {
  if (!nativeAvailable()) return undefined;
  const a = load();
  return { decompress: a.zstdDecompress, decompressAsync: a.zstdDecompressAsync, compressAsync: a.zstdCompressAsync };
}

function wrap<T>(op: string, path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DatarootError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new DatarootError(ioErrorCode(err.code), `${op} ${path}: ${err.message}`, { file: path });
  }
}

/**
 * openat2(2) of `rel` beneath `base` (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS, with the open `flags` and `mode`): the descriptor, which the caller
 * closes. Throws an Error with the errno `code` (EXDEV for a path that leaves base, ELOOP for a
 * symlink, ENOSYS when the kernel lacks openat2). Undefined when the addon is not loaded.
 */
export function openBeneath(base: string, rel: string, flags: number, mode = 0): number | undefined {
  if (!nativeAvailable()) return undefined;
  return load().openBeneath(base, rel, flags, mode);
}

/** One extended attribute of a path (not following symlinks), or undefined when it has none by that name. */
export function getXattr(path: string, name: string): Buffer | undefined {
  const a = load();
  return wrap('lgetxattr', path, () => a.lgetxattr(path, name) ?? undefined);
}

/** Every extended attribute of a path, by name in the order the kernel lists them. */
export function listXattrs(path: string): Map<string, Buffer> {
  const a = load();
  const out = new Map<string, Buffer>();
  for (const name of wrap('llistxattr', path, () => a.llistxattr(path))) {
    const v = wrap('lgetxattr', path, () => a.lgetxattr(path, name));
    if (v !== null) out.set(name, v);
  }
  return out;
}

export function setXattr(path: string, name: string, value: Uint8Array): void {
  const a = load();
  wrap('lsetxattr', path, () => a.lsetxattr(path, name, Buffer.from(value.buffer, value.byteOffset, value.byteLength)));
}

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** mknod(2): character or block devices and FIFOs; `mode` is the permission bits with the type. */
export function mknod(path: string, mode: number, major: number, minor: number): void {
  const a = load();
  wrap('mknod', path, () => a.mknod(path, mode, major, minor));
}

/** Device nodes made by mknod(1) in this process (one process each: bounded, so an archive of millions cannot stall). */
let toolNodes = 0;
const MAX_TOOL_NODES = 20_000;

/**
 * mknod(2) where the addon is loaded; else coreutils' mknod(1) (an argument vector, no shell, the C
 * locale so that its message can be classified; `-m` sets the permission bits whatever the umask).
 * For unpacking evidence only: what writes into a real root needs the addon.
 */
export function mknodPortable(path: string, mode: number, major: number, minor: number): void {
  if (nativeAvailable()) {
    mknod(path, mode, major, minor);
    return;
  }
  if (++toolNodes > MAX_TOOL_NODES)
    throw new DatarootError(
      'IO_NATIVE_UNAVAILABLE',
      `more than ${MAX_TOOL_NODES} device nodes to make without the native addon (one mknod(1) process each): build the addon (see dataroot info)`,
      { file: path },
    );
  const type = mode & 0o170000;
  const letter = type === S_IFCHR ? 'c' : type === S_IFBLK ? 'b' : type === S_IFIFO ? 'p' : undefined;
  if (letter === undefined) throw new DatarootError('IO_EINVAL', `mknod ${path}: type ${type.toString(8)} is not a device or FIFO`, { file: path });
  const args = ['-m', (mode & 0o7777).toString(8), '--', path, letter, ...(letter === 'p' ? [] : [String(major), String(minor)])];
  const r = spawnSync('mknod', args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, LC_ALL: 'C' } });
  if (r.error !== undefined) {
    const why = (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 'mknod(1) did not finish in 30 s' : `mknod(1) cannot run (${r.error.message})`;
    throw new DatarootError('IO_NATIVE_UNAVAILABLE', `mknod ${path}: the native addon is not available and ${why}`, { file: path });
  }
  if (r.status !== 0) {
    const msg = r.stderr.trim();
    const code = /Operation not permitted/.test(msg) ? 'IO_EPERM' : /File exists/.test(msg) ? 'IO_EEXIST' : /No such file/.test(msg) ? 'IO_ENOENT' : 'IO_EIO';
    throw new DatarootError(code, `mknod ${path}: ${msg || (r.signal !== null ? `mknod(1) killed by ${r.signal}` : `mknod(1) exited with ${r.status}`)}`, {
      file: path,
    });
  }
}

/** lutimesNs where the addon is loaded; else Node's lutimes (about a microsecond). For unpacking evidence only. */
export function lutimesPortable(path: string, atimeNs: bigint, mtimeNs: bigint): void {
  if (nativeAvailable()) {
    lutimesNs(path, atimeNs, mtimeNs);
    return;
  }
  const sec = (ns: bigint): number => Number(ns / 1000n) / 1e6;
  wrap('utimensat', path, () => lutimesSync(path, sec(atimeNs), sec(mtimeNs)));
}

/** utimensat(2) without following symlinks, with whole nanoseconds (Node's utimes rounds through a double). */
export function lutimesNs(path: string, atimeNs: bigint, mtimeNs: bigint): void {
  const a = load();
  const split = (ns: bigint): [number, number] => {
    let s = ns / 1_000_000_000n;
    let n = ns % 1_000_000_000n;
    if (n < 0n) {
      n += 1_000_000_000n;
      s -= 1n;
    }
    return [Number(s), Number(n)];
  };
  const [as, an] = split(atimeNs);
  const [ms, mn] = split(mtimeNs);
  wrap('utimensat', path, () => a.lutimens(path, as, an, ms, mn));
}

/**
 * How many native threads read contents: two a core (up to 8). More threads than cores keep the
 * cores busy while a thread waits for its direct write to reach the disk or for a page to be read.
 */
export function contentThreads(): number {
  return Math.max(2, Math.min(8, 2 * availableParallelism()));
}

/** Files for packFiles: their paths NUL-terminated back to back, how many, and a keep byte each. */
export interface FileBatch {
  paths: Buffer;
  count: number;
  keep: Buffer;
}

export function fileBatch(files: { abs: string | Buffer; keep: boolean }[]): FileBatch {
  const parts: Buffer[] = [];
  const zero = Buffer.alloc(1);
  const keep = Buffer.alloc(files.length);
  let at = 0;
  files.forEach((f, i) => {
    const b = typeof f.abs === 'string' ? Buffer.from(f.abs) : f.abs;
    parts.push(b, zero);
    at += b.length + 1;
    keep[i] = f.keep ? 1 : 0;
  });
  return { paths: Buffer.concat(parts, at), count: files.length, keep };
}

/** The path of file i of a batch (for error messages: found by counting NULs). */
export function batchPath(b: FileBatch, i: number): Buffer {
  let start = 0;
  for (let k = 0; k < i; k++) start = b.paths.indexOf(0, start) + 1;
  return b.paths.subarray(start, b.paths.indexOf(0, start));
}

/**
 * One file's result. The addon knows no store format: it gives the digest, the size, the facts
 * of the file's head its kind follows from (classified here by formats/snapstore kindOfSample),
 * and, for content new to the pack, where its chunks went.
 */
export interface PackedFile {
  /** sha256 of the content read, in hex. */
  sha256: string;
  size: number;
  kind: ContentKind;
  /** Whether this file's content became new content of the pack (its chunks are in the run's chunks). */
  fresh: boolean;
  chunks: number;
}

/** Where one piece of a new file went: its own frame (raw or compressed), or a slice of a shared frame. */
export interface PackedChunk {
  offset: number;
  stored: number;
  raw: number;
  compressed: boolean;
  /** A slice [start, start + len) of a shared zstd frame (offset, stored, raw: the frame's). */
  shared?: { start: number; len: number };
}

export interface PackedRun {
  results: PackedFile[];
  /** How many chunks the fresh files have, in file order (file i's `chunks` of them). */
  chunkCount: number;
  /** Chunk k of that list. */
  chunk(k: number): PackedChunk;
  /** Copies file i's sha256 (32 bytes) into `out` at `at`, without a view of the results. */
  copySha(i: number, out: Buffer, at: number): void;
  /** The pack's end after the last chunk (4096-aligned). */
  end: number;
}

/** Bytes of a result record, and of a chunk descriptor (the addon's transfer layout, not a store format). */
const RESULT = 80;
const CHUNK_DESC = 40;

function resultAt(res: Buffer, i: number): PackedFile {
  const at = i * RESULT;
  const size = res.readUInt32LE(at + 32) + res.readUInt32LE(at + 36) * 0x100000000;
  const length = Math.min(size, HEAD_BYTES);
  // read in place: a Buffer view a file costs more than the rest of its result
  const sample = {
    length,
    byte0: length > 0 ? res[at + 40]! : -1,
    byte1: length > 1 ? res[at + 41]! : -1,
    word16: length >= 20 ? res.readUInt32LE(at + 56) : -1,
    minByte: res[at + 65]!,
    firstNonSpace: res[at + 66]!,
  };
  return { sha256: res.toString('hex', at, at + 32), size, kind: kindOfSample(sample), chunks: res.readUInt32LE(at + 60), fresh: res[at + 64] === 1 };
}

function chunkAt(b: Buffer, i: number): PackedChunk {
  const at = i * CHUNK_DESC;
  const n = (o: number): number => b.readUInt32LE(at + o) + b.readUInt32LE(at + o + 4) * 0x100000000;
  const c: PackedChunk = { offset: n(0), stored: n(8), raw: n(16), compressed: b[at + 32] === 1 };
  if (b[at + 33] === 1) c.shared = { start: b.readUInt32LE(at + 24), len: b.readUInt32LE(at + 28) };
  return c;
}

/**
 * The results of a packFiles run as files finish, before the run ends: file i's result once
 * done(i). (The native threads write each record, then its done byte.)
 */
export class LiveResults {
  readonly buf: Buffer;
  constructor(readonly count: number) {
    this.buf = Buffer.alloc(count * RESULT);
  }
  done(i: number): boolean {
    return this.buf[i * RESULT + RESULT - 1] === 1;
  }
  result(i: number): PackedFile {
    return resultAt(this.buf, i);
  }
}

/**
 * Reads, hashes and (where `keep`) compresses into a pack every file of a list, on native threads
 * (native/pipeline.c). Content already in the store (`known`: sorted tables whose entries start
 * with a sha256, `stride` bytes apart) or met earlier in the run is not written again. Resolves
 * with one result a file, the chunks of the new contents and the pack's end; rejects when a file
 * cannot be read with an ErrnoException-like error carrying `index` (its position in the list),
 * when the pack cannot be written with SNAPSHOT_WRITE_FAILED.
 */
export async function packFiles(
  batch: FileBatch,
  pack: { path: string; start: number } | undefined,
  known: { tables: Buffer[]; stride: number },
  o: { level: number; threads: number; progress?: Float64Array; live?: LiveResults },
): Promise<PackedRun> {
  const count = batch.count;
  const progress = o.progress ?? new Float64Array(2);
  const [res, chunkBuf, end, failed, code, syscall] = await load().packFiles(
    batch.paths,
    count,
    batch.keep,
    pack?.path ?? null,
    pack?.start ?? 0,
    known.tables,
    known.stride,
    progress,
    o.level,
    o.threads,
    o.live?.buf,
  );
  if (failed === -2)
    throw new DatarootError('SNAPSHOT_WRITE_FAILED', `writing the pack failed: ${code} (${syscall})`, pack !== undefined ? { file: pack.path } : {});
  if (failed >= 0) {
    const path = batchPath(batch, failed).toString();
    throw Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path, index: failed });
  }
  const results: PackedFile[] = [];
  for (let i = 0; i < count; i++) results.push(resultAt(res, i));
  return {
    results,
    chunkCount: Math.floor(chunkBuf.length / CHUNK_DESC),
    chunk: (k) => chunkAt(chunkBuf, k),
    copySha: (i, out, at) => void res.copy(out, at, i * RESULT, i * RESULT + 32),
    end,
  };
}

/**
 * A directory's entries with their lstat, packed as the addon's scandir returns them (u16 name
 * length, the name, 14 u64: mode, uid, gid, size, mtime s/ns, atime s/ns, ctime s/ns, ino, dev,
 * nlink, rdev), sorted by name bytes. Read in place: a walk of a large tree allocates little.
 */
export class DirListing {
  private readonly at: number[] = [];

  constructor(readonly buf: Buffer) {
    let p = 0;
    while (p + 2 <= buf.length) {
      this.at.push(p);
      p += 2 + buf.readUInt16LE(p) + SCAN_RECORD;
    }
  }

  get length(): number {
    return this.at.length;
  }

  nameStart(i: number): number {
    return this.at[i]! + 2;
  }

  nameEnd(i: number): number {
    return this.at[i]! + 2 + this.buf.readUInt16LE(this.at[i]);
  }

  name(i: number): Buffer {
    return this.buf.subarray(this.nameStart(i), this.nameEnd(i));
  }

  /** Field f (0 mode, 1 uid, 2 gid, 3 size, 12 nlink) as a number. */
  num(i: number, f: number): number {
    return u64(this.buf, this.nameEnd(i) + f * 8);
  }

  /** Nanosecond time as decimal text: t 0 mtime, 1 atime, 2 ctime. */
  timeNs(i: number, t: number): string {
    return nsText(this.buf, this.nameEnd(i) + 32 + t * 16);
  }

  ino(i: number): string {
    return u64Text(this.buf, this.nameEnd(i) + 80);
  }

  dev(i: number): string {
    return u64Text(this.buf, this.nameEnd(i) + 88);
  }

  rdev(i: number): bigint {
    return this.buf.readBigUInt64LE(this.nameEnd(i) + 104);
  }

  /** A one-entry listing from Node's lstat (the root, and walks without the addon). */
  static of(name: Buffer, st: BigIntStats): DirListing {
    const b = Buffer.alloc(2 + name.length + SCAN_RECORD);
    b.writeUInt16LE(name.length, 0);
    name.copy(b, 2);
    const r = 2 + name.length;
    const sec = (ns: bigint): bigint => (ns >= 0n ? ns / 1000000000n : (ns - 999999999n) / 1000000000n);
    const f: bigint[] = [st.mode, st.uid, st.gid, st.size];
    for (const ns of [st.mtimeNs, st.atimeNs, st.ctimeNs]) f.push(BigInt.asUintN(64, sec(ns)), ns - sec(ns) * 1000000000n);
    f.push(st.ino, st.dev, st.nlink, st.rdev);
    f.forEach((v, k) => b.writeBigUInt64LE(BigInt.asUintN(64, v), r + k * 8));
    return new DirListing(b);
  }
}

const SCAN_RECORD = 14 * 8;

function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x100000000;
}

function u64Text(b: Buffer, at: number): string {
  const hi = b.readUInt32LE(at + 4);
  return hi < 0x200000 ? String(b.readUInt32LE(at) + hi * 0x100000000) : b.readBigUInt64LE(at).toString();
}

function nsText(b: Buffer, at: number): string {
  const hi = b.readUInt32LE(at + 4);
  const nsec = u64(b, at + 8);
  if (hi >= 0x200000) return (b.readBigInt64LE(at) * 1000000000n + BigInt(nsec)).toString();
  const sec = b.readUInt32LE(at) + hi * 0x100000000;
  return sec === 0 ? String(nsec) : `${sec}${String(nsec).padStart(9, '0')}`;
}

/**
 * Every entry of a directory with its lstat, in one call (the addon reads the directory and
 * stats each name in C), sorted by name bytes. Undefined when the addon lacks it; the caller then
 * uses readdir and lstat.
 */
export function scanDir(path: string): DirListing | undefined {
  if (!nativeAvailable()) return undefined;
  const a = load();
  return new DirListing(wrap('scandir', path, () => a.scandir(path)));
}

/**
 * A whole tree in walk order from one native call, matched against the previous snapshot's
 * manifest lines: `ops` holds per entry 0 (carried: u32 previous index, u32 mode, u64 size) or
 * 1 (in full: the next record of `full`, a listing whose names are relative paths); `volatile`
 * holds the new volatile line of each carried entry. Undefined when the addon lacks it.
 */
export interface TreeScan {
  count: number;
  ops: Buffer;
  full: DirListing;
  volatile: Buffer;
  /** With `xattrs`: the extended attributes of each entry in full, in order (read with TreeXattrs). */
  xattrs: TreeXattrs;
  /**
   * With `files`: the regular files described in full (of a hard-linked inode, its first path),
   * absolute paths NUL-terminated back to back, and their sizes (u64 little-endian each).
   */
  files?: { paths: Buffer; sizes: Buffer };
}

let errnoNames: Map<number, string> | undefined;

/**
 * The extended attributes scanTree read for the entries it returned in full, taken in order:
 * each `next()` gives one entry's attributes, or the error listing them met (coded IO_<errno>,
 * as listXattrs throws it).
 */
/** What TreeXattrs.next gives an entry without extended attributes (shared: read it, never change it). */
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

export class TreeXattrs {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  next(path: string): ReadonlyMap<string, Buffer> | DatarootError {
    const b = this.buf;
    const len = b.readUInt32LE(this.at);
    if (len === 0xffffffff) {
      const errno = b.readUInt32LE(this.at + 4);
      this.at += 8;
      errnoNames ??= new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
      const code = errnoNames.get(errno) ?? 'FAILED';
      return new DatarootError(ioErrorCode(code), `llistxattr ${path}: ${code}`, { file: path });
    }
    if (len === 0) {
      this.at += 4;
      return NO_XATTRS;
    }
    const out = new Map<string, Buffer>();
    let p = this.at + 4;
    const end = p + len;
    while (p < end) {
      const nl = b.readUInt16LE(p);
      const name = b.toString('utf8', p + 2, p + 2 + nl);
      const vl = b.readUInt32LE(p + 2 + nl);
      out.set(name, b.subarray(p + 6 + nl, p + 6 + nl + vl));
      p += 6 + nl + vl;
    }
    this.at = end;
    return out;
  }
}

export function scanTree(
  root: string,
  o: { previous?: { identity: Buffer; volatile: Buffer; carry: boolean }; xattrs: boolean; threads?: number; files?: boolean; volatileTemplate: Uint8Array },
): TreeScan | undefined {
  if (!nativeAvailable()) return undefined;
  let r: [number, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
  try {
    const p = o.previous;
    r = load().scanTree(root, p?.identity ?? null, p?.volatile ?? null, p?.carry ?? false, o.xattrs, o.threads ?? 0, o.files ?? false, o.volatileTemplate);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const at = err.path ?? root;
    throw new DatarootError(ioErrorCode(err.code), `scandir ${at}: ${err.message}`, { file: at });
  }
  const scan: TreeScan = { count: r[0], ops: r[1], full: new DirListing(r[2]), volatile: r[3], xattrs: new TreeXattrs(r[4]) };
  if (o.files === true) scan.files = { paths: r[5], sizes: r[6] };
  return scan;
}

/**
 * Whether some process holds a flock(2) lock on the file: a non-blocking exclusive lock tried on
 * a read-only descriptor and released at once. Undefined without the addon.
 */
export function flockHeld(path: string): boolean | undefined {
  if (!nativeAvailable()) return undefined;
  const a = load();
  return wrap('flock', path, () => a.flockProbe(path));
}

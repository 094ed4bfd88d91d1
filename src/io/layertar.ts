import { closeSync, fsyncSync, lstatSync, openSync, readdirSync, readlinkSync, statSync, writeSync, type BigIntStats } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join, posix } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { TYPE } from '../formats/tar/header.js';
import type { WriteEntry } from '../formats/tar/writer.js';
import { TarReader } from '../formats/tar/reader.js';
import { compressionOf, decompress, fileChunks, headOf } from './streams.js';
import { TarFileWriter } from './tarout.js';
import { devParts } from './walk.js';

/**
 * Layers from files and directories on disk, reproducibly: entries sorted by name, owners 0:0
 * (unless kept), every mtime the same given value, no atime/ctime, no xattrs, no user or group
 * names. What varies between two checkouts of the same files (their owners, times, inode
 * numbers, the directory they sit in) does not reach the tar; modes, contents, symlink targets,
 * hard links and device numbers do.
 */

export interface LayerSource {
  /** A file, directory or symlink on disk. */
  src: string;
  /** Where it goes in the image: an absolute path (a directory's contents go under it). */
  dest: string;
}

export interface LayerBuildOptions {
  /** Seconds since the epoch for every entry. */
  mtime: number;
  keepOwner: boolean;
}

interface Item {
  type: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  abs?: string;
  linkname?: string;
  dev?: [number, number];
  inode?: string;
}

/** `SRC[:DEST]`: DEST is what follows the last `:` when it is an absolute path. */
export function parseLayerArg(flag: string, arg: string): LayerSource {
  const at = arg.lastIndexOf(':');
  let src = arg;
  let dest: string | undefined;
  if (at > 0 && arg[at + 1] === '/') {
    src = arg.slice(0, at);
    dest = arg.slice(at + 1);
  }
  if (src === '') throw new DatarootError('USAGE_BAD_LAYER', `${flag} ${JSON.stringify(arg)}: no source path`);
  let st;
  try {
    st = lstatSync(src);
  } catch {
    throw new DatarootError('PACK_SOURCE_MISSING', `${flag} ${src}: no such file or directory`, { file: src });
  }
  const d = dest ?? (st.isDirectory() ? '/' : `/${basename(src)}`);
  return { src, dest: d.endsWith('/') && !st.isDirectory() ? `${d}${basename(src)}` : d };
}

/** An absolute image path → a tar name without the leading slash; refuses `..`. */
function imagePath(dest: string): string {
  if (!dest.startsWith('/')) throw new DatarootError('USAGE_BAD_LAYER', `destination ${JSON.stringify(dest)} must be an absolute path in the image`);
  if (dest.split('/').includes('..')) throw new DatarootError('USAGE_BAD_LAYER', `destination ${JSON.stringify(dest)} must not contain ..`);
  return posix.normalize(dest).replace(/^\/+/, '').replace(/\/+$/, '');
}

function itemOf(abs: string, st: BigIntStats, o: LayerBuildOptions, warnings: string[]): Item | undefined {
  const base = { mode: Number(st.mode & 0o7777n), uid: o.keepOwner ? Number(st.uid) : 0, gid: o.keepOwner ? Number(st.gid) : 0, size: 0 };
  if (st.isFile()) return { ...base, type: TYPE.REG, size: Number(st.size), abs, ...(st.nlink > 1n ? { inode: `${st.dev}:${st.ino}` } : {}) };
  if (st.isDirectory()) return { ...base, type: TYPE.DIR };
  if (st.isSymbolicLink()) return { ...base, type: TYPE.SYMLINK, linkname: readlinkSync(abs) };
  if (st.isCharacterDevice()) return { ...base, type: TYPE.CHAR, dev: devParts(st.rdev) };
  if (st.isBlockDevice()) return { ...base, type: TYPE.BLOCK, dev: devParts(st.rdev) };
  if (st.isFIFO()) return { ...base, type: TYPE.FIFO };
  warnings.push(`${abs}: a socket cannot go into a tar; left out`);
  return undefined;
}

/** Every entry the sources give, by tar name (later sources replace earlier ones at the same path). */
function collect(sources: LayerSource[], o: LayerBuildOptions, warnings: string[]): Map<string, Item> {
  const items = new Map<string, Item>();
  const parents = (name: string): void => {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!items.has(p)) items.set(p, { type: TYPE.DIR, mode: 0o755, uid: 0, gid: 0, size: 0 });
    }
  };
  const add = (name: string, abs: string): void => {
    let st: BigIntStats;
    try {
      st = lstatSync(abs, { bigint: true });
    } catch {
      throw new DatarootError('PACK_SOURCE_MISSING', `${abs}: no such file or directory`, { file: abs });
    }
    const it = itemOf(abs, st, o, warnings);
    if (it !== undefined && name !== '') {
      parents(name);
      const prev = items.get(name);
      // A directory over a directory keeps what is under it; anything else replaces the subtree.
      if (prev !== undefined && !(prev.type === TYPE.DIR && it.type === TYPE.DIR))
        for (const k of [...items.keys()]) if (k.startsWith(`${name}/`)) items.delete(k);
      items.set(name, it);
    }
    if (st.isDirectory()) {
      let names: string[];
      try {
        names = readdirSync(abs);
      } catch (e) {
        throw new DatarootError('PACK_SOURCE_UNREADABLE', `${abs}: ${(e as Error).message}`, { file: abs });
      }
      for (const n of names) add(name === '' ? n : `${name}/${n}`, join(abs, n));
    }
  };
  for (const s of sources) add(imagePath(s.dest), s.src);
  return items;
}

/** Byte order of UTF-8 names (tar readers do not care; reproducibility does). */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

const te = new TextEncoder();

/**
 * Writes one layer tar from the sources; returns its sha256 (the diffID), size and warnings.
 * Hard links between the files of the layer stay hard links (to the first name in order).
 */
export async function writeLayerTar(
  sources: LayerSource[],
  out: string,
  o: LayerBuildOptions,
): Promise<{ diffId: string; size: number; warnings: string[]; entries: number }> {
  const warnings: string[] = [];
  const items = collect(sources, o, warnings);
  const names = [...items.keys()].sort(byteOrder);
  const w = new TarFileWriter(out);
  try {
    const firstOfInode = new Map<string, string>();
    for (const name of names) {
      const it = items.get(name)!;
      const entry: WriteEntry = {
        name: te.encode(it.type === TYPE.DIR ? `${name}/` : name),
        mode: it.mode,
        uid: it.uid,
        gid: it.gid,
        size: 0,
        mtime: o.mtime,
        type: it.type,
      };
      if (it.linkname !== undefined) entry.linkname = te.encode(it.linkname);
      if (it.dev !== undefined) {
        entry.devmajor = it.dev[0];
        entry.devminor = it.dev[1];
      }
      if (it.type === TYPE.REG && it.inode !== undefined) {
        const first = firstOfInode.get(it.inode);
        if (first !== undefined) {
          await w.add({ ...entry, type: TYPE.LINK, linkname: te.encode(first) });
          continue;
        }
        firstOfInode.set(it.inode, name);
      }
      if (it.type === TYPE.REG) {
        entry.size = it.size;
        try {
          await w.add(entry, it.size === 0 ? undefined : fileChunks(it.abs!));
        } catch (e) {
          throw new DatarootError('PACK_SOURCE_CHANGED', `${it.abs}: ${(e as Error).message} (did it change while being packed?)`, { file: it.abs! });
        }
      } else await w.add(entry);
    }
    const r = w.finish();
    return { diffId: r.digest, size: r.size, warnings, entries: names.length };
  } catch (e) {
    w.abort();
    throw e;
  }
}

/**
 * A layer given as a tar file (plain, gzip, zstd, bzip2 or xz): decompressed into `out`, read to
 * the end as a tar (anything else is refused with PACK_LAYER_NOT_TAR), hashed for its diffID.
 */
export async function copyLayerTar(
  src: string,
  out: string,
  bounds: { maxBytes: number; maxRatio: number },
): Promise<{ diffId: string; size: number; entries: number }> {
  let st;
  try {
    st = statSync(src);
  } catch {
    throw new DatarootError('PACK_SOURCE_MISSING', `${src}: no such file`, { file: src });
  }
  if (!st.isFile()) throw new DatarootError('PACK_LAYER_NOT_TAR', `${src} is not a file`, { file: src });
  const kind = compressionOf(headOf(src, 8));
  const h = createHash('sha256');
  const fd = openSync(out, 'w', 0o644);
  let size = 0;
  let entries = 0;
  try {
    const data = decompress(kind, fileChunks(src), { what: src, inputBytes: st.size, ...bounds });
    const tee = (async function* () {
      for await (const c of data) {
        h.update(c);
        size += c.length;
        let o = 0;
        while (o < c.length) o += writeSync(fd, c, o, c.length - o);
        yield c;
      }
    })();
    const tr = new TarReader(tee);
    try {
      for (let e = await tr.next(); e !== undefined; e = await tr.next()) {
        entries++;
        for await (const _ of tr.data()) {
          /* hashed and written by the tee */
        }
      }
      // Whatever follows the end blocks (record padding) belongs to the layer's bytes too.
      for await (const _ of tee) {
        /* drain */
      }
    } catch (e) {
      if (e instanceof DatarootError && (e.code.startsWith('TAR_') || e.code === 'ARCHIVE_CORRUPT')) {
        throw new DatarootError('PACK_LAYER_NOT_TAR', `${src} is not a tar archive${kind === 'none' ? '' : ` (${kind})`}: ${e.message}`, { file: src });
      }
      throw e;
    }
    if (size === 0) throw new DatarootError('PACK_LAYER_NOT_TAR', `${src} is empty, not a tar archive`, { file: src });
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { diffId: `sha256:${h.digest('hex')}`, size, entries };
}

import { chmodSync, closeSync, lchownSync, linkSync, mkdirSync, openSync, readdirSync, symlinkSync, writeSync, constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { TYPE } from '../formats/tar/header.js';
import type { TarEntry } from '../formats/tar/reader.js';
import { LayerCheck, safeRel, symlinkStaysInside } from '../formats/tar/layercheck.js';

export { safeRel };
import { lutimesNs, lutimesPortable, mknod, mknodPortable, setXattr, S_IFBLK, S_IFCHR, S_IFIFO } from './native.js';
import { removeTree } from './confined.js';

/** How whiteouts (`.wh.NAME`, `.wh..wh..opq`) are applied. */
export type WhiteoutMode =
  /** overlay2: `.wh.NAME` becomes a 0/0 character device, `.wh..wh..opq` the trusted.overlay.opaque xattr. */
  | 'overlay'
  /** vfs (naive drivers): the whiteout is executed, deleting what lower layers put there. */
  | 'delete'
  /** aufs and fuse-overlayfs: whiteouts are kept as they are in the tar (`.wh.NAME` and `.wh..wh..opq` files), names checked. */
  | 'aufs'
  /** A data-root archive: names are data, nothing is interpreted (overlay whiteouts there are devices already). */
  | 'keep';

/**
 * For trees from evidence that are unpacked to be read (a data-root archive), not to be run:
 * setuid/setgid bits are dropped, devices and FIFOs are made with mode 0, file capabilities are
 * not set, owners and privileged xattrs are kept only where the process may set them, symlink
 * targets are data (kept whatever they point to), and bytes and entries are bounded.
 */
export interface EvidenceOptions {
  maxBytes: number;
  maxEntries: number;
  /** Called for what could not be reproduced (a device without privileges, a refused xattr). */
  onSkip?: (what: string) => void;
}

/** Files up to this size are written asynchronously, several at once. */
const SMALL_FILE = 1 << 20;
/** Most bytes of such files held in memory at once. */
const SMALL_BUDGET = 32 << 20;

const WH = '.wh.';
const WH_OPQ = '.wh..wh..opq';
function nsOf(seconds: number): bigint {
  return BigInt(Math.trunc(seconds)) * 1_000_000_000n;
}

/**
 * Applies the entries of a layer tar to a directory the way dockerd's ApplyDiff does: names
 * cleaned and kept inside the root, parents created 0755, an existing path replaced unless both
 * are directories, owners, modes, xattrs and times from the headers (directory times last),
 * hard links inside the layer, device nodes and FIFOs by mknod, whiteouts per driver. No path is
 * ever written through a symlink. Tracks the size dockerd records for an overlay2 layer
 * (directory.Size: non-directories with size > 0, hard links once).
 */
export class LayerExtractor {
  /** Sum of the sizes of regular files and symlinks written (each inode once). */
  duSize = 0;
  /** Sum of the tar headers' sizes (what vfs records). */
  tarSize = 0;
  entries = 0;
  private readonly realDirs = new Set<string>(['']);
  /**
   * What exists under the root, by relative path (true for a directory): what was there at the
   * start (empty for an overlay2 diff, the parent's copy for vfs) plus what was written since. It
   * answers "does this path exist" without an lstat, which blocks on the directory lock while the
   * thread pool creates files in it.
   */
  private readonly present: Map<string, boolean>;
  private readonly unpacked = new Set<string>();
  private readonly dirTimes: { rel: string; atime: bigint; mtime: bigint }[] = [];
  /** Small files being written on the thread pool, by path (file creation is the slow part). */
  private readonly inflight = new Map<string, Promise<void>>();
  private inflightBytes = 0;
  private failure: unknown;

  constructor(
    readonly root: string,
    readonly whiteouts: WhiteoutMode,
    existing: Map<string, boolean> = new Map(),
    private readonly concurrency = 8,
    private readonly evidence?: EvidenceOptions,
  ) {
    this.present = existing;
    this.rules = new LayerCheck(whiteouts !== 'keep', evidence === undefined ? 'inside' : 'any', new Map(existing));
  }

  /** The rules every entry is checked against first (shared with `verify ARCHIVE`). */
  private readonly rules: LayerCheck;

  /** Bytes of file data written (the evidence budget counts them). */
  private dataBytes = 0;

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  private check(): void {
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows a worker's error, as caught
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for the write of one path, if it is in flight. */
  private async settle(rel: string): Promise<void> {
    const p = this.inflight.get(rel);
    if (p !== undefined) await p;
    this.check();
  }

  /** Waits for every write in flight. */
  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight.values()]);
    this.check();
  }

  /** Makes sure every ancestor of rel is a real directory (not a symlink), creating missing ones. */
  private parents(rel: string): void {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === '' ? parts[i]! : `${cur}/${parts[i]!}`;
      if (this.realDirs.has(cur)) continue;
      const isDir = this.present.get(cur);
      if (isDir === undefined) {
        mkdirSync(this.abs(cur), { mode: 0o755 });
        this.present.set(cur, true);
      } else if (!isDir)
        throw new DatarootError(
          'ARCHIVE_LAYER_UNSAFE',
          `${JSON.stringify(rel)} goes through ${JSON.stringify(cur)}, which is not a directory (a symlink would lead outside the layer)`,
        );
      this.realDirs.add(cur);
    }
  }

  private forget(rel: string): void {
    const under = `${rel}/`;
    for (const d of [...this.realDirs]) if (d === rel || d.startsWith(under)) this.realDirs.delete(d);
    if (this.present.get(rel) === true) for (const k of [...this.present.keys()]) if (k.startsWith(under)) this.present.delete(k);
    this.present.delete(rel);
  }

  private async removeAll(rel: string): Promise<void> {
    if (rel === '') return;
    if (this.inflight.size > 0) await this.drain();
    this.forget(rel);
    removeTree(this.abs(rel));
  }

  /** Times of a path: evidence is unpacked without the addon too (to the microsecond); a layer written into a root needs it. */
  private setTimes(path: string, atime: bigint, mtime: bigint): void {
    if (this.evidence === undefined) lutimesNs(path, atime, mtime);
    else lutimesPortable(path, atime, mtime);
  }

  /** Owner, xattrs, mode and times as the header says (a directory's times are set at the end). */
  private meta(rel: string, e: TarEntry): void {
    const path = this.abs(rel);
    const ev = this.evidence;
    // Evidence never sets the mode, owner or times of the private directory it is unpacked into.
    if (ev !== undefined && rel === '') return;
    try {
      lchownSync(path, e.uid, e.gid);
    } catch (err) {
      if (ev === undefined || (err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    }
    for (const [k, v] of e.xattrs) {
      // File capabilities grant privileges as setuid does: evidence never gets them.
      if (ev !== undefined && k === 'security.capability') {
        ev.onSkip?.(`${rel}: security.capability not set`);
        continue;
      }
      try {
        setXattr(path, k, v);
      } catch (err) {
        if (err instanceof DatarootError && (err.code === 'IO_ENOTSUP' || err.code === 'IO_EOPNOTSUPP')) continue;
        if (ev !== undefined && err instanceof DatarootError && err.code === 'IO_EPERM') {
          ev.onSkip?.(`${rel}: xattr ${k} not set (no privilege)`);
          continue;
        }
        // Without the addon no xattr can be set, nor read back: the commands that need them say so.
        if (ev !== undefined && err instanceof DatarootError && err.code === 'IO_NATIVE_UNAVAILABLE') {
          ev.onSkip?.(`${rel}: xattr ${k} not set (no native addon)`);
          continue;
        }
        throw err;
      }
    }
    const isNode = e.type === TYPE.CHAR || e.type === TYPE.BLOCK || e.type === TYPE.FIFO;
    const mode = ev === undefined ? e.mode & 0o7777 : isNode ? 0 : e.mode & 0o1777;
    if (e.type !== TYPE.SYMLINK) chmodSync(path, mode);
    const mtime = e.mtimeNs ?? nsOf(e.mtime);
    const atime = e.atimeNs !== undefined && e.atimeNs > mtime ? e.atimeNs : mtime;
    if (e.type === TYPE.DIR) this.dirTimes.push({ rel, atime, mtime });
    else this.setTimes(path, atime, mtime);
  }

  /**
   * A small regular file written asynchronously (open, write and close on the thread pool, several
   * at once: creating files dominates a layer's extraction), then its metadata set. Bounded in
   * count and bytes.
   */
  private async writeLater(rel: string, data: Buffer, e: TarEntry): Promise<void> {
    while (this.inflight.size >= this.concurrency || this.inflightBytes > SMALL_BUDGET) await Promise.race(this.inflight.values());
    this.check();
    this.inflightBytes += data.length;
    const job = (async () => {
      const fh = await open(this.abs(rel), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        let off = 0;
        while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
      } finally {
        await fh.close();
      }
      this.meta(rel, e);
    })()
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => {
        this.inflight.delete(rel);
        this.inflightBytes -= data.length;
      });
    this.inflight.set(rel, job);
  }

  /** One entry; `data` must be read for regular files (it is the entry's content). */
  async apply(e: TarEntry, data: AsyncIterable<Uint8Array>): Promise<void> {
    this.check();
    this.entries++;
    this.tarSize += e.size;
    const ev = this.evidence;
    if (ev !== undefined) {
      if (this.entries > ev.maxEntries)
        throw new DatarootError('ARCHIVE_TOO_LARGE', `the archive has more than ${ev.maxEntries} entries (raise the bound with --unpack-limit)`);
      this.dataBytes += e.dataSize;
      if (this.dataBytes > ev.maxBytes)
        throw new DatarootError('ARCHIVE_TOO_LARGE', `the archive unpacks to more than ${ev.maxBytes} bytes (raise the bound with --unpack-limit)`);
    }
    if (e.type === TYPE.PAX_GLOBAL) return;
    this.rules.entry(e);
    const rel = safeRel(e.name);
    const base = rel.split('/').pop() ?? '';
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    if ((this.whiteouts === 'overlay' || this.whiteouts === 'delete') && base.startsWith(WH)) {
      this.parents(rel);
      if (base === WH_OPQ) {
        if (this.whiteouts === 'overlay') setXattr(this.abs(parentRel), 'trusted.overlay.opaque', new Uint8Array([0x79]));
        else await this.opaque(parentRel);
        return;
      }
      const target = parentRel === '' ? base.slice(WH.length) : `${parentRel}/${base.slice(WH.length)}`;
      await this.removeAll(target);
      if (this.whiteouts === 'overlay') {
        mknod(this.abs(target), S_IFCHR, 0, 0);
        if (e.uid !== 0 || e.gid !== 0) lchownSync(this.abs(target), e.uid, e.gid);
      }
      return;
    }
    if (rel !== '') this.parents(rel);
    const path = this.abs(rel);
    await this.settle(rel);
    const existingDir = rel === '' ? true : this.present.get(rel);
    if (existingDir !== undefined && !(existingDir && e.type === TYPE.DIR)) {
      if (rel === '') throw new DatarootError('ARCHIVE_LAYER_UNSAFE', 'the layer replaces its own root directory with a non-directory');
      await this.removeAll(rel);
    }
    if (this.whiteouts === 'delete') this.unpacked.add(rel);
    if (rel !== '') this.present.set(rel, e.type === TYPE.DIR);
    switch (e.type) {
      case TYPE.DIR:
        if (existingDir !== true) mkdirSync(path, { mode: 0o755 });
        this.realDirs.add(rel);
        break;
      case TYPE.REG:
      case TYPE.CONT: {
        this.duSize += e.size;
        if (e.size <= SMALL_FILE) {
          const parts: Uint8Array[] = [];
          for await (const c of data) parts.push(c);
          await this.writeLater(rel, Buffer.concat(parts), e);
          return;
        }
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          for await (const c of data) {
            let off = 0;
            while (off < c.length) off += writeSync(fd, c, off, c.length - off);
          }
        } finally {
          closeSync(fd);
        }
        break;
      }
      case TYPE.SYMLINK: {
        const target = Buffer.from(e.linkname).toString('utf8');
        if (ev === undefined && !symlinkStaysInside(rel, target))
          throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `symlink ${JSON.stringify(rel)} -> ${JSON.stringify(target)} leads outside the layer`);
        symlinkSync(Buffer.from(e.linkname), path);
        this.duSize += e.linkname.length;
        break;
      }
      case TYPE.LINK: {
        const targetRel = safeRel(e.linkname);
        if (targetRel === '') throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `hard link ${JSON.stringify(rel)} points at the layer root`);
        const target = this.abs(targetRel);
        await this.settle(targetRel);
        const targetIsDir = this.present.get(targetRel);
        if (targetIsDir === undefined)
          throw new DatarootError(
            'ARCHIVE_LAYER_INVALID',
            `hard link ${JSON.stringify(rel)} points to ${JSON.stringify(targetRel)}, which is not in the layer`,
          );
        if (targetIsDir) throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `hard link ${JSON.stringify(rel)} points to a directory`);
        this.parents(targetRel);
        linkSync(target, path);
        return; // a hard link shares the target's inode, owner, mode and times
      }
      case TYPE.CHAR:
      case TYPE.BLOCK:
      case TYPE.FIFO: {
        const kind = e.type === TYPE.CHAR ? S_IFCHR : e.type === TYPE.BLOCK ? S_IFBLK : S_IFIFO;
        try {
          // Evidence is unpacked without the addon too (mknod(1)); a layer written into a root needs it.
          (ev === undefined ? mknod : mknodPortable)(path, kind | (ev === undefined ? e.mode & 0o7777 : 0), e.devmajor, e.devminor);
        } catch (err) {
          if (ev === undefined || !(err instanceof DatarootError && err.code === 'IO_EPERM')) throw err;
          ev.onSkip?.(`${rel}: device ${e.devmajor}/${e.devminor} not created (no privilege)`);
          this.present.delete(rel);
          return;
        }
        break;
      }
      default:
        throw new DatarootError(
          'ARCHIVE_LAYER_INVALID',
          `entry ${JSON.stringify(rel)} has tar type ${JSON.stringify(String.fromCharCode(e.type))}, which dockerd does not extract`,
        );
    }
    this.meta(rel, e);
  }

  /** `.wh..wh..opq` on a naive driver: remove what lower layers left in the directory (recursively). */
  private async opaque(dirRel: string): Promise<void> {
    await this.drain();
    let names: string[];
    try {
      names = readdirSync(this.abs(dirRel));
    } catch {
      return;
    }
    for (const n of names) {
      const rel = dirRel === '' ? n : `${dirRel}/${n}`;
      if (!this.unpacked.has(rel)) await this.removeAll(rel);
      else if (this.present.get(rel) === true) await this.opaque(rel);
    }
  }

  /** Waits for the writes in flight, then sets directory times (entries created inside change them). */
  async finish(): Promise<void> {
    await this.drain();
    for (const d of this.dirTimes.reverse()) this.setTimes(this.abs(d.rel), d.atime, d.mtime);
  }

  /** Waits for the writes in flight, ignoring their errors (before removing a refused layer). */
  async abort(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }
}

import { goTarHeader } from '../formats/tar/goheader.js';
import { TYPE } from '../formats/tar/header.js';
import { DatarootError } from '../formats/errors.js';
import { shownPath, type ByteStr } from '../io/rawtree.js';
import { cleanupOnSignal } from '../io/cleanup.js';
import type { TarOut } from '../io/tarsink.js';
import { TreeWriter, type NotPreserved } from '../io/treewriter.js';
import { fileType, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, walkView, type EntryStat, type ViewLayer } from '../store/mergedview.js';
import type { Problem } from '../store/problems.js';
import { NameLookup, type TargetView } from './views.js';

/**
 * Offline `docker export`: the merged file system of a container (or of an image, as `docker
 * create` leaves it) streamed as the tar moby's pkg/archive TarWithOptions writes from the mounted
 * layer: every entry but the root, in filepath.Walk order; names relative, directories with a
 * trailing slash; modes with the file type bits; times truncated to seconds, no atime or ctime;
 * user and group names from the container's own /etc/passwd and /etc/group (docker-tar runs
 * chrooted there); a file with several links written once and then as hard links to its first
 * name; security.capability as a PAX record (version 3 turned into 2); sockets left out.
 */

export interface ExportItem {
  path: ByteStr;
  stat: EntryStat & { atimeMs?: number };
  layer: ViewLayer;
  type: number;
  /** The name of the first entry of this inode, for a hard link. */
  hardlinkTo?: ByteStr;
  linkTarget?: ByteStr;
  capability?: Buffer;
}

export interface ExportSummary {
  target: { kind: 'container' | 'image'; id: string; name: string };
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  /** Bytes of file contents. */
  bytes: number;
  /** Sockets are left out, as docker export leaves them out. */
  socketsLeftOut: number;
  problems: Problem[];
}

const CAP = 'security.capability';

/** moby's ReadSecurityXattrToTarHeader: a version-3 capability (with a root uid) is written as version 2. */
export function exportedCapability(v: Buffer | undefined): Buffer | undefined {
  if (v === undefined) return undefined;
  if (v.length > 3 && v[3] === 3) {
    const c = Buffer.from(v.subarray(0, 20));
    c[3] = 2;
    return c;
  }
  return v;
}

/** The entries of a view with what the archive needs of each (hard links, link targets, capabilities). */
export function* exportItems(layers: readonly ViewLayer[], summary: ExportSummary): Generator<ExportItem> {
  const seen = new Map<string, ByteStr>();
  for (const e of walkView(layers)) {
    const type = fileType(e.stat);
    if (type === S_IFSOCK) {
      summary.socketsLeftOut++;
      continue;
    }
    const layer = layers[e.layer]!;
    const item: ExportItem = { path: e.path, stat: e.stat, layer, type };
    const cap = exportedCapability(layer.xattr(e.path, CAP));
    if (cap !== undefined) item.capability = cap;
    if (type === S_IFLNK) item.linkTarget = layer.readlink(e.path);
    if (type !== S_IFDIR && e.stat.nlink > 1) {
      const key = layer.inode(e.path);
      const first = seen.get(key);
      if (first !== undefined) item.hardlinkTo = first;
      else seen.set(key, e.path);
    }
    summary.entries++;
    if (item.hardlinkTo !== undefined) summary.hardlinks++;
    else if (type === S_IFREG) {
      summary.files++;
      summary.bytes += e.stat.size;
    } else if (type === S_IFDIR) summary.dirs++;
    else if (type === S_IFLNK) summary.symlinks++;
    yield item;
  }
}

const TYPEFLAG: Record<number, number> = {
  [S_IFREG]: TYPE.REG,
  [S_IFDIR]: TYPE.DIR,
  [S_IFLNK]: TYPE.SYMLINK,
  [S_IFCHR]: TYPE.CHAR,
  [S_IFBLK]: TYPE.BLOCK,
  [S_IFIFO]: TYPE.FIFO,
};

/** Linux's major and minor of a device number (as golang.org/x/sys/unix splits it). */
export function devParts(rdev: number): [number, number] {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return [major, minor];
}

function latin1(s: ByteStr): Uint8Array {
  return Buffer.from(s, 'latin1');
}

function newSummary(v: TargetView): ExportSummary {
  return {
    target: { ...v.target },
    entries: 0,
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    bytes: 0,
    socketsLeftOut: 0,
    problems: [],
  };
}

/** Turns the event loop now and then, so that a signal's cleanup can run during a long export. */
class Breather {
  private bytes = 0;
  private entries = 0;
  async tick(bytes: number): Promise<void> {
    this.bytes += bytes;
    if (++this.entries < 4096 && this.bytes < 64 << 20) return;
    this.bytes = 0;
    this.entries = 0;
    await new Promise((r) => setImmediate(r));
  }
}

/** Streams the export of a target's view into a tar sink. */
export async function exportTar(view: TargetView, sink: TarOut): Promise<ExportSummary> {
  const summary = newSummary(view);
  const breathe = new Breather();
  const { layers, problems } = view;
  summary.problems.push(...problems);
  const names = new NameLookup(layers);
  try {
    await tarItems(layers, summary, names, sink, breathe);
  } catch (e) {
    // Writes may still be in flight on the thread pool: none may land after the caller closes the output.
    await sink.settle();
    throw e;
  }
  return summary;
}

async function tarItems(layers: Parameters<typeof exportItems>[0], summary: ExportSummary, names: NameLookup, sink: TarOut, breathe: Breather): Promise<void> {
  for (const it of exportItems(layers, summary)) {
    const st = it.stat;
    const isDir = it.type === S_IFDIR;
    const hard = it.hardlinkTo !== undefined;
    const [major, minor] = it.type === S_IFCHR || it.type === S_IFBLK ? devParts(st.rdev) : [0, 0];
    const header = goTarHeader({
      name: latin1(isDir ? `${it.path}/` : it.path),
      linkname: latin1(hard ? it.hardlinkTo! : (it.linkTarget ?? '')),
      mode: st.mode & 0o177777,
      uid: st.uid,
      gid: st.gid,
      size: it.type === S_IFREG && !hard ? st.size : 0,
      mtime: Math.floor(st.mtimeMs / 1000),
      type: hard ? TYPE.LINK : TYPEFLAG[it.type]!,
      uname: latin1(names.user(st.uid)),
      gname: latin1(names.group(st.gid)),
      devmajor: major,
      devminor: minor,
      ...(it.capability !== undefined ? { xattrs: new Map([[CAP, it.capability]]) } : {}),
    });
    await sink.put(header);
    if (it.type === S_IFREG && !hard && st.size > 0) {
      const f = it.layer.open(it.path);
      if (f.size !== st.size) {
        f.close();
        throw new DatarootError(
          'EXPORT_SOURCE_CHANGED',
          `${it.layer.where(it.path) ?? shownPath(it.path)} changed size while it was read (${st.size} then ${f.size} bytes)`,
        );
      }
      // The sink closes the file when its bytes are in.
      await sink.data(f, st.size, it.layer.where(it.path) ?? shownPath(it.path));
    }
    await breathe.tick(st.size);
  }
  await sink.end();
}

export interface DirExportSummary extends ExportSummary {
  notPreserved: NotPreserved;
}

/** Writes the export of a target's view into a new or empty directory; what was written is removed on failure or a signal. */
export async function exportDir(view: TargetView, target: string): Promise<DirExportSummary> {
  const summary = newSummary(view);
  const { layers, problems } = view;
  summary.problems.push(...problems);
  const w = new TreeWriter(target);
  const unregister = cleanupOnSignal(() => w.abort());
  const breathe = new Breather();
  try {
    for (const it of exportItems(layers, summary)) {
      const st = it.stat;
      const attrs = { mode: st.mode, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, atimeMs: st.atimeMs ?? st.mtimeMs };
      if (it.hardlinkTo !== undefined) w.hardlink(it.path, it.hardlinkTo);
      else if (it.type === S_IFDIR) w.dir(it.path, attrs);
      else if (it.type === S_IFLNK) w.symlink(it.path, it.linkTarget!, attrs);
      else if (it.type === S_IFREG) {
        if (st.size === 0) w.file(it.path, attrs, undefined, 0, it.capability);
        else {
          const f = it.layer.open(it.path);
          try {
            if (f.size !== st.size)
              throw new DatarootError(
                'EXPORT_SOURCE_CHANGED',
                `${it.layer.where(it.path) ?? shownPath(it.path)} changed size while it was read (${st.size} then ${f.size} bytes)`,
              );
            w.file(it.path, attrs, f.fd, st.size, it.capability);
          } finally {
            f.close();
          }
        }
      } else {
        const [major, minor] = devParts(st.rdev);
        w.special(it.path, it.type, attrs, major, minor);
      }
      await breathe.tick(st.size);
    }
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  } finally {
    unregister();
  }
  return { ...summary, notPreserved: { ...w.skipped, sockets: summary.socketsLeftOut } };
}

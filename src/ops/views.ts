import { readSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import type { ByteStr } from '../io/rawtree.js';
import type { ContainerRecord } from '../store/containers.js';
import type { ImageRecord } from '../store/images.js';
import type { Store } from '../store/model.js';
import {
  DiskLayer,
  isDirStat,
  resolveInView,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  VirtualLayer,
  type EntryStat,
  type ViewLayer,
  type VirtualNode,
} from '../store/mergedview.js';
import { problem, type Problem } from '../store/problems.js';

/**
 * The views `export`, `mount` and `find` work on: a container's (its read-write layer over its
 * init layer and image layers, as dockerd mounts it), and an image's as `docker create` leaves it
 * (the image layers under the init layer dockerd makes for a new container, and the working
 * directory it creates).
 */

export interface Target {
  kind: 'container' | 'image';
  id: string;
  /** The container's name or the image's first tag (or short ID). */
  name: string;
  container?: ContainerRecord;
  image?: ImageRecord;
}

/** A container by ID, name or prefix (as docker export takes it), else an image by reference or ID. */
export function findTarget(store: Store, q: string): Target {
  const c = store.lookupContainer(q);
  if (c.container !== undefined)
    return { kind: 'container', id: c.container.id, name: (c.container.config?.Name ?? '').replace(/^\//, ''), container: c.container };
  const i = store.lookupImage(q);
  if (i.image !== undefined) {
    const tag = store.refsOf(i.image.id)[0];
    return { kind: 'image', id: i.image.id, name: tag !== undefined ? tag.familiar : i.image.hex.slice(0, 12), image: i.image };
  }
  if (c.error?.code === 'CONTAINER_AMBIGUOUS') throw new DatarootError(c.error.code, c.error.message);
  if (i.error?.code === 'IMAGE_AMBIGUOUS') throw new DatarootError(i.error.code, i.error.message);
  throw new DatarootError('TARGET_NOT_FOUND', `No such container or image: ${q}`, {});
}

export function contentUnsupported(store: Store): DatarootError {
  return new DatarootError(
    'STORE_DRIVER_CONTENT_UNSUPPORTED',
    `the ${store.driver} driver keeps its layers where they cannot be read offline (${store.driver === 'zfs' ? 'its datasets are mounted only while dockerd runs' : store.driver === 'devicemapper' ? 'thin devices of a device-mapper pool' : 'not as plain directories'})`,
    { driver: store.driver },
  );
}

/** The layer directories of a driver id (mount-id or cache-id), topmost first, each checked to be a real directory. */
export function stackDirs(store: Store, id: string, what: string): { dirs: string[]; rules: DiskLayer['rules'] } {
  const a = store.adapter;
  if (a.content === 'none' || a.contentDir(store.fs, id) === undefined) throw contentUnsupported(store);
  const { dirs, whiteouts, problems } = a.viewDirs(store.fs, id);
  const bad = problems[0];
  if (bad !== undefined) throw new DatarootError(bad.code, bad.message, { file: store.shown(bad.path ?? '') });
  dirs.forEach((d, i) => {
    const k = store.fs.kind(d);
    if (k === 'symlink') throw store.fs.symlinkError(d);
    if (k !== 'dir')
      throw new DatarootError(
        k === 'missing' ? 'LAYER_DIR_MISSING' : 'PATH_NOT_A_DIRECTORY',
        `${i === 0 ? what : 'lower layer'} ${store.shown(d)} is ${k === 'missing' ? 'missing' : `a ${k}`}`,
        { file: store.shown(d) },
      );
  });
  return { dirs, rules: whiteouts };
}

/** The mount-id of a container's read-write layer. */
export function mountIdOf(store: Store, c: ContainerRecord): { mountId: string; initId?: string } {
  const mount = store.mountOf(c.id);
  if (mount?.mountId === undefined) {
    const why = mount?.problems.find((p) => p.code === 'ID_INVALID');
    if (why !== undefined) throw new DatarootError('ID_INVALID', `container ${c.id}: ${why.message}`, { file: store.shown(why.path ?? '') });
    throw new DatarootError('CONTAINER_LAYER_MISSING', `container ${c.id} has no read-write layer (layerdb/mounts/${c.id}/mount-id)`);
  }
  return { mountId: mount.mountId, ...(mount.initId !== undefined ? { initId: mount.initId } : {}) };
}

/** The layers of a container's view, as dockerd mounts its read-write layer. */
export function containerLayers(store: Store, c: ContainerRecord): ViewLayer[] {
  const { mountId } = mountIdOf(store, c);
  const { dirs, rules } = stackDirs(store, mountId, 'the container layer');
  return dirs.map((d) => new DiskLayer(store.fs, d, rules));
}

/** The cache-id of an image's top layer, or undefined for an image with no layers. */
export function topCacheId(store: Store, img: ImageRecord): string | undefined {
  if (img.chainId === undefined) {
    if (img.diffIds.length === 0) return undefined;
    throw new DatarootError('IMAGE_CONFIG_INVALID', `image ${img.id} has no valid layer chain`);
  }
  const l = store.layers.get(img.chainId);
  if (l === undefined) throw new DatarootError('LAYER_MISSING', `layer ${img.chainId} of image ${img.id} is not in layerdb`);
  if (l.cacheId === undefined)
    throw new DatarootError(l.problems[0]?.code ?? 'LAYER_METADATA_INVALID', `layer ${img.chainId}: ${l.problems[0]?.message ?? 'no cache-id'}`);
  return l.cacheId;
}

/** The layers of an image alone (topmost first). */
export function imageLayers(store: Store, img: ImageRecord): ViewLayer[] {
  const top = topCacheId(store, img);
  if (top === undefined) return [];
  const { dirs, rules } = stackDirs(store, top, 'the image layer');
  return dirs.map((d) => new DiskLayer(store.fs, d, rules));
}

const INIT_PATHS: [string, string][] = [
  ['dev/pts', 'dir'],
  ['dev/shm', 'dir'],
  ['proc', 'dir'],
  ['sys', 'dir'],
  ['.dockerenv', 'file'],
  ['etc/resolv.conf', 'file'],
  ['etc/hosts', 'file'],
  ['etc/hostname', 'file'],
  ['dev/console', 'file'],
  ['etc/mtab', '/proc/mounts'],
];

function newStat(type: number, perm: number, now: number, size = 0): EntryStat & { atimeMs: number } {
  return { mode: type | perm, uid: 0, gid: 0, size, mtimeMs: now, atimeMs: now, nlink: 1, ino: 0, dev: 0, rdev: 0 };
}

/**
 * What `docker create` adds over an image: dockerd's init layer (initlayer.Setup: /dev/pts,
 * /dev/shm, /proc, /sys, empty /.dockerenv, /etc/resolv.conf, /etc/hosts, /etc/hostname,
 * /dev/console, /etc/mtab -> /proc/mounts; every non-directory on the way unlinked first, new
 * directories 0755 root) and the working directory (SetupWorkingDirectory: created 0755 root,
 * symlinks on the way followed inside the root). New entries get the time `now`.
 */
export function dockerCreateLayer(below: readonly ViewLayer[], workingDir: string | undefined, now: number, problems: Problem[]): VirtualLayer {
  const v = new VirtualLayer('the init layer and working directory docker create adds');
  const layers = [v, ...below];
  const childMap = (n: VirtualNode): Map<ByteStr, VirtualNode> => {
    if (n.kind !== 'dir' && n.kind !== 'keep') throw new DatarootError('INTERNAL', 'not a directory');
    return n.children;
  };
  /** The node of a directory path in the virtual layer, made as 'keep' (exists below) or 'dir' (new) on the way. */
  const dirNode = (parts: string[]): VirtualNode => {
    let n: VirtualNode = v.root;
    let path = '';
    for (const p of parts) {
      path = path === '' ? p : `${path}/${p}`;
      const kids = childMap(n);
      let c = kids.get(p);
      if (c === undefined || (c.kind !== 'dir' && c.kind !== 'keep')) {
        const r = resolveInView(layers.slice(1), path);
        const parentNew = n.kind === 'dir';
        c =
          !parentNew && c === undefined && r.found !== undefined && isDirStat(r.found.stat)
            ? { kind: 'keep', children: new Map() }
            : { kind: 'dir', stat: newStat(S_IFDIR, 0o755, now), children: new Map() };
        kids.set(p, c);
      }
      n = c;
    }
    return n;
  };
  for (const [path, typ] of INIT_PATHS) {
    const parts = path.split('/');
    // Every non-directory on the way is unlinked (the final one too), then what is missing is made.
    let existsAsDir = true;
    for (let k = 0; k < parts.length; k++) {
      const r = resolveInView(layers, parts.slice(0, k + 1).join('/'));
      if (r.found === undefined || !isDirStat(r.found.stat)) {
        existsAsDir = false;
        break;
      }
    }
    if (existsAsDir) continue;
    const parent = dirNode(parts.slice(0, -1));
    const name = parts[parts.length - 1]!;
    const node: VirtualNode =
      typ === 'dir'
        ? { kind: 'dir', stat: newStat(S_IFDIR, 0o755, now), children: new Map() }
        : typ === 'file'
          ? { kind: 'file', stat: newStat(S_IFREG, 0o755, now) }
          : { kind: 'symlink', stat: newStat(S_IFLNK, 0o777, now, typ.length), target: typ };
    childMap(parent).set(name, node);
  }
  if (workingDir !== undefined && workingDir !== '') {
    const parts = resolveScoped(layers, workingDir);
    if (parts === undefined)
      problems.push(
        problem('WORKDIR_NOT_A_DIRECTORY', `the working directory ${workingDir} is not a directory in the image: docker create would refuse this image`),
      );
    else dirNode(parts);
  }
  return v;
}

/**
 * A path resolved inside the view as FollowSymlinkInScope resolves it (symlinks followed, never
 * above the root, at most 255 of them); the components, or undefined when a non-directory is on
 * the way. Missing components are kept as they are (MkdirAll makes them).
 */
export function resolveScoped(layers: readonly ViewLayer[], path: string): string[] | undefined {
  const todo = path.split('/').filter((p) => p !== '' && p !== '.');
  const out: string[] = [];
  let links = 0;
  let missing = false;
  while (todo.length > 0) {
    const p = todo.shift()!;
    if (p === '..') {
      out.pop();
      continue;
    }
    out.push(p);
    if (missing) continue;
    const r = resolveInView(layers, out.join('/'));
    if (r.found === undefined) {
      missing = true;
      continue;
    }
    const st = r.found.stat;
    if ((st.mode & 0o170000) === S_IFLNK) {
      if (++links > 255) return undefined;
      const target = layers[r.found.layer]!.readlink(out.join('/'));
      out.pop();
      if (target.startsWith('/')) out.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    if (!isDirStat(st)) return undefined;
  }
  return out;
}

/** Reads a regular file of a view (symlinks followed inside the view, as a chroot would), at most `max` bytes. */
export function readInView(layers: readonly ViewLayer[], path: string, max: number): Buffer | undefined {
  const parts = resolveFile(layers, path);
  if (parts === undefined) return undefined;
  const r = resolveInView(layers, parts);
  if (r.found === undefined || (r.found.stat.mode & 0o170000) !== S_IFREG) return undefined;
  const f = layers[r.found.layer]!.open(parts);
  try {
    if (f.size > max) return undefined;
    const buf = Buffer.allocUnsafe(f.size);
    let got = 0;
    while (got < f.size) {
      const n = readSyncAt(f.fd, buf, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    f.close();
  }
}

function readSyncAt(fd: number, buf: Buffer, at: number): number {
  return readSync(fd, buf, at, buf.length - at, at);
}

/** A file path resolved through symlinks in scope (the last component too); undefined when not found. */
function resolveFile(layers: readonly ViewLayer[], path: string): ByteStr | undefined {
  let cur = path;
  for (let i = 0; i < 40; i++) {
    const parts = resolveScoped(layers, cur.split('/').slice(0, -1).join('/'));
    if (parts === undefined) return undefined;
    const full = [...parts, cur.split('/').pop()!].join('/');
    const r = resolveInView(layers, full);
    if (r.found === undefined) return undefined;
    if ((r.found.stat.mode & 0o170000) !== S_IFLNK) return full;
    const t = layers[r.found.layer]!.readlink(full);
    cur = t.startsWith('/') ? t.slice(1) : [...parts, t].join('/');
  }
  return undefined;
}

/**
 * User and group names by ID, as Go's os/user finds them in the container's /etc/passwd and
 * /etc/group (moby's docker-tar runs chrooted in the container's root): the first line with the
 * ID, cached.
 */
export class NameLookup {
  private users: Map<number, ByteStr> | undefined;
  private groups: Map<number, ByteStr> | undefined;
  constructor(private readonly layers: readonly ViewLayer[]) {}
  private load(file: string): Map<number, ByteStr> {
    const m = new Map<number, ByteStr>();
    let data: Buffer | undefined;
    try {
      data = readInView(this.layers, file, 64 << 20);
    } catch (e) {
      if (!(e instanceof DatarootError)) throw e;
    }
    if (data === undefined) return m;
    for (const line of data.toString('latin1').split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const f = line.split(':');
      if (f.length < 3 || !/^\d{1,10}$/.test(f[2]!)) continue;
      const id = Number(f[2]);
      if (!m.has(id)) m.set(id, f[0]!);
    }
    return m;
  }
  user(uid: number): ByteStr {
    this.users ??= this.load('etc/passwd');
    return this.users.get(uid) ?? '';
  }
  group(gid: number): ByteStr {
    this.groups ??= this.load('etc/group');
    return this.groups.get(gid) ?? '';
  }
}

/**
 * Without CAP_SYS_ADMIN the kernel hides `trusted.*` xattrs: overlay's opaque directories
 * (trusted.overlay.opaque) cannot be seen, and a view read so may show what they hide.
 */
export function trustedXattrProblem(layers: readonly ViewLayer[]): Problem | undefined {
  if (process.getuid?.() === 0) return undefined;
  const rules = layers.find((l): l is DiskLayer => l instanceof DiskLayer)?.rules;
  if (rules === undefined || layers.filter((l) => l instanceof DiskLayer).length < 2 || !rules.opaqueXattrs.some((x) => x.startsWith('trusted.')))
    return undefined;
  return problem(
    'XATTR_TRUSTED_UNREADABLE',
    'not root: opaque directories (trusted.overlay.opaque) cannot be read, so what they hide in lower layers may show; run as root for an exact view',
  );
}

/** The view of a target: for a container its layers; for an image, its layers under what docker create adds. */
export function targetLayers(store: Store, t: Target, now = Date.now()): { layers: ViewLayer[]; problems: Problem[] } {
  const problems: Problem[] = [];
  if (t.container !== undefined) {
    const layers = containerLayers(store, t.container);
    const p = trustedXattrProblem(layers);
    return { layers, problems: p !== undefined ? [p] : [] };
  }
  const img = t.image!;
  if (store.adapter.content === 'none') throw contentUnsupported(store);
  const below = imageLayers(store, img);
  const wd = img.config?.config?.['WorkingDir'];
  const init = dockerCreateLayer(below, typeof wd === 'string' ? wd : undefined, now, problems);
  const p = trustedXattrProblem(below);
  if (p !== undefined) problems.push(p);
  return { layers: [init, ...below], problems };
}

/** What export works on: the target, the layers of its view (topmost first), and what is wrong with it. */
export interface TargetView {
  target: { kind: 'container' | 'image'; id: string; name: string };
  layers: ViewLayer[];
  problems: Problem[];
}

/** The view of a container (or else an image) of a graphdriver store, by ID, name or reference. */
export function graphView(store: Store, q: string, now = Date.now()): TargetView {
  const t = findTarget(store, q);
  const { layers, problems } = targetLayers(store, t, now);
  return { target: { kind: t.kind, id: t.id, name: t.name }, layers, problems };
}

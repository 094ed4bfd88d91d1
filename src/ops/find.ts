import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { globToRegExp } from '../formats/glob.js';
import { shownPath, type ByteStr } from '../io/rawtree.js';
import {
  DiskLayer,
  fileType,
  isDirStat,
  resolveInView,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  walkView,
  type EntryStat,
  type ViewEntry,
} from '../store/mergedview.js';
import type { Confined } from '../io/confined.js';
import type { ContainerRecord } from '../store/containers.js';
import type { Store } from '../store/model.js';
import { WHITEOUTS, type WhiteoutRules } from '../store/rootfs.js';
import type { Problem } from '../store/problems.js';
import { contentUnsupported } from './views.js';

/**
 * `dataroot find`: every image layer, container layer (read-write and init) and volume of the
 * root searched by name, path, content hash or time; each hit says where it lives (the layer with
 * its chainID and the images that contain it, the container, or the volume) and, for every
 * container and image whose view includes that layer or volume, whether the view shows this very
 * entry (`sees`), another layer's entry at the same path (`shadows`), or nothing there because a
 * whiteout or an opaque directory above deletes it (`deletes`). Layers that keep a full tree
 * (vfs, btrfs, zfs, overlay's image layers) report an entry only in the layer that added or
 * changed it (where it differs from the layer below).
 */

export interface FindQuery {
  name?: string;
  path?: string;
  /** 64 hex digits. */
  sha256?: string;
  /** Epoch milliseconds: entries whose mtime is later. */
  newer?: number;
}

/** `unknown`: the view's own layers cannot be read (a damaged or hostile layer chain). */
export type Sight = 'sees' | 'shadows' | 'deletes' | 'unknown';

export interface ViewSight {
  id: string;
  name: string;
  sees: Sight;
  /** The layer whose entry or whiteout decides, when it is not this one. */
  by?: string;
  /** The path in the container (a volume's file: under the mount's destination). */
  at?: string;
}

export interface FindHit {
  /** The path inside the layer or volume, with a leading slash. */
  path: string;
  type: string;
  size: number;
  mode: string;
  uid: number;
  gid: number;
  mtime: string;
  sha256?: string;
  linkTarget?: string;
  where: {
    kind: 'image-layer' | 'container-layer' | 'init-layer' | 'volume';
    /** The entry on disk (absolute, as dockerd would print it). */
    file: string;
    chainId?: string;
    diffId?: string;
    cacheId?: string;
    /** Images whose layer chain contains the layer (IDs), with their tags. */
    images?: { id: string; tags: string[] }[];
    container?: { id: string; name: string };
    volume?: string;
  };
  containers: ViewSight[];
  images: ViewSight[];
}

export interface Source {
  kind: FindHit['where']['kind'];
  /** The root `dir` is relative to (the data-root, or containerd's root for its snapshots). */
  fs: Confined;
  dir: string;
  rules: WhiteoutRules;
  /** For a full tree: the tree below it (an entry equal to the one there is not this layer's). */
  base?: string;
  chainId?: string;
  diffId?: string;
  cacheId?: string;
  containerId?: string;
  volume?: string;
}

const TYPE_WORD: Record<number, string> = {
  [S_IFREG]: 'file',
  [S_IFDIR]: 'dir',
  [S_IFLNK]: 'symlink',
  [S_IFCHR]: 'char',
  [S_IFBLK]: 'block',
  [S_IFIFO]: 'fifo',
  [S_IFSOCK]: 'socket',
};

/** Parses --newer: RFC 3339 / ISO 8601, Unix seconds, or a duration before now (`90s`, `15m`, `24h`, `7d`). */
export function parseTime(s: string, now = Date.now()): number {
  const rel = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(s);
  if (rel !== null) return now - Number(rel[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  if (/^\d{4}-\d{2}-\d{2}/.test(s) && Number.isFinite(t)) return t;
  throw new DatarootError(
    'USAGE_INVALID_TIME',
    `--newer ${JSON.stringify(s)} is not a time: give 2024-05-01, 2024-05-01T10:00:00Z, Unix seconds, or a duration such as 24h or 7d`,
  );
}

function sameEntry(a: EntryStat, b: EntryStat): boolean {
  if (fileType(a) !== fileType(b) || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  if (isDirStat(a)) return true;
  return a.size === b.size && Math.floor(a.mtimeMs / 1000) === Math.floor(b.mtimeMs / 1000) && a.rdev === b.rdev;
}

export interface ViewInfo {
  id: string;
  name: string;
  layers: DiskLayer[] | undefined;
  error?: string;
}

/**
 * What find searches, and how a hit is placed: the sources and the views over them. A
 * graphdriver store (GraphScope) or Docker's containerd image store (ops/findcd.ts).
 */
export interface FindScope {
  /** Every source: image layers (bottom first), then containers' init and read-write layers, then volumes. */
  sources(): Source[];
  /** An entry's path as the engine saw it (absolute). */
  shown(src: Source, rel: string): string;
  /** How a layer directory is named in a sight ("image layer …", "read-write layer of container …"). */
  label(src: { fs: Confined; dir: string }): string | undefined;
  /** The images whose layer chain holds a layer, with their tags. */
  imagesWith(chainId: string): { id: string; tags: string[] }[];
  /** The containers whose view holds an image layer. */
  containersOver(chainId: string): string[];
  containerName(id: string): string;
  containerView(id: string): ViewInfo;
  imageView(id: string): ViewInfo;
  /** Containers with their mount points (who mounts a volume). */
  readonly containers: readonly ContainerRecord[];
}

/** Whether a source directory can be searched: a real directory (a symlink there is reported, never followed). */
export function usableDir(fs: Confined, dir: string, shown: string, problems: Problem[]): boolean {
  const k = fs.kind(dir);
  if (k === 'dir') return true;
  if (k === 'symlink') {
    const e = fs.symlinkError(dir);
    problems.push({ code: e.code, message: e.message, path: shown });
  } else if (k !== 'missing') problems.push({ code: 'PATH_NOT_A_DIRECTORY', message: `${dir} is a ${k}, not a directory: it is not searched`, path: shown });
  return false;
}

/** The sources and views of a graphdriver store (layerdb, mounts, the driver's directories, volumes). */
export class GraphScope implements FindScope {
  private readonly labels = new Map<string, string>();
  private readonly cviews = new Map<string, ViewInfo>();
  private readonly iviews = new Map<string, ViewInfo>();
  /** chainIDs under each container's layer (its image's chain). */
  private readonly chainOf = new Map<string, Set<string>>();
  private readonly tagsOf = new Map<string, string[]>();

  constructor(
    private readonly store: Store,
    private readonly problems: Problem[],
  ) {
    if (store.adapter.content === 'none') throw contentUnsupported(store);
    if (process.getuid?.() !== 0 && ['overlay2', 'overlay', 'fuse-overlayfs'].includes(store.driver)) problems.push(trustedUnreadable());
    for (const img of store.images.values())
      this.tagsOf.set(
        img.id,
        store.refsOf(img.id).map((r) => r.familiar),
      );
  }

  get containers(): readonly ContainerRecord[] {
    return this.store.containers;
  }

  shown(_src: Source, rel: string): string {
    return this.store.shown(rel);
  }

  label(src: { dir: string }): string | undefined {
    return this.labels.get(src.dir);
  }

  /** Every source: image layers (bottom first), then containers' init and read-write layers, then volumes. */
  sources(): Source[] {
    const s = this.store;
    const fs = s.fs;
    const a = s.adapter;
    const full = a.content === 'full';
    const out: Source[] = [];
    const chainByCache = new Map<string, string>();
    const layerDirOf = (cacheId: string): { dir: string; full: boolean } | undefined => {
      const d = a.contentDir(s.fs, cacheId);
      if (d === undefined) return undefined;
      return { dir: d, full: full && !d.endsWith('/upper') };
    };
    const depth = (id: string): number => {
      let n = 0;
      for (let p = s.layers.get(id)?.parent; p !== undefined && n < 1000; p = s.layers.get(p)?.parent) n++;
      return n;
    };
    const layers = [...s.layers.values()].sort((x, y) => depth(x.chainId) - depth(y.chainId) || (x.chainId < y.chainId ? -1 : 1));
    for (const l of layers) {
      if (l.cacheId === undefined) continue;
      chainByCache.set(l.cacheId, l.chainId);
      const ld = layerDirOf(l.cacheId);
      if (ld === undefined || !this.usable(ld.dir)) continue;
      const parent = l.parent !== undefined ? s.layers.get(l.parent)?.cacheId : undefined;
      const base = ld.full && parent !== undefined ? layerDirOf(parent)?.dir : undefined;
      out.push({
        kind: 'image-layer',
        fs,
        dir: ld.dir,
        rules: ld.full ? WHITEOUTS.none : this.rules(),
        ...(base !== undefined ? { base } : {}),
        chainId: l.chainId,
        ...(l.diffId !== undefined ? { diffId: l.diffId } : {}),
        cacheId: l.cacheId,
      });
      this.labels.set(ld.dir, `image layer ${l.chainId}`);
    }
    for (const m of s.mounts) {
      const chain = new Set<string>();
      for (let p = m.parent, n = 0; p !== undefined && n < 1000; p = s.layers.get(p)?.parent, n++) chain.add(p);
      this.chainOf.set(m.containerId, chain);
      const parentDir = m.parent !== undefined ? s.layers.get(m.parent)?.cacheId : undefined;
      const parentTree = parentDir !== undefined ? layerDirOf(parentDir)?.dir : undefined;
      let initTree: string | undefined;
      if (m.initId !== undefined) {
        const ld = layerDirOf(m.initId);
        if (ld !== undefined && this.usable(ld.dir)) {
          initTree = ld.dir;
          out.push({
            kind: 'init-layer',
            fs,
            dir: ld.dir,
            rules: ld.full ? WHITEOUTS.none : this.rules(),
            ...(ld.full && parentTree !== undefined ? { base: parentTree } : {}),
            containerId: m.containerId,
          });
          this.labels.set(ld.dir, `init layer of container ${m.containerId}`);
        }
      }
      if (m.mountId !== undefined) {
        const ld = layerDirOf(m.mountId);
        if (ld !== undefined && this.usable(ld.dir)) {
          const base = initTree ?? parentTree;
          out.push({
            kind: 'container-layer',
            fs,
            dir: ld.dir,
            rules: ld.full ? WHITEOUTS.none : this.rules(),
            ...(ld.full && base !== undefined ? { base } : {}),
            containerId: m.containerId,
          });
          this.labels.set(ld.dir, `read-write layer of container ${m.containerId}`);
        }
      }
    }
    for (const v of s.volumes.volumes) {
      const dir = v.dataDir === '' ? `volumes/${v.name}/_data` : v.dataDir;
      if (!this.usable(dir)) continue;
      out.push({ kind: 'volume', fs, dir, rules: WHITEOUTS.none, volume: v.name });
    }
    return out;
  }

  private usable(dir: string): boolean {
    return usableDir(this.store.fs, dir, this.store.shown(dir), this.problems);
  }

  private rules(): WhiteoutRules {
    const a = this.store.adapter;
    return a.name === 'aufs' ? WHITEOUTS.aufs : a.name === 'fuse-overlayfs' ? WHITEOUTS.fuseOverlayfs : WHITEOUTS.overlay;
  }

  imagesWith(chainId: string): { id: string; tags: string[] }[] {
    const s = this.store;
    return [...s.images.values()].filter((i) => s.chainOf(i).includes(chainId)).map((i) => ({ id: i.id, tags: this.tagsOf.get(i.id) ?? [] }));
  }

  containersOver(chainId: string): string[] {
    return [...this.chainOf].filter(([, c]) => c.has(chainId)).map(([id]) => id);
  }

  containerName(id: string): string {
    return (this.store.containers.find((c) => c.id === id)?.config?.Name ?? '').replace(/^\//, '');
  }

  containerView(id: string): ViewInfo {
    let v = this.cviews.get(id);
    if (v !== undefined) return v;
    const m = this.store.mountOf(id);
    v = { id, name: this.containerName(id), layers: undefined };
    if (m?.mountId !== undefined) v = { ...v, ...this.stack(m.mountId) };
    this.cviews.set(id, v);
    return v;
  }

  imageView(id: string): ViewInfo {
    let v = this.iviews.get(id);
    if (v !== undefined) return v;
    const s = this.store;
    const img = s.images.get(id)!;
    v = { id, name: this.tagsOf.get(id)?.[0] ?? id.slice(7, 19), layers: undefined };
    const top = img.chainId !== undefined ? s.layers.get(img.chainId)?.cacheId : undefined;
    if (top !== undefined) v = { ...v, ...this.stack(top) };
    this.iviews.set(id, v);
    return v;
  }

  private stack(id: string): { layers?: DiskLayer[]; error?: string } {
    const s = this.store;
    const { dirs, whiteouts, problems } = s.adapter.viewDirs(s.fs, id);
    if (problems.length > 0) return { error: problems[0]!.message };
    return layersOf(s.fs, dirs, whiteouts);
  }
}

/** The layers of a view's directories, or why they cannot be read. */
export function layersOf(fs: Confined, dirs: string[], rules: WhiteoutRules): { layers?: DiskLayer[]; error?: string } {
  try {
    return { layers: dirs.map((d) => new DiskLayer(fs, d, rules)) };
  } catch (e) {
    if (e instanceof DatarootError) return { error: e.message };
    throw e;
  }
}

/** Without CAP_SYS_ADMIN, overlay's opaque directories cannot be seen. */
export function trustedUnreadable(): Problem {
  return {
    code: 'XATTR_TRUSTED_UNREADABLE',
    message:
      'not root: opaque directories (trusted.overlay.opaque) cannot be read, so sees/shadows/deletes may miss what they delete; run as root for an exact answer',
  };
}

/** The query's matching, hashing and placing of hits, over the sources of a scope. */
export class Finder {
  private readonly nameRe: RegExp | undefined;
  private readonly pathRe: RegExp | undefined;
  private readonly want: string | undefined;
  private readonly hashes = new Map<string, string>();
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  readonly problems: Problem[];
  readonly scope: FindScope;
  hashed = 0;

  /** `scope` is made with the finder's problem list, into which both write. */
  constructor(
    private readonly q: FindQuery,
    scope: (problems: Problem[]) => FindScope,
  ) {
    if (q.name === undefined && q.path === undefined && q.sha256 === undefined && q.newer === undefined) {
      throw new DatarootError('USAGE_FIND_NOTHING', 'find needs at least one of --name, --path, --sha256, --newer');
    }
    this.nameRe = q.name !== undefined ? globToRegExp(q.name) : undefined;
    this.pathRe = q.path !== undefined ? globToRegExp(q.path) : undefined;
    if (q.sha256 !== undefined) {
      const m = /^(?:sha256:)?([0-9a-fA-F]{64})$/.exec(q.sha256);
      if (m === null) throw new DatarootError('USAGE_INVALID_SHA256', `--sha256 ${JSON.stringify(q.sha256)} is not 64 hex digits`);
      this.want = m[1]!.toLowerCase();
    }
    this.problems = [];
    this.scope = scope(this.problems);
  }

  private sha(layer: DiskLayer, path: ByteStr, st: EntryStat): string {
    const key = `${st.dev}:${st.ino}`;
    const known = st.nlink > 1 ? this.hashes.get(key) : undefined;
    if (known !== undefined) return known;
    const f = layer.open(path);
    const h = createHash('sha256');
    try {
      for (let pos = 0; ;) {
        const n = readSync(f.fd, this.buf, 0, this.buf.length, pos);
        if (n === 0) break;
        h.update(n === this.buf.length ? this.buf : this.buf.subarray(0, n));
        pos += n;
      }
    } finally {
      f.close();
    }
    this.hashed++;
    const hex = h.digest('hex');
    if (st.nlink > 1) this.hashes.set(key, hex);
    return hex;
  }

  /** The hits of one source, streamed. */
  *search(src: Source): Generator<FindHit> {
    let layer: DiskLayer;
    let base: DiskLayer | undefined;
    try {
      layer = new DiskLayer(src.fs, src.dir, src.rules);
      if (src.base !== undefined && src.fs.kind(src.base) === 'dir') base = new DiskLayer(src.fs, src.base, WHITEOUTS.none);
    } catch (e) {
      if (!(e instanceof DatarootError)) throw e;
      this.problems.push({ code: e.code, message: e.message, path: src.dir });
      return;
    }
    const walk = walkView([layer]);
    for (;;) {
      let next: IteratorResult<ViewEntry>;
      try {
        next = walk.next();
      } catch (err) {
        // A directory that cannot be read (a path past PATH_MAX, no permission): reported, the next source searched.
        if (!(err instanceof DatarootError)) throw err;
        this.problems.push({ code: err.code, message: `${err.message}: the rest of ${src.dir} is not searched`, path: this.scope.shown(src, src.dir) });
        return;
      }
      if (next.done === true) return;
      const e = next.value;
      if (this.nameRe !== undefined && !this.nameRe.test(shownPath(e.name))) continue;
      if (this.pathRe !== undefined && !this.pathRe.test(`/${shownPath(e.path)}`)) continue;
      if (this.q.newer !== undefined && !(e.stat.mtimeMs > this.q.newer)) continue;
      const t = fileType(e.stat);
      if (this.want !== undefined && t !== S_IFREG) continue;
      if (base !== undefined) {
        const b = base.lstat(e.path);
        if (b !== undefined && sameEntry(b, e.stat) && (t !== S_IFLNK || base.readlink(e.path) === layer.readlink(e.path))) continue;
      }
      let sha: string | undefined;
      if (this.want !== undefined) {
        try {
          sha = this.sha(layer, e.path, e.stat);
        } catch (err) {
          if (!(err instanceof DatarootError)) throw err;
          this.problems.push({ code: err.code, message: err.message, path: layer.where(e.path) });
          continue;
        }
        if (sha !== this.want) continue;
      }
      yield this.hit(src, layer, e.path, e.stat, sha);
    }
  }

  private hit(src: Source, layer: DiskLayer, path: ByteStr, st: EntryStat, sha: string | undefined): FindHit {
    const sc = this.scope;
    const t = fileType(st);
    const where: FindHit['where'] = { kind: src.kind, file: sc.shown(src, layer.where(path)) };
    if (src.chainId !== undefined) {
      where.chainId = src.chainId;
      if (src.diffId !== undefined) where.diffId = src.diffId;
      if (src.cacheId !== undefined) where.cacheId = src.cacheId;
      where.images = sc.imagesWith(src.chainId);
    }
    if (src.containerId !== undefined) where.container = { id: src.containerId, name: sc.containerName(src.containerId) };
    if (src.volume !== undefined) where.volume = src.volume;
    const hit: FindHit = {
      path: `/${shownPath(path)}`,
      type: TYPE_WORD[t] ?? 'unknown',
      size: st.size,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: st.uid,
      gid: st.gid,
      mtime: new Date(st.mtimeMs).toISOString(),
      ...(sha !== undefined ? { sha256: `sha256:${sha}` } : {}),
      ...(t === S_IFLNK ? { linkTarget: shownPath(layer.readlink(path)) } : {}),
      where,
      containers: [],
      images: [],
    };
    if (src.kind === 'volume') hit.containers = this.volumeSights(src.volume!, hit.path);
    else {
      const cids = src.containerId !== undefined ? [src.containerId] : sc.containersOver(src.chainId!);
      for (const cid of cids.sort()) hit.containers.push(this.sight(sc.containerView(cid), src, layer, path, st));
      if (src.chainId !== undefined) for (const img of where.images ?? []) hit.images.push(this.sight(sc.imageView(img.id), src, layer, path, st));
    }
    return hit;
  }

  /** Whether a view shows this layer's entry at the path, another entry, or nothing. */
  private sight(v: ViewInfo, src: Source, layer: DiskLayer, path: ByteStr, st: EntryStat): ViewSight {
    const base = { id: v.id, name: v.name };
    if (v.layers === undefined) return { ...base, sees: 'unknown', by: `its layers cannot be read: ${v.error ?? 'no layer'}` };
    const idx = v.layers.findIndex((l) => l.dir === src.dir && l.tree.fs.base === src.fs.base);
    const label = (i: number): string => this.scope.label({ fs: src.fs, dir: v.layers![i]!.dir }) ?? v.layers![i]!.dir;
    if (idx >= 0) {
      const r = resolveInView(v.layers, path, idx);
      if (r.found !== undefined && (r.found.layer === idx || r.merged.includes(idx))) return { ...base, sees: 'sees' };
      // Another entry at the same path (a newer file, or a directory made anew over this one).
      if (r.found !== undefined) return { ...base, sees: 'shadows', by: label(r.found.layer) };
      if (r.lost !== undefined) return { ...base, sees: r.lost.why === 'replaced' ? 'shadows' : 'deletes', by: label(r.lost.by) };
      if (r.missing?.by !== undefined) return { ...base, sees: r.missing.why === 'notdir' ? 'shadows' : 'deletes', by: label(r.missing.by) };
      return { ...base, sees: 'deletes' };
    }
    // A full-tree driver: the view holds its own copy; equal to this entry, it is this entry.
    const r = resolveInView(v.layers, path);
    if (r.found === undefined) return { ...base, sees: 'deletes', by: label(0) };
    const same = sameEntry(r.found.stat, st) && (fileType(st) !== S_IFLNK || v.layers[r.found.layer]!.readlink(path) === layer.readlink(path));
    return same ? { ...base, sees: 'sees' } : { ...base, sees: 'shadows', by: label(r.found.layer) };
  }

  /** The containers that mount a volume, with the path the file has inside them. */
  private volumeSights(volume: string, path: string): ViewSight[] {
    const out: ViewSight[] = [];
    for (const c of this.scope.containers) {
      for (const mp of Object.values(c.config?.MountPoints ?? {})) {
        if (mp?.Type !== 'volume' || mp.Name !== volume) continue;
        const dest = (mp.Destination ?? '').replace(/\/+$/, '');
        out.push({ id: c.id, name: (c.config?.Name ?? '').replace(/^\//, ''), sees: 'sees', at: `${dest}${path}` });
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : 1));
  }
}

/** Every hit, source by source (image layers bottom first, then containers, then volumes). */
export function* findHits(finder: Finder): Generator<FindHit> {
  for (const src of finder.scope.sources()) yield* finder.search(src);
}

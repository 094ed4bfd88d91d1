import type { Stats } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { kindOfStats, type Confined, type EntryKind } from '../io/confined.js';
import type { ContainerRecord } from '../store/containers.js';
import type { VolumeRecord } from '../store/volumes.js';
import { LINK_ID, LINK_TARGET, MOUNT_ID } from '../store/ids.js';
import { HEX64, isKnownDriver } from '../store/layout.js';
import type { Store } from '../store/model.js';
import type { WhiteoutRules } from '../store/rootfs.js';
import { isWhiteout } from '../store/rootfs.js';
import { getXattr } from '../io/native.js';

/**
 * `dataroot which PATH`: what owns a path of the data-root. A file of an image layer (in any
 * driver's layout, or reached through an overlay2 `l/` link) belongs to that layer — its chainID
 * and diffID, the images whose chain holds it, and for each container built on it whether the
 * container sees the file, sees another layer's version of it, or has it hidden by a whiteout or
 * an opaque directory. A file of a container's read-write layer belongs to the container (with
 * what it does to the image below: adds, replaces, deletes); a file under `containers/<id>/` is
 * the container's own; a file of a volume belongs to the volume and is seen by the containers that
 * mount it, at their mount point.
 */
export interface ImageRef {
  id: string;
  tags: string[];
}

export interface ContainerRef {
  id: string;
  name: string;
}

/** How a container sees a path of a lower layer. */
export interface Sight extends ContainerRef {
  /** visible: this layer's entry is what the container shows; shadowed: an upper layer's entry is; deleted: a whiteout hides it; hidden: an opaque directory or a non-directory above hides it; absent: no layer has it (a parent is missing). */
  sees: 'visible' | 'shadowed' | 'deleted' | 'hidden' | 'absent' | 'unknown';
  /** The layer directory that decides, when another one does. */
  by?: string;
  /** A mount (volume or bind) over the path in the container: the running container saw the mount's files there instead. */
  mountedOver?: string;
  /** Seen as a copy (full-tree drivers copy each layer into the next): `by` holds the copy. */
  copy?: boolean;
}

export interface WhichResult {
  /** The path, relative to the root. */
  path: string;
  exists: boolean;
  type?: EntryKind;
  size?: number;
  /** What kind of thing owns it. */
  owner: 'image-layer' | 'container-layer' | 'init-layer' | 'layer-dir' | 'layer-metadata' | 'image' | 'container' | 'volume' | 'store' | 'other';
  /** One sentence. */
  summary: string;
  layer?: { chainId: string; diffId?: string; cacheId: string; parent?: string; dir: string };
  /** The path inside the layer's tree (`/etc/passwd`). */
  pathInLayer?: string;
  images?: ImageRef[];
  containers?: Sight[];
  container?: ContainerRef & { pathInContainer?: string; role?: string; effect?: string; mountedOver?: string };
  volume?: { name: string; pathInVolume: string; mountedBy: (ContainerRef & { destination: string; pathInContainer: string; rw: boolean })[] };
  image?: ImageRef;
  /** A containerd snapshot (its meta.db record and its directory), for paths of a snapshotter. */
  snapshot?: { namespace: string; snapshotter: string; key: string; kind: string; id: string; parent: string | null; dir: string };
  notes: string[];
}

const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

/** What the path owners of the Docker side need: the root, its containers and its volumes (a Store has them; so has a root on the containerd image store). */
export interface DockerMeta {
  readonly fs: Confined;
  readonly containers: ContainerRecord[];
  readonly volumes: { volumes: VolumeRecord[] };
}

/** The path argument as a path relative to the root: relative as given, or absolute under the root (or the path dockerd knew it by). */
export function relPathOf(store: Store, arg: string): string {
  return relPathUnder([store.fs.base, store.shownRoot], arg);
}

/** The path argument relative to a root known by the absolute paths `roots` (where it is, where the engine had it). */
export function relPathUnder(roots: string[], arg: string): string {
  let p = arg;
  if (p.startsWith('/')) {
    const bases = roots.map((b) => b.replace(/\/+$/, ''));
    const base = bases.find((b) => p === b || p.startsWith(`${b}/`));
    if (base === undefined) throw new DatarootError('USAGE_PATH_OUTSIDE_ROOT', `${arg} is not under the data-root (${roots[roots.length - 1]})`);
    p = p.slice(base.length);
  }
  const parts: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length === 0) throw new DatarootError('USAGE_PATH_OUTSIDE_ROOT', `${arg} leaves the data-root`);
      parts.pop();
    } else parts.push(c);
  }
  if (p.includes('\0')) throw new DatarootError('USAGE_PATH_OUTSIDE_ROOT', 'the path holds a NUL byte');
  return parts.join('/');
}

function imageRefs(store: Store, chainId: string): ImageRef[] {
  const out: ImageRef[] = [];
  for (const img of store.images.values()) {
    if (!store.chainOf(img).includes(chainId)) continue;
    out.push({ id: img.id, tags: store.refsOf(img.id).map((r) => r.normalized) });
  }
  return out.sort((a, b) => b.tags.length - a.tags.length || (a.id < b.id ? -1 : 1));
}

function containerRef(store: DockerMeta, id: string): ContainerRef {
  const c = store.containers.find((x) => x.id === id);
  return { id, name: c?.config?.Name ?? '' };
}

/** The chainIDs below (and including) a layer. */
function chainBelow(store: Store, chainId: string | undefined): string[] {
  const out: string[] = [];
  for (let id = chainId, i = 0; id !== undefined && i < 500; i++) {
    out.push(id);
    id = store.layers.get(id)?.parent;
  }
  return out;
}

export function opaque(fs: Confined, rel: string, rules: WhiteoutRules): boolean {
  for (const x of rules.opaqueXattrs) {
    try {
      const v = getXattr(fs.abs(rel), x);
      if (v !== undefined && v.length === 1 && v[0] === 0x79) return true;
    } catch {
      /* unreadable: not opaque */
    }
  }
  return rules.opaqueMarker && fs.kind(`${rel}/.wh..wh..opq`) !== 'missing';
}

type Resolution = {
  status: 'visible' | 'whiteout' | 'not-dir' | 'absent';
  idx: number;
  dropped: Map<number, { why: 'opaque' | 'not-dir' | 'whiteout'; by: number }>;
};

/**
 * How a union of layer dirs (topmost first) resolves a path, as overlayfs merges them (and as
 * buildView merges them): which layer's entry is seen, or which layer deletes it; and for each
 * layer that stopped contributing on the way, which upper layer cut it off.
 */
export function resolveInView(fs: Confined, dirs: string[], rules: WhiteoutRules, inner: string): Resolution {
  const parts = inner.split('/').filter(Boolean);
  let cands = dirs.map((_, i) => i);
  const dropped = new Map<number, { why: 'opaque' | 'not-dir' | 'whiteout'; by: number }>();
  let prefix = '';
  for (let d = 0; d < parts.length; d++) {
    const name = parts[d]!;
    const last = d === parts.length - 1;
    const next: number[] = [];
    let cut: { why: 'opaque' | 'not-dir' | 'whiteout'; by: number } | undefined;
    for (const idx of cands) {
      if (cut !== undefined) {
        dropped.set(idx, cut);
        continue;
      }
      const here = prefix === '' ? dirs[idx]! : `${dirs[idx]}/${prefix}`;
      const st = fs.lstatBig(`${here}/${name}`);
      if (st !== undefined) {
        if (rules.charDevice && isWhiteout(st)) {
          if (next.length === 0) return { status: 'whiteout', idx, dropped };
          cut = { why: 'whiteout', by: idx };
          dropped.set(idx, cut);
          continue;
        }
        if (next.length === 0 && last) return { status: 'visible', idx, dropped };
        if (!st.isDirectory()) {
          if (next.length === 0) return { status: 'not-dir', idx, dropped };
          cut = { why: 'not-dir', by: idx };
          dropped.set(idx, cut);
          continue;
        }
        next.push(idx);
        if (opaque(fs, `${here}/${name}`, rules)) cut = { why: 'opaque', by: idx };
        continue;
      }
      if (rules.prefixFiles && fs.kind(`${here}/.wh.${name}`) !== 'missing') {
        if (next.length === 0) return { status: 'whiteout', idx, dropped };
        cut = { why: 'whiteout', by: idx };
      }
    }
    if (next.length === 0) return { status: 'absent', idx: -1, dropped };
    cands = next;
    prefix = prefix === '' ? name : `${prefix}/${name}`;
  }
  // The path is a directory (or the root) that several layers contribute to: the topmost shows it.
  return { status: 'visible', idx: cands[0] ?? -1, dropped };
}

/** How a container's view shows `inner` of the layer dir `dir`. */
function sightOf(store: Store, containerId: string, dir: string, inner: string): Sight {
  const ref = containerRef(store, containerId);
  const m = store.mountOf(containerId);
  if (m?.mountId === undefined) return { ...ref, sees: 'unknown' };
  const v = store.adapter.viewDirs(store.fs, m.mountId);
  return sightInView(store.fs, ref, v.dirs, v.whiteouts, dir, inner, mountedOver(store, containerId, inner));
}

/** How a view (its layer dirs, topmost first) shows `inner` of the layer dir `dir`. */
export function sightInView(
  fs: Confined,
  ref: ContainerRef,
  dirs: string[],
  rules: WhiteoutRules,
  dir: string,
  inner: string,
  mounted: string | undefined,
): Sight {
  const extra = mounted !== undefined ? { mountedOver: mounted } : {};
  const v = { dirs, whiteouts: rules };
  const store = { fs };
  const k = v.dirs.indexOf(dir);
  if (k < 0) {
    // Not in the container's view: a full-tree driver copied this layer into the layers above it.
    const r = resolveInView(store.fs, v.dirs, v.whiteouts, inner);
    if (r.status === 'visible') return { ...ref, sees: 'visible', copy: true, by: v.dirs[r.idx]!, ...extra };
    return { ...ref, sees: r.status === 'whiteout' ? 'deleted' : 'absent', ...extra };
  }
  const r = resolveInView(store.fs, v.dirs, v.whiteouts, inner);
  const dr = r.dropped.get(k);
  if (dr !== undefined) return { ...ref, sees: dr.why === 'whiteout' ? 'deleted' : 'hidden', by: v.dirs[dr.by]!, ...extra };
  if (r.status === 'visible') return r.idx === k ? { ...ref, sees: 'visible', ...extra } : { ...ref, sees: 'shadowed', by: v.dirs[r.idx]!, ...extra };
  if (r.status === 'whiteout') return r.idx === k ? { ...ref, sees: 'absent', ...extra } : { ...ref, sees: 'deleted', by: v.dirs[r.idx]!, ...extra };
  if (r.status === 'not-dir') return { ...ref, sees: r.idx === k ? 'absent' : 'hidden', ...(r.idx !== k ? { by: v.dirs[r.idx]! } : {}), ...extra };
  return { ...ref, sees: 'absent', ...extra };
}

/** A mount point of the container at or above `inner` (the deepest). */
export function mountedOver(store: DockerMeta, containerId: string, inner: string): string | undefined {
  const c = store.containers.find((x) => x.id === containerId);
  let best: { dest: string; what: string } | undefined;
  for (const mp of Object.values(c?.config?.MountPoints ?? {})) {
    if (mp === null || typeof mp !== 'object' || typeof mp.Destination !== 'string') continue;
    const dest = mp.Destination.replace(/\/+$/, '') || '/';
    if (!(inner === dest || inner.startsWith(dest === '/' ? '/' : `${dest}/`))) continue;
    if (best !== undefined && best.dest.length >= dest.length) continue;
    const what = mp.Type === 'volume' ? `volume ${mp.Name ?? ''}` : `${mp.Type ?? 'mount'} ${mp.Source ?? ''}`;
    best = { dest, what: `${dest} (${what.trim()})` };
  }
  return best?.what;
}

interface LayerPath {
  /** The driver's id (cache-id, mount-id, init-id or a directory name). */
  id: string;
  /** The content dir of the id (relative to the root), when the path is in it. */
  content?: string;
  /** The path inside the content tree. */
  inner?: string;
  via?: string;
}

/** Splits a path of the driver home into the layer id and, when in the layer's tree, the path inside it. */
function layerPathOf(store: Store, parts: string[]): LayerPath | undefined {
  const a = store.adapter;
  const fs = store.fs;
  const home = parts[0]!;
  let id: string | undefined;
  let via: string | undefined;
  if ((home === 'overlay2' || home === 'fuse-overlayfs') && parts[1] === 'l') {
    if (parts[2] === undefined) return undefined;
    if (!LINK_ID.test(parts[2])) return undefined;
    const target = fs.readlink(`${home}/l/${parts[2]}`);
    const m = target === undefined ? null : LINK_TARGET.exec(target);
    if (m === null) return { id: '', via: `${home}/l/${parts[2]}` };
    id = m[1]!;
    via = `${home}/l/${parts[2]}`;
    // The link stands for <id>/diff.
    return { id, content: `${home}/${id}/diff`, inner: `/${parts.slice(3).join('/')}`, via };
  }
  switch (home) {
    case 'overlay2':
    case 'fuse-overlayfs':
    case 'overlay':
      id = parts[1];
      break;
    default:
      id = parts[2];
  }
  if (id === undefined) return undefined;
  if (!/^[A-Za-z0-9._-]+$/.test(id) || id === '.' || id === '..') return undefined;
  const content = a.name === home ? a.contentDir(fs, id) : undefined;
  const rel = parts.join('/');
  if (content !== undefined && (rel === content || rel.startsWith(`${content}/`)))
    return { id, content, inner: rel === content ? '/' : rel.slice(content.length) };
  return { id };
}

/** What a path in a layer is, in words: nothing, a whiteout (a 0/0 character device), a directory, a file, … */
export function layerEntryWord(st: Stats | undefined): string {
  if (st === undefined) return 'nothing (the path does not exist)';
  if (st.isCharacterDevice() && st.rdev === 0) return 'a whiteout (0/0 character device)';
  return `a ${kindOfStats(st) === 'dir' ? 'directory' : kindOfStats(st)}`;
}

export function statOf(fs: Confined, rel: string): Stats | undefined {
  try {
    return rel === '' ? fs.lstat('.') : fs.lstat(rel);
  } catch {
    return undefined;
  }
}

export function which(store: Store, arg: string): WhichResult {
  const rel = relPathOf(store, arg);
  const parts = rel.split('/').filter(Boolean);
  const st = statOf(store.fs, rel);
  const base: Pick<WhichResult, 'path' | 'exists' | 'type' | 'size' | 'notes'> = {
    path: rel,
    exists: st !== undefined,
    ...(st !== undefined ? { type: kindOfStats(st) } : {}),
    ...(st !== undefined && st.isFile() ? { size: st.size } : {}),
    notes: [],
  };
  if (parts.length === 0) return { ...base, owner: 'store', summary: 'the data-root itself' };
  const top = parts[0]!;
  if (isKnownDriver(top)) {
    const { through, ...d } = driverPath(store, parts, st);
    if (through === undefined) return { ...base, ...d };
    // Reached through an l/ link: what is there is what the link's target holds.
    const t = through.st;
    return { ...base, exists: t !== undefined, ...(t !== undefined ? { type: kindOfStats(t) } : {}), ...(t?.isFile() === true ? { size: t.size } : {}), ...d };
  }
  if (top === 'containers') return { ...base, ...containerPath(store, parts) };
  if (top === 'volumes') return { ...base, ...volumePath(store, parts) };
  if (top === 'image') return { ...base, ...imagePath(store, parts) };
  const what: Record<string, string> = {
    network: "libnetwork's store (network/files/local-kv.db: networks, endpoints, IPAM)",
    buildkit: "BuildKit's cache and metadata (its snapshots live in the driver home)",
    containerd: "the state of the containerd that dockerd manages (plugins, the moby namespace's metadata)",
    plugins: 'managed plugins',
    swarm: 'swarm mode state (raft, certificates)',
    trust: 'content trust keys and data',
    runtimes: 'runtime wrappers dockerd generated',
    tmp: "dockerd's temporary files",
  };
  return { ...base, owner: what[top] !== undefined ? 'store' : 'other', summary: what[top] ?? `not a path dockerd 20.10 keeps (${top}/)` };
}

export type Part = Omit<WhichResult, 'path' | 'exists' | 'notes'> & { notes: string[] };

function driverPath(store: Store, parts: string[], st0: Stats | undefined): Part & { through?: { st: Stats | undefined } } {
  const notes: string[] = [];
  let st = st0;
  const home = parts[0]!;
  if (home !== store.adapter.name) {
    notes.push(`this root's store is read as ${store.driver}; ${home}/ is another driver's home (--driver ${home} reads it)`);
    return { owner: 'other', summary: `the home of the ${home} graphdriver, not the store in use`, notes };
  }
  if (parts.length === 1) return { owner: 'store', summary: `the home of the ${home} graphdriver`, notes };
  const lp = layerPathOf(store, parts);
  if (lp === undefined) {
    if ((home === 'overlay2' || home === 'fuse-overlayfs') && parts[1] === 'l')
      return {
        owner: 'store',
        summary: `${home}'s short links to layer diffs (l/<26 characters>), used in the lower chains to keep mount options short`,
        notes,
      };
    return { owner: 'other', summary: `not a layer directory of ${home}`, notes };
  }
  if (lp.id === '') return { owner: 'other', summary: `${lp.via} is not a link to ../<id>/diff: it is not followed`, notes };
  if (!MOUNT_ID.test(lp.id)) notes.push(`${lp.id} is not a layer id dockerd makes`);
  if (lp.via !== undefined) notes.push(`through the link ${lp.via} (→ ${lp.content})`);
  const inContent = lp.inner !== undefined;
  const inner = lp.inner;
  const through = lp.via !== undefined && lp.content !== undefined ? { st: statOf(store.fs, `${lp.content}${lp.inner === '/' ? '' : lp.inner}`) } : undefined;
  if (through !== undefined) st = through.st;
  const typeWord = layerEntryWord(st);
  // An image layer (its cache-id)?
  const layer = [...store.layers.values()].find((l) => l.cacheId === lp.id);
  if (layer !== undefined) {
    const users = new Set<string>();
    for (const m of store.mounts) if (m.parent !== undefined && chainBelow(store, m.parent).includes(layer.chainId)) users.add(m.containerId);
    const images = imageRefs(store, layer.chainId);
    const res: Part & { through?: { st: Stats | undefined } } = {
      ...(through !== undefined ? { through } : {}),
      owner: inContent ? 'image-layer' : 'layer-dir',
      summary: inContent
        ? `${typeWord} in image layer ${short(layer.chainId)}, ${inner} in the layer`
        : `a file of the driver's directory of image layer ${short(layer.chainId)} (not in its tree)`,
      layer: {
        chainId: layer.chainId,
        ...(layer.diffId !== undefined ? { diffId: layer.diffId } : {}),
        cacheId: lp.id,
        ...(layer.parent !== undefined ? { parent: layer.parent } : {}),
        dir: store.adapter.layerDir(lp.id),
      },
      ...(inner !== undefined ? { pathInLayer: inner } : {}),
      images,
      notes,
    };
    if (inContent) res.containers = [...users].sort().map((cid) => sightOf(store, cid, lp.content!, inner!));
    return res;
  }
  // A container's read-write or init layer (its mount-id or init-id)?
  const m = store.mounts.find((x) => x.mountId === lp.id || x.initId === lp.id);
  if (m !== undefined) {
    const ref = containerRef(store, m.containerId);
    const init = m.initId === lp.id;
    const out: Part & { through?: { st: Stats | undefined } } = {
      ...(through !== undefined ? { through } : {}),
      owner: init ? 'init-layer' : 'container-layer',
      summary: init
        ? `${typeWord} in the init layer of container ${ref.name} (${short(ref.id)}): what dockerd prepares under the read-write layer (/etc/hosts, /etc/resolv.conf, /etc/hostname, /dev placeholders)`
        : inContent
          ? `${typeWord} in the read-write layer of container ${ref.name} (${short(ref.id)}), ${inner} in the container`
          : `a file of the driver's directory of the read-write layer of container ${ref.name} (${short(ref.id)}) (not in its tree)`,
      container: { ...ref, ...(inner !== undefined ? { pathInContainer: inner } : {}), role: init ? 'init layer' : 'read-write layer' },
      notes,
    };
    const v = store.adapter.viewDirs(store.fs, lp.id);
    if (inContent && !init && v.dirs.length > 1 && inner !== '/') {
      const below = resolveInView(store.fs, v.dirs.slice(1), v.whiteouts, inner!);
      const lowerName = (d: string): string => {
        const l = [...store.layers.values()].find((x) => x.cacheId !== undefined && store.adapter.contentDir(store.fs, x.cacheId) === d);
        return l !== undefined ? `image layer ${short(l.chainId)}` : d.endsWith('-init/diff') ? 'the init layer' : d;
      };
      const isWh =
        st !== undefined &&
        ((v.whiteouts.charDevice && st.isCharacterDevice() && st.rdev === 0) || (v.whiteouts.prefixFiles && parts[parts.length - 1]!.startsWith('.wh.')));
      if (isWh)
        out.container!.effect = `deletes ${inner!.replace(/\.wh\.([^/]*)$/, '$1')} of the image${below.status === 'visible' ? ` (from ${lowerName(v.dirs[below.idx + 1]!)})` : ''}`;
      else if (st?.isDirectory() === true && opaque(store.fs, `${lp.content}${inner}`, v.whiteouts))
        out.container!.effect = `an opaque directory: hides what the image has under ${inner}`;
      else if (below.status === 'visible') out.container!.effect = `replaces the image's ${inner} (from ${lowerName(v.dirs[below.idx + 1]!)})`;
      else out.container!.effect = `added by the container (the image has no ${inner})`;
      const mo = mountedOver(store, m.containerId, inner!);
      if (mo !== undefined) out.container!.mountedOver = mo;
    }
    return out;
  }
  notes.push('no layer of layerdb has this cache-id and no container this mount-id: an orphan (verify and layers list it), or a BuildKit snapshot');
  return {
    ...(through !== undefined ? { through } : {}),
    owner: 'other',
    summary: `${typeWord} in driver directory ${lp.id}, which no layer or container uses`,
    ...(inner !== undefined ? { pathInLayer: inner } : {}),
    notes,
  };
}

const CONTAINER_FILES: [RegExp, string][] = [
  [/^config\.v2\.json$/, "the container's configuration and state (config.v2.json)"],
  [/^hostconfig\.json$/, "the container's host configuration (hostconfig.json)"],
  [/^[a-f0-9]{64}-json\.log(\.\d+)?(\.gz)?$/, 'its json-file log (dataroot logs reads it)'],
  [/^local-logs(\/container\.log(\.\d+)?(\.gz)?)?$/, 'its local-driver log (dataroot logs reads it)'],
  [/^container-cached\.log(\.\d+)?(\.gz)?$/, 'the dual-logging cache of its log driver (dataroot logs reads it)'],
  [/^hostname$/, 'bind-mounted into the container as /etc/hostname'],
  [/^hosts$/, 'bind-mounted into the container as /etc/hosts'],
  [/^resolv\.conf$/, 'bind-mounted into the container as /etc/resolv.conf'],
  [/^resolv\.conf\.hash$/, 'the hash dockerd keeps to see whether resolv.conf was edited'],
  [/^mounts(\/.*)?$/, 'mounts dockerd makes for it (secrets, configs, shm)'],
  [/^checkpoints(\/.*)?$/, 'its checkpoints (docker checkpoint)'],
];

export function containerPath(store: DockerMeta, parts: string[]): Part {
  if (parts.length === 1) return { owner: 'store', summary: "dockerd's containers (one directory per container ID)", notes: [] };
  const id = parts[1]!;
  if (!HEX64.test(id)) return { owner: 'other', summary: `${id} is not a container ID: dockerd does not load it`, notes: [] };
  const ref = containerRef(store, id);
  const known = store.containers.some((c) => c.id === id && c.config !== undefined);
  const rest = parts.slice(2).join('/');
  const role = rest === '' ? 'its directory' : (CONTAINER_FILES.find(([re]) => re.test(rest))?.[1] ?? `a file of its directory (${rest})`);
  return {
    owner: 'container',
    summary: `container ${ref.name} (${short(id)}): ${role}`,
    container: { ...ref, role },
    notes: known ? [] : ['config.v2.json is missing or unreadable: dockerd skips this container'],
  };
}

export function volumePath(store: DockerMeta, parts: string[]): Part {
  if (parts.length === 1) return { owner: 'store', summary: "the local volume driver's home", notes: [] };
  if (parts[1] === 'metadata.db' && parts.length === 2)
    return {
      owner: 'store',
      summary: "the volume store's BoltDB (volumes/metadata.db: names, drivers, labels, options); dockerd holds its lock while it runs",
      notes: [],
    };
  const name = parts[1]!;
  const v = store.volumes.volumes.find((x) => x.name === name);
  const inData = parts[2] === '_data';
  const inner = inData ? `/${parts.slice(3).join('/')}` : undefined;
  const mountedBy: NonNullable<WhichResult['volume']>['mountedBy'] = [];
  for (const c of store.containers) {
    for (const mp of Object.values(c.config?.MountPoints ?? {})) {
      if (mp === null || typeof mp !== 'object' || mp.Type !== 'volume' || mp.Name !== name) continue;
      const dest = (mp.Destination ?? '').replace(/\/+$/, '');
      mountedBy.push({
        id: c.id,
        name: c.config?.Name ?? '',
        destination: mp.Destination ?? '',
        pathInContainer: inner === undefined || inner === '/' ? dest || '/' : `${dest}${inner}`,
        rw: mp.RW === true,
      });
    }
  }
  return {
    owner: 'volume',
    summary: `volume ${name}${inData ? `, at ${inner} in the volume` : parts.length === 2 ? ': its directory' : `: ${parts.slice(2).join('/')}`}${mountedBy.length === 0 ? ' (no container mounts it)' : ''}`,
    volume: { name, pathInVolume: inner ?? '', mountedBy },
    notes: v === undefined ? ['the volume store does not list this volume'] : [],
  };
}

function imagePath(store: Store, parts: string[]): Part {
  const drv = parts[1];
  const notes: string[] = [];
  if (drv === undefined) return { owner: 'store', summary: 'the image stores (one per graphdriver)', notes };
  if (drv !== store.driver) notes.push(`image/${drv}/ is the image store of another driver than the one read (${store.driver})`);
  const rest = parts.slice(2).join('/');
  let m: RegExpExecArray | null;
  if ((m = /^imagedb\/(content|metadata)\/sha256\/([a-f0-9]{64})(?:\/(.*))?$/.exec(rest)) !== null) {
    const id = `sha256:${m[2]}`;
    const img = drv === store.driver ? store.images.get(id) : undefined;
    const ref: ImageRef = { id, tags: store.refsOf(id).map((r) => r.normalized) };
    if (img === undefined) notes.push('the image store does not hold this image');
    const what = m[1] === 'content' ? 'its config (the image ID is its sha256)' : `its metadata${m[3] !== undefined ? ` (${m[3]})` : ''}`;
    return { owner: 'image', summary: `image ${ref.tags[0] ?? short(id)} (${short(id)}): ${what}`, image: ref, notes };
  }
  if ((m = /^layerdb\/sha256\/([a-f0-9]{64})(?:\/(.*))?$/.exec(rest)) !== null) {
    const chainId = `sha256:${m[1]}`;
    const l = store.layers.get(chainId);
    const users = new Set<string>();
    for (const mm of store.mounts) if (mm.parent !== undefined && chainBelow(store, mm.parent).includes(chainId)) users.add(mm.containerId);
    return {
      owner: 'layer-metadata',
      summary: `layer ${short(chainId)}: ${m[2] === undefined ? 'its layerdb entry' : `its ${m[2]}`}`,
      ...(l?.cacheId !== undefined
        ? {
            layer: {
              chainId,
              ...(l.diffId !== undefined ? { diffId: l.diffId } : {}),
              cacheId: l.cacheId,
              ...(l.parent !== undefined ? { parent: l.parent } : {}),
              dir: store.adapter.layerDir(l.cacheId),
            },
          }
        : {}),
      images: imageRefs(store, chainId),
      containers: [...users].sort().map((id) => ({ ...containerRef(store, id), sees: 'unknown' as const })),
      notes: l === undefined ? [...notes, 'layerdb does not load this layer'] : notes,
    };
  }
  if ((m = /^layerdb\/mounts\/([a-f0-9]{64})(?:\/(.*))?$/.exec(rest)) !== null) {
    const ref = containerRef(store, m[1]!);
    return {
      owner: 'container',
      summary: `container ${ref.name} (${short(ref.id)}): its layer record (${m[2] ?? 'mount-id, init-id, parent'})`,
      container: { ...ref, role: 'layer record' },
      notes,
    };
  }
  if (rest === 'repositories.json') return { owner: 'store', summary: 'the tag store (repositories.json: every tag and digest reference)', notes };
  if (rest === 'layerdb/tmp' || rest.startsWith('layerdb/tmp/'))
    return { owner: 'store', summary: "layerdb's staging (write-set-*: a layer being committed)", notes };
  return { owner: 'store', summary: `the ${drv} image store (${rest === '' ? 'its directory' : rest})`, notes };
}

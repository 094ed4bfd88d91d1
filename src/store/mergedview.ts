import { DatarootError } from '../formats/errors.js';
import type { Confined } from '../io/confined.js';
import { RawTree, type ByteStr, type RawFile } from '../io/rawtree.js';
import type { WhiteoutRules } from './rootfs.js';

/**
 * The file tree a container or image shows, streamed: the layer directories are merged the way
 * the kernel's union filesystem merges them (the topmost entry wins, a whiteout hides the name
 * below, an opaque directory hides everything below it), one directory at a time, and the
 * entries come out in the order Go's filepath.Walk visits the mounted tree (depth first, names
 * in byte order). Memory is bounded by the depth of the tree times the width of a directory; the
 * walk is iterative. Every path is read through `RawTree` (the confined layer, byte-exact names).
 */

const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

/** What the merge and its consumers need of an lstat (Node's Stats has these fields). */
export interface EntryStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  nlink: number;
  ino: number;
  dev: number;
  rdev: number;
}

export function fileType(st: EntryStat): number {
  return st.mode & S_IFMT;
}

export function isDirStat(st: EntryStat): boolean {
  return (st.mode & S_IFMT) === S_IFDIR;
}

/** One layer of a stack: a directory of the root, or the layer `docker create` would add (virtual). */
export interface ViewLayer {
  /** What the layer is, for messages and records ("overlay2/<id>/diff", "init layer docker create adds"). */
  readonly label: string;
  /** The entries of a directory of this layer and the names it whites out below; undefined when it has no such directory. */
  read(dir: ByteStr): LayerListing | undefined;
  /** Whether a directory of this layer hides the same directory of the layers below. */
  opaque(dir: ByteStr): boolean;
  /** Whether this layer whites out `name` of `dir` for the layers below (without listing the directory). */
  whitesOut(dir: ByteStr, name: ByteStr): boolean;
  /** The entry at a path of this layer (a whiteout is not an entry), or undefined. */
  lstat(path: ByteStr): EntryStat | undefined;
  readlink(path: ByteStr): ByteStr;
  open(path: ByteStr): RawFile;
  /** An extended attribute of an entry (undefined when absent or unreadable). */
  xattr(path: ByteStr, name: string): Buffer | undefined;
  /** The identity of an inode for hard links (exact for 64-bit inode numbers). */
  inode(path: ByteStr): string;
  /** The on-disk path of an entry, relative to the data-root (shown); undefined for a virtual layer. */
  where(path: ByteStr): string | undefined;
}

export interface LayerListing {
  entries: { name: ByteStr; stat: EntryStat | undefined }[];
  /** Names this directory's whiteouts hide in the layers below. */
  whiteouts: ByteStr[];
}

const WH = '.wh.';
const WH_OPQ = '.wh..wh..opq';

function isWhiteoutDevice(st: EntryStat): boolean {
  return (st.mode & S_IFMT) === S_IFCHR && st.rdev === 0;
}

/** A layer directory of the root, with its driver's whiteout convention. */
export class DiskLayer implements ViewLayer {
  readonly tree: RawTree;
  constructor(
    fs: Confined,
    readonly dir: string,
    readonly rules: WhiteoutRules,
  ) {
    this.tree = new RawTree(fs, dir);
  }
  get label(): string {
    return this.dir;
  }
  read(dir: ByteStr): LayerListing | undefined {
    const names = this.tree.list(dir);
    if (names === undefined) return undefined;
    const r = this.rules;
    const entries: LayerListing['entries'] = [];
    const whiteouts: ByteStr[] = [];
    for (const name of names) {
      if (r.hidden.includes(name)) continue;
      if (r.opaqueMarker && name === WH_OPQ) continue;
      if (r.prefixFiles && name.startsWith(WH)) {
        whiteouts.push(name.slice(WH.length));
        continue;
      }
      const path = dir === '' ? name : `${dir}/${name}`;
      const st = this.tree.lstat(path);
      if (st === undefined) continue;
      if (r.charDevice && isWhiteoutDevice(st)) {
        whiteouts.push(name);
        continue;
      }
      entries.push({ name, stat: st });
    }
    return { entries, whiteouts };
  }
  opaque(dir: ByteStr): boolean {
    for (const x of this.rules.opaqueXattrs) {
      const v = this.tree.xattr(dir, x).value;
      if (v !== undefined && v.length === 1 && v[0] === 0x79) return true;
    }
    return this.rules.opaqueMarker && this.tree.lstat(dir === '' ? WH_OPQ : `${dir}/${WH_OPQ}`) !== undefined;
  }
  whitesOut(dir: ByteStr, name: ByteStr): boolean {
    const path = dir === '' ? name : `${dir}/${name}`;
    if (this.rules.charDevice) {
      const st = this.tree.lstat(path);
      if (st !== undefined && isWhiteoutDevice(st)) return true;
    }
    if (this.rules.prefixFiles) {
      const wh = dir === '' ? `${WH}${name}` : `${dir}/${WH}${name}`;
      if (Buffer.byteLength(name, 'latin1') + WH.length <= 255 && this.tree.lstat(wh) !== undefined) return true;
    }
    return false;
  }
  lstat(path: ByteStr): EntryStat | undefined {
    const st = this.tree.lstat(path);
    if (st === undefined) return undefined;
    if (this.rules.charDevice && isWhiteoutDevice(st)) return undefined;
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (this.rules.prefixFiles && base.startsWith(WH)) return undefined;
    if (this.rules.hidden.includes(base)) return undefined;
    return st;
  }
  readlink(path: ByteStr): ByteStr {
    return this.tree.readlink(path);
  }
  open(path: ByteStr): RawFile {
    return this.tree.open(path);
  }
  xattr(path: ByteStr, name: string): Buffer | undefined {
    return this.tree.xattr(path, name).value;
  }
  inode(path: ByteStr): string {
    return this.tree.inode(path);
  }
  where(path: ByteStr): string {
    return this.tree.shown(path);
  }
}

/** A node of a virtual layer: what `docker create` adds (the init layer, the working directory). */
export type VirtualNode =
  /** A directory made new: 0755, root, hiding what was below (it replaced a non-directory, or nothing was there). */
  | { kind: 'dir'; stat: EntryStat; children: Map<ByteStr, VirtualNode> }
  /** A directory that exists below: its attributes are those of the directory below. */
  | { kind: 'keep'; children: Map<ByteStr, VirtualNode> }
  | { kind: 'file'; stat: EntryStat }
  | { kind: 'symlink'; stat: EntryStat; target: ByteStr };

/** A layer held in memory (the init layer of an image's view). */
export class VirtualLayer implements ViewLayer {
  readonly root: VirtualNode & { kind: 'keep' } = { kind: 'keep', children: new Map() };
  constructor(readonly label: string) {}
  node(path: ByteStr): VirtualNode | undefined {
    let n: VirtualNode | undefined = this.root;
    if (path === '') return n;
    for (const p of path.split('/')) {
      if (n === undefined || (n.kind !== 'dir' && n.kind !== 'keep')) return undefined;
      n = n.children.get(p);
    }
    return n;
  }
  read(dir: ByteStr): LayerListing | undefined {
    const n = this.node(dir);
    if (n === undefined || (n.kind !== 'dir' && n.kind !== 'keep')) return undefined;
    return { entries: [...n.children].map(([name, c]) => ({ name, stat: c.kind === 'keep' ? undefined : c.stat })), whiteouts: [] };
  }
  opaque(dir: ByteStr): boolean {
    return this.node(dir)?.kind === 'dir';
  }
  whitesOut(): boolean {
    return false;
  }
  lstat(path: ByteStr): EntryStat | undefined {
    const n = this.node(path);
    return n === undefined || n.kind === 'keep' ? undefined : n.stat;
  }
  readlink(path: ByteStr): ByteStr {
    const n = this.node(path);
    if (n?.kind !== 'symlink') throw new DatarootError('INTERNAL', `virtual ${path} is not a symlink`);
    return n.target;
  }
  open(path: ByteStr): RawFile {
    throw new DatarootError('INTERNAL', `virtual ${path} has no content to open`);
  }
  xattr(): undefined {
    return undefined;
  }
  inode(path: ByteStr): string {
    return `virtual:${path}`;
  }
  where(): undefined {
    return undefined;
  }
}

/** One entry of a merged view. */
export interface ViewEntry {
  /** The path inside the view (no leading slash), as a byte string. */
  path: ByteStr;
  name: ByteStr;
  stat: EntryStat;
  /** The index of the layer the entry (its attributes and content) comes from. */
  layer: number;
}

interface Child {
  name: ByteStr;
  stat: EntryStat | undefined;
  layer: number;
  /** For a directory: the layers that contribute to it, topmost first, and whether a lower one may still join. */
  sub?: number[];
  closed?: boolean;
}

/** The merged children of a directory, from the layers that contribute to it (topmost first), in byte order. */
function mergedChildren(layers: readonly ViewLayer[], dir: ByteStr, from: readonly number[]): Child[] {
  const children = new Map<ByteStr, Child>();
  const hidden = new Set<ByteStr>();
  for (const li of from) {
    const listing = layers[li]!.read(dir);
    if (listing === undefined) continue;
    for (const { name, stat } of listing.entries) {
      if (hidden.has(name)) continue;
      const existing = children.get(name);
      const path = dir === '' ? name : `${dir}/${name}`;
      if (existing !== undefined) {
        if (existing.sub !== undefined && existing.closed !== true) {
          if (stat !== undefined && isDirStat(stat)) {
            existing.sub.push(li);
            // A directory kept by a virtual layer takes its attributes from the first one below.
            if (existing.stat === undefined) {
              existing.stat = stat;
              existing.layer = li;
            }
            if (layers[li]!.opaque(path)) existing.closed = true;
          } else existing.closed = true;
        }
        continue;
      }
      const dirLike = stat === undefined || isDirStat(stat);
      const c: Child = { name, stat, layer: li };
      if (dirLike) {
        c.sub = [li];
        c.closed = layers[li]!.opaque(path);
      }
      children.set(name, c);
    }
    for (const n of listing.whiteouts) hidden.add(n);
  }
  return [...children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Every entry of the merged view of `layers` (topmost first), depth first with names in byte
 * order, the root itself not included (as `docker export` leaves it out). `layers` with one
 * full-tree layer is that tree.
 */
export function* walkView(layers: readonly ViewLayer[], start: ByteStr = ''): Generator<ViewEntry> {
  if (layers.length === 0) throw new DatarootError('INTERNAL', 'walkView: no layers');
  const all = layers.map((_, i) => i);
  const stack: { dir: ByteStr; kids: Child[]; i: number }[] = [{ dir: start, kids: mergedChildren(layers, start, all), i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i >= top.kids.length) {
      stack.pop();
      continue;
    }
    const c = top.kids[top.i++]!;
    if (c.stat === undefined) continue; // a kept directory with nothing below it: cannot happen for the layers dataroot builds
    const path = top.dir === '' ? c.name : `${top.dir}/${c.name}`;
    yield { path, name: c.name, stat: c.stat, layer: c.layer };
    if (c.sub !== undefined && isDirStat(c.stat)) stack.push({ dir: path, kids: mergedChildren(layers, path, c.sub), i: 0 });
  }
}

/** How a stack resolves one path: the entry a mount shows, or why there is none. */
export interface Resolved {
  /** The layer whose entry the view shows (for a directory: the topmost of those merged). */
  found?: { layer: number; stat: EntryStat };
  /** For a directory: every layer merged into it, topmost first. */
  merged: number[];
  /** Why `watch` (a layer that has the path) is not what the view shows at it. */
  lost?: { why: 'whiteout' | 'opaque' | 'replaced'; by: number };
  /** Why nothing is shown: a whiteout, or a non-directory where a parent is. */
  missing?: { why: 'whiteout' | 'absent' | 'notdir'; by?: number };
}

/**
 * Resolves a path in the merged view of `layers`, component by component, as overlayfs looks it
 * up. With `watch` (a layer that has the path), also says why that layer's entry is not what the
 * view shows, when it is not.
 */
export function resolveInView(layers: readonly ViewLayer[], path: ByteStr, watch?: number): Resolved {
  let active = layers.map((_, i) => i);
  const parts = path === '' ? [] : path.split('/');
  if (parts.length === 0) {
    const st = layers[0]!.lstat('');
    return st === undefined ? { merged: active } : { found: { layer: 0, stat: st }, merged: active };
  }
  let dir = '';
  let lost: Resolved['lost'];
  for (let k = 0; k < parts.length; k++) {
    const name = parts[k]!;
    const p = dir === '' ? name : `${dir}/${name}`;
    let first: { layer: number; stat: EntryStat } | undefined;
    const merged: number[] = [];
    let cut: { why: 'whiteout' | 'opaque' | 'replaced'; by: number } | undefined;
    for (const li of active) {
      const L = layers[li]!;
      const st = L.lstat(p);
      if (st !== undefined) {
        if (first === undefined) {
          first = { layer: li, stat: st };
          merged.push(li);
          if (!isDirStat(st)) {
            cut = { why: 'replaced', by: li };
            break;
          }
        } else if (isDirStat(st)) merged.push(li);
        else {
          cut = { why: 'replaced', by: first.layer };
          break;
        }
        if (L.opaque(p)) {
          cut = { why: 'opaque', by: li };
          break;
        }
      }
      if (L.whitesOut(dir, name)) {
        cut = { why: 'whiteout', by: li };
        break;
      }
    }
    if (lost === undefined && watch !== undefined && active.includes(watch) && !merged.includes(watch) && cut !== undefined) lost = { ...cut };
    if (first === undefined)
      return { merged: [], ...(lost !== undefined ? { lost } : {}), missing: cut?.why === 'whiteout' ? { why: 'whiteout', by: cut.by } : { why: 'absent' } };
    if (k === parts.length - 1) return { found: first, merged, ...(lost !== undefined ? { lost } : {}) };
    if (!isDirStat(first.stat)) return { merged: [], ...(lost !== undefined ? { lost } : {}), missing: { why: 'notdir', by: first.layer } };
    active = merged;
    dir = p;
  }
  return { merged: [] };
}

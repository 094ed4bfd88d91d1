import type { Confined } from '../io/confined.js';
import { LIMITS, symlinkTargetInside } from '../io/confined.js';
import { LINK_ID, LINK_TARGET, LOWER_ENTRY, MOUNT_ID } from './ids.js';
import { metaText } from './fsread.js';
import { problem, type Problem } from './problems.js';
import { WHITEOUTS, type WhiteoutRules } from './rootfs.js';
import { parseJsonBounded } from '../formats/json/bounded.js';

/**
 * One adapter per graphdriver: where a layer's (or a container layer's) files are, how a mounted
 * view stacks them, and which whiteout convention they use. Metadata (images, layers, containers)
 * never depends on the driver; only layer contents go through these.
 *
 * - `diff` drivers keep each layer's own changes and let the kernel merge them (overlay2,
 *   fuse-overlayfs, aufs, and overlay's container layers);
 * - `full` drivers keep a complete tree per layer (vfs, btrfs, zfs, overlay's image layers);
 * - `none`: contents not readable offline (devicemapper thin devices, windowsfilter, unmounted zfs).
 */
export interface ViewDirs {
  /** Directories relative to the root, topmost first. */
  dirs: string[];
  /** How they merge: overlay or aufs conventions; `none` for a single full tree. */
  whiteouts: WhiteoutRules;
  problems: Problem[];
}

export interface DriverAdapter {
  readonly name: string;
  readonly content: 'diff' | 'full' | 'none';
  /** The directory that exists when a layer (by cache-id or mount-id) exists. */
  layerDir(id: string): string;
  /** What stands at layerDir for a layer that exists ('file' for devicemapper's metadata/<id>). */
  readonly layerDirKind: 'dir' | 'file';
  /**
   * How verify rebuilds the tree a layer's tar describes in its content dir: whiteouts as the
   * devices overlayfs keeps, kept as `.wh.` files (aufs, fuse-overlayfs image layers), or applied
   * over the parent's full tree.
   */
  readonly layerTree: 'overlay' | 'keep' | 'apply';
  /** Every path that belongs to the id (what gc removes with it), beyond the overlay2 l/ link. */
  ownedPaths(fs: Confined, id: string): string[];
  /** The tree of the layer's own files: its diff, or its full tree for `full` drivers. */
  contentDir(fs: Confined, id: string): string | undefined;
  /** The directories a mount of `id` stacks, topmost first, as the driver would mount them. */
  viewDirs(fs: Confined, id: string): ViewDirs;
  /** The per-id directories of the driver home, for orphan detection (name, path). */
  layerDirNames(fs: Confined): { name: string; rel: string }[];
  /** GraphDriver.Data of `docker inspect` (absolute paths through `shown`), or null. */
  graphDriverData(fs: Confined, id: string, shown: (rel: string) => string): Record<string, string> | null;
}

/** The lower dirs of an overlay2-style layer, nearest first, resolved through the l/ links. */
export function overlayLowerDirs(fs: Confined, home: string, id: string): { dirs: string[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const lower = metaText(fs, `${home}/${id}/lower`, LIMITS.meta, problems);
  const dirs: string[] = [];
  if (lower === undefined || lower === '') return { dirs, problems };
  for (const entry of lower.trim().split(':')) {
    if (!LOWER_ENTRY.test(entry)) {
      problems.push(
        problem(
          'OVERLAY_LOWER_INVALID',
          `${id}/lower names ${JSON.stringify(entry.slice(0, 80))}, not an l/<26-character link>: it is not followed`,
          `${home}/${id}/lower`,
        ),
      );
      continue;
    }
    const rel = `${home}/${entry}`;
    let target: string | undefined;
    try {
      target = fs.readlink(rel);
    } catch {
      target = undefined;
    }
    if (target === undefined) {
      problems.push(problem('OVERLAY_LINK_BROKEN', `${entry} (in ${id}/lower) is not a symlink: the mount would fail`, rel));
      continue;
    }
    // A link is "../<cache-id>/diff"; anything else is reported, never followed.
    const m = LINK_TARGET.exec(target);
    if (m === null) {
      const inside = symlinkTargetInside(rel, target);
      problems.push(
        problem(
          inside === undefined ? 'SYMLINK_OUT_OF_ROOT' : 'OVERLAY_LINK_BROKEN',
          `${entry} points to ${JSON.stringify(target)}, not ../<cache-id>/diff: it is not followed`,
          rel,
        ),
      );
      continue;
    }
    dirs.push(`${home}/${m[1]}/diff`);
  }
  return { dirs, problems };
}

/**
 * GraphDriver.Data of a layer an overlay driver mounts, as dockerd reports it: LowerDir (the lower
 * directories joined by `:`, when there are any), then MergedDir, UpperDir (`dir`/`upper`) and WorkDir.
 */
function overlayMountData(lower: string[], dir: string, upper: string, shown: (rel: string) => string): Record<string, string> {
  const data: Record<string, string> = {};
  if (lower.length > 0) data['LowerDir'] = lower.map(shown).join(':');
  data['MergedDir'] = shown(`${dir}/merged`);
  data['UpperDir'] = shown(`${dir}/${upper}`);
  data['WorkDir'] = shown(`${dir}/work`);
  return data;
}

class Overlay2 implements DriverAdapter {
  readonly content = 'diff' as const;
  readonly layerDirKind = 'dir' as const;
  /** fuse-overlayfs applies image layers in aufs form: `.wh.` files, `.wh..wh..opq` files. */
  readonly layerTree: 'overlay' | 'keep';
  constructor(readonly name: string) {
    this.layerTree = name === 'fuse-overlayfs' ? 'keep' : 'overlay';
  }
  layerDir(id: string): string {
    return `${this.name}/${id}`;
  }
  ownedPaths(fs: Confined, id: string): string[] {
    const out = [this.layerDir(id)];
    const link = metaText(fs, `${this.name}/${id}/link`, LIMITS.meta, []);
    if (link !== undefined && LINK_ID.test(link) && fs.kind(`${this.name}/l/${link}`) === 'symlink') out.push(`${this.name}/l/${link}`);
    return out;
  }
  contentDir(_fs: Confined, id: string): string {
    return `${this.name}/${id}/diff`;
  }
  viewDirs(fs: Confined, id: string): ViewDirs {
    const { dirs, problems } = overlayLowerDirs(fs, this.name, id);
    return { dirs: [`${this.name}/${id}/diff`, ...dirs], whiteouts: this.name === 'fuse-overlayfs' ? WHITEOUTS.fuseOverlayfs : WHITEOUTS.overlay, problems };
  }
  layerDirNames(fs: Confined): { name: string; rel: string }[] {
    return fs
      .names(this.name)
      .filter((n) => n !== 'l')
      .map((name) => ({ name, rel: `${this.name}/${name}` }));
  }
  graphDriverData(fs: Confined, id: string, shown: (rel: string) => string): Record<string, string> | null {
    if (!fs.isDir(`${this.name}/${id}`)) return null;
    return overlayMountData(overlayLowerDirs(fs, this.name, id).dirs, `${this.name}/${id}`, 'diff', shown);
  }
}

/**
 * overlay, the first overlay driver: an image layer is a full tree in `<id>/root` (the parent's
 * root hard-linked, the layer applied on top); a container layer (and its init layer) is
 * `<id>/upper` over the root of the layer named by `<id>/lower-id`.
 */
class Overlay1 implements DriverAdapter {
  readonly name = 'overlay';
  readonly content = 'full' as const;
  readonly layerDirKind = 'dir' as const;
  readonly layerTree = 'apply' as const;
  layerDir(id: string): string {
    return `overlay/${id}`;
  }
  ownedPaths(_fs: Confined, id: string): string[] {
    return [this.layerDir(id)];
  }
  private lowerId(fs: Confined, id: string, problems: Problem[]): string | undefined {
    const raw = metaText(fs, `overlay/${id}/lower-id`, LIMITS.meta, problems);
    if (raw === undefined) return undefined;
    const lid = raw.trim();
    if (!MOUNT_ID.test(lid)) {
      problems.push(
        problem('OVERLAY_LOWER_INVALID', `${id}/lower-id is ${JSON.stringify(lid.slice(0, 80))}, not a layer id: it is not followed`, `overlay/${id}/lower-id`),
      );
      return undefined;
    }
    return lid;
  }
  contentDir(fs: Confined, id: string): string | undefined {
    if (fs.isDir(`overlay/${id}/root`)) return `overlay/${id}/root`;
    if (fs.isDir(`overlay/${id}/upper`)) return `overlay/${id}/upper`;
    return undefined;
  }
  viewDirs(fs: Confined, id: string): ViewDirs {
    const problems: Problem[] = [];
    if (fs.isDir(`overlay/${id}/root`)) return { dirs: [`overlay/${id}/root`], whiteouts: WHITEOUTS.none, problems };
    const lid = this.lowerId(fs, id, problems);
    const dirs = [`overlay/${id}/upper`];
    if (lid !== undefined) dirs.push(`overlay/${lid}/root`);
    return { dirs, whiteouts: WHITEOUTS.overlay, problems };
  }
  layerDirNames(fs: Confined): { name: string; rel: string }[] {
    return fs.names('overlay').map((name) => ({ name, rel: `overlay/${name}` }));
  }
  graphDriverData(fs: Confined, id: string, shown: (rel: string) => string): Record<string, string> | null {
    if (!fs.isDir(`overlay/${id}`)) return null;
    if (fs.isDir(`overlay/${id}/root`)) return { RootDir: shown(`overlay/${id}/root`) };
    const lid = this.lowerId(fs, id, []);
    return overlayMountData(lid !== undefined ? [`overlay/${lid}/root`] : [], `overlay/${id}`, 'upper', shown);
  }
}

/** aufs: `diff/<id>` holds the layer's changes (aufs whiteouts), `layers/<id>` its parents, nearest first. */
class Aufs implements DriverAdapter {
  readonly name = 'aufs';
  readonly content = 'diff' as const;
  readonly layerDirKind = 'dir' as const;
  readonly layerTree = 'keep' as const;
  layerDir(id: string): string {
    return `aufs/diff/${id}`;
  }
  ownedPaths(fs: Confined, id: string): string[] {
    return [`aufs/diff/${id}`, `aufs/layers/${id}`, `aufs/mnt/${id}`].filter((p) => fs.exists(p));
  }
  contentDir(_fs: Confined, id: string): string {
    return `aufs/diff/${id}`;
  }
  parents(fs: Confined, id: string, problems: Problem[]): string[] {
    const text = metaText(fs, `aufs/layers/${id}`, LIMITS.meta, problems);
    if (text === undefined) return [];
    const out: string[] = [];
    for (const line of text.split('\n')) {
      const p = line.trim();
      if (p === '') continue;
      if (!MOUNT_ID.test(p)) {
        problems.push(
          problem('AUFS_LAYERS_INVALID', `layers/${id} names ${JSON.stringify(p.slice(0, 80))}, not a layer id: it is not followed`, `aufs/layers/${id}`),
        );
        continue;
      }
      out.push(p);
    }
    return out;
  }
  viewDirs(fs: Confined, id: string): ViewDirs {
    const problems: Problem[] = [];
    const dirs = [`aufs/diff/${id}`, ...this.parents(fs, id, problems).map((p) => `aufs/diff/${p}`)];
    return { dirs, whiteouts: WHITEOUTS.aufs, problems };
  }
  layerDirNames(fs: Confined): { name: string; rel: string }[] {
    return fs.names('aufs/diff').map((name) => ({ name, rel: `aufs/diff/${name}` }));
  }
  graphDriverData(): null {
    return null;
  }
}

/** Drivers that keep a full tree per layer at `<home>/<sub>/<id>`: vfs (dir/), btrfs (subvolumes/), zfs (graph/). */
class FullTree implements DriverAdapter {
  readonly content = 'full' as const;
  readonly layerDirKind = 'dir' as const;
  readonly layerTree = 'apply' as const;
  constructor(
    readonly name: string,
    private readonly sub: string,
  ) {}
  layerDir(id: string): string {
    return `${this.name}/${this.sub}/${id}`;
  }
  ownedPaths(_fs: Confined, id: string): string[] {
    return [this.layerDir(id)];
  }
  contentDir(fs: Confined, id: string): string | undefined {
    // zfs datasets are mounted at graph/<id> only while dockerd runs: an empty mountpoint holds nothing to read.
    if (this.name === 'zfs' && fs.names(this.layerDir(id)).length === 0) return undefined;
    return this.layerDir(id);
  }
  viewDirs(_fs: Confined, id: string): ViewDirs {
    return { dirs: [this.layerDir(id)], whiteouts: WHITEOUTS.none, problems: [] };
  }
  layerDirNames(fs: Confined): { name: string; rel: string }[] {
    return fs.names(`${this.name}/${this.sub}`).map((name) => ({ name, rel: `${this.name}/${this.sub}/${name}` }));
  }
  graphDriverData(): null {
    return null;
  }
}

/** Drivers whose layer contents cannot be read offline: metadata only. */
class NoContent implements DriverAdapter {
  readonly content = 'none' as const;
  readonly layerTree = 'apply' as const;
  readonly layerDirKind: 'dir' | 'file';
  constructor(
    readonly name: string,
    private readonly sub: string,
  ) {
    this.layerDirKind = name === 'devicemapper' ? 'file' : 'dir';
  }
  layerDir(id: string): string {
    return this.sub === '' ? `${this.name}/${id}` : `${this.name}/${this.sub}/${id}`;
  }
  ownedPaths(fs: Confined, id: string): string[] {
    return [this.layerDir(id)].filter((p) => fs.exists(p));
  }
  contentDir(): undefined {
    return undefined;
  }
  viewDirs(): ViewDirs {
    return { dirs: [], whiteouts: WHITEOUTS.none, problems: [] };
  }
  layerDirNames(fs: Confined): { name: string; rel: string }[] {
    return fs.names(this.sub === '' ? this.name : `${this.name}/${this.sub}`).map((name) => ({ name, rel: this.layerDir(name) }));
  }
  /** devicemapper: DeviceId and DeviceSize from metadata/<id> (its DeviceName needs the pool's device numbers on the host). */
  graphDriverData(fs: Confined, id: string): Record<string, string> | null {
    if (this.name !== 'devicemapper') return null;
    const text = metaText(fs, this.layerDir(id), LIMITS.meta, []);
    if (text === undefined) return null;
    try {
      const m = parseJsonBounded(text) as { device_id?: unknown; size?: unknown };
      if (typeof m.device_id !== 'number' || typeof m.size !== 'number') return null;
      return { DeviceId: String(m.device_id), DeviceSize: String(m.size) };
    } catch {
      return null;
    }
  }
}

/** The adapter of a driver name; an unknown name reads metadata only. */
export function adapterFor(driver: string): DriverAdapter {
  switch (driver) {
    case 'overlay2':
    case 'fuse-overlayfs':
      return new Overlay2(driver);
    case 'overlay':
      return new Overlay1();
    case 'aufs':
      return new Aufs();
    case 'vfs':
      return new FullTree('vfs', 'dir');
    case 'btrfs':
      return new FullTree('btrfs', 'subvolumes');
    case 'zfs':
      return new FullTree('zfs', 'graph');
    case 'devicemapper':
      return new NoContent('devicemapper', 'metadata');
    default:
      return new NoContent(driver, '');
  }
}

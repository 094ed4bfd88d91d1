import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { LIMITS, type Confined } from '../io/confined.js';
import { copyTree } from '../io/copytree.js';
import type { LayerExtractor, WhiteoutMode } from '../io/extract.js';
import { metaText } from './fsread.js';
import { LINK_ID, LOWER_ENTRY, MOUNT_ID } from './ids.js';
import type { Problem } from './problems.js';
import { STAGING } from './write.js';

/**
 * How inject lays a new layer into each graphdriver's home, as that driver's ApplyDiff would:
 * where it is staged, what the tar is applied over (nothing, or the parent's full tree), how
 * whiteouts are kept, what size the layer store records, and what lives outside the layer's own
 * directory (overlay2's l/ link and `committed` marker, aufs's parent list and mount point).
 */
export interface ParentLayer {
  cacheId: string;
  /** The parent's full tree (full-tree drivers), relative to the root. */
  content: string;
  /** overlay2/fuse-overlayfs: its link id and its own lower. */
  link: string;
  lower: string;
  /** aufs: its ancestors, nearest first. */
  ancestors: string[];
}

export interface LayerWriter {
  readonly driver: string;
  /** Layers are independent directories (extracted several at once) or built from their parent's tree (one at a time). */
  readonly parallel: boolean;
  readonly whiteouts: WhiteoutMode;
  /** The directory renamed into place. */
  final(cacheId: string): string;
  staging(cacheId: string): string;
  /** The layer's full tree (what a child copies), relative to the root, given its top directory. */
  contentOf(top: string): string;
  /** Creates the staging directory; returns the absolute directory the tar is applied to and what is already there. */
  prepare(fs: Confined, staging: string, parent: ParentLayer | undefined): { target: string; existing: Map<string, boolean> };
  /** What the layer store records as the layer's size. */
  size(x: LayerExtractor): number;
  /** Files inside the layer directory, after extraction (overlay2: link, lower, work). */
  finish(fs: Confined, staging: string, link: string, parent: ParentLayer | undefined): void;
  /** After the rename into place, what lives outside the layer directory; returns the paths it made. */
  attach(fs: Confined, cacheId: string, link: string, parent: ParentLayer | undefined): string[];
  /** A layer already in the store, as a parent (its files checked: nothing followed out of the root). */
  parentOf(fs: Confined, cacheId: string, chainId: string): ParentLayer;
}

function meta(fs: Confined, rel: string, chainId: string): string {
  const problems: Problem[] = [];
  const v = metaText(fs, rel, LIMITS.meta, problems);
  if (problems.length > 0) throw new DatarootError('STORE_LAYER_BROKEN', `layer ${chainId}: ${problems[0]!.message}`, { file: fs.abs(rel) });
  return v ?? '';
}

function requireDir(fs: Confined, rel: string, chainId: string): void {
  let ok: boolean;
  try {
    ok = fs.requireDir(rel);
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    throw new DatarootError('STORE_LAYER_BROKEN', `layer ${chainId}: ${e.message}`, { file: fs.abs(rel) });
  }
  if (!ok) throw new DatarootError('STORE_LAYER_BROKEN', `layer ${chainId}: its directory ${rel} is missing`, { file: fs.abs(rel) });
}

function mkdirMode(fs: Confined, rel: string, mode: number): string {
  fs.mkdirs(rel, mode);
  chmodSync(fs.abs(rel), mode);
  return fs.abs(rel);
}

/** overlay2 and fuse-overlayfs: `<id>/diff`, `link`, `lower`, `work`; `l/<link>` and the parent's `committed`. */
class OverlayLinks implements LayerWriter {
  readonly parallel = true;
  readonly whiteouts: WhiteoutMode;
  constructor(readonly driver: 'overlay2' | 'fuse-overlayfs') {
    // fuse-overlayfs applies layers in aufs form (its ApplyDiff uses AUFSWhiteoutFormat).
    this.whiteouts = driver === 'overlay2' ? 'overlay' : 'aufs';
  }
  final(cacheId: string): string {
    return `${this.driver}/${cacheId}`;
  }
  staging(cacheId: string): string {
    return `${this.driver}/${cacheId}${STAGING}`;
  }
  contentOf(top: string): string {
    return `${top}/diff`;
  }
  prepare(fs: Confined, staging: string): { target: string; existing: Map<string, boolean> } {
    mkdirMode(fs, staging, 0o710);
    return { target: mkdirMode(fs, `${staging}/diff`, 0o755), existing: new Map() };
  }
  size(x: LayerExtractor): number {
    return x.duSize;
  }
  finish(fs: Confined, staging: string, link: string, parent: ParentLayer | undefined): void {
    fs.writeNewFile(`${staging}/link`, link, 0o644);
    if (parent === undefined) return;
    fs.writeNewFile(`${staging}/lower`, parent.lower === '' ? `l/${parent.link}` : `l/${parent.link}:${parent.lower}`, 0o644);
    mkdirMode(fs, `${staging}/work`, this.driver === 'overlay2' ? 0o700 : 0o710);
  }
  attach(fs: Confined, cacheId: string, link: string, parent: ParentLayer | undefined): string[] {
    const made: string[] = [];
    const lp = `${this.driver}/l/${link}`;
    if (!fs.exists(lp)) {
      fs.symlink(`../${cacheId}/diff`, lp);
      made.push(lp);
    }
    if (parent !== undefined) {
      const c = `${this.driver}/${parent.cacheId}/committed`;
      if (!fs.exists(c)) fs.writeNewFile(c, '', 0o600);
    }
    return made;
  }
  parentOf(fs: Confined, cacheId: string, chainId: string): ParentLayer {
    const top = this.final(cacheId);
    requireDir(fs, top, chainId);
    const link = meta(fs, `${top}/link`, chainId);
    const lower = meta(fs, `${top}/lower`, chainId);
    if (!LINK_ID.test(link) || (lower !== '' && !lower.split(':').every((x) => LOWER_ENTRY.test(x)))) {
      throw new DatarootError('STORE_LAYER_BROKEN', `layer ${chainId}: its link or lower file is not of the driver's form: run dataroot verify`, {
        file: fs.abs(top),
      });
    }
    return { cacheId, content: this.contentOf(top), link, lower, ancestors: [] };
  }
}

/** aufs: `diff/<id>` (whiteouts kept as files), `layers/<id>` (ancestors, nearest first, one a line), `mnt/<id>`. */
class AufsWriter implements LayerWriter {
  readonly driver = 'aufs';
  readonly parallel = true;
  readonly whiteouts = 'aufs' as const;
  final(cacheId: string): string {
    return `aufs/diff/${cacheId}`;
  }
  staging(cacheId: string): string {
    return `aufs/diff/${cacheId}${STAGING}`;
  }
  contentOf(top: string): string {
    return top;
  }
  prepare(fs: Confined, staging: string): { target: string; existing: Map<string, boolean> } {
    return { target: mkdirMode(fs, staging, 0o755), existing: new Map() };
  }
  size(x: LayerExtractor): number {
    return x.duSize;
  }
  finish(): void {}
  attach(fs: Confined, cacheId: string, _link: string, parent: ParentLayer | undefined): string[] {
    const made: string[] = [];
    fs.mkdirs('aufs/layers', 0o755);
    const ancestors = parent === undefined ? [] : [parent.cacheId, ...parent.ancestors];
    fs.writeNewFile(`aufs/layers/${cacheId}`, ancestors.map((a) => `${a}\n`).join(''), 0o644);
    made.push(`aufs/layers/${cacheId}`);
    fs.mkdirs('aufs/mnt', 0o755);
    if (!fs.exists(`aufs/mnt/${cacheId}`)) {
      mkdirMode(fs, `aufs/mnt/${cacheId}`, 0o755);
      made.push(`aufs/mnt/${cacheId}`);
    }
    return made;
  }
  parentOf(fs: Confined, cacheId: string, chainId: string): ParentLayer {
    requireDir(fs, this.final(cacheId), chainId);
    const ancestors = meta(fs, `aufs/layers/${cacheId}`, chainId)
      .split('\n')
      .map((x) => x.trim())
      .filter((x) => x !== '');
    if (!ancestors.every((a) => MOUNT_ID.test(a)))
      throw new DatarootError('STORE_LAYER_BROKEN', `layer ${chainId}: aufs/layers/${cacheId} names something that is not a layer id`, {
        file: fs.abs(`aufs/layers/${cacheId}`),
      });
    return { cacheId, content: this.final(cacheId), link: '', lower: '', ancestors };
  }
}

/**
 * Full-tree drivers: each layer starts as its parent's tree and the tar is applied over it with
 * whiteouts executed. vfs copies the parent (`dir/<id>`); overlay hard-links the parent's `root/`
 * into `<id>/root`; btrfs snapshots the parent's subvolume (`subvolumes/<id>`).
 */
class FullTreeWriter implements LayerWriter {
  readonly parallel = false;
  readonly whiteouts = 'delete' as const;
  constructor(readonly driver: 'vfs' | 'overlay' | 'btrfs') {}
  final(cacheId: string): string {
    return this.driver === 'vfs' ? `vfs/dir/${cacheId}` : this.driver === 'btrfs' ? `btrfs/subvolumes/${cacheId}` : `overlay/${cacheId}`;
  }
  staging(cacheId: string): string {
    return `${this.final(cacheId)}${STAGING}`;
  }
  contentOf(top: string): string {
    return this.driver === 'overlay' ? `${top}/root` : top;
  }
  prepare(fs: Confined, staging: string, parent: ParentLayer | undefined): { target: string; existing: Map<string, boolean> } {
    if (this.driver === 'btrfs') {
      fs.mkdirs('btrfs/subvolumes', 0o700);
      const args = parent === undefined ? ['subvolume', 'create', fs.abs(staging)] : ['subvolume', 'snapshot', fs.abs(parent.content), fs.abs(staging)];
      const r = spawnSync('btrfs', args, { encoding: 'utf8' });
      if (r.error !== undefined || r.status !== 0) {
        throw new DatarootError(
          'STORE_BTRFS_FAILED',
          `btrfs ${args.slice(0, 2).join(' ')} failed: ${(r.stderr ?? r.error?.message ?? '').trim()} (the root must be on a btrfs file system, with btrfs-progs installed)`,
          { file: fs.abs(staging) },
        );
      }
      chmodSync(fs.abs(staging), 0o755);
      const existing = new Map<string, boolean>();
      for (const e of fs.walk(staging)) existing.set(e.rel.slice(staging.length + 1), e.stat.isDirectory());
      return { target: fs.abs(staging), existing };
    }
    const top = this.driver === 'overlay' ? mkdirMode(fs, staging, 0o700) : undefined;
    void top;
    const content = this.contentOf(staging);
    if (parent === undefined) return { target: mkdirMode(fs, content, 0o755), existing: new Map() };
    const existing = copyTree(fs.abs(parent.content), fs.abs(content), { hardlink: this.driver === 'overlay' });
    return { target: fs.abs(content), existing };
  }
  size(x: LayerExtractor): number {
    return x.tarSize;
  }
  finish(): void {}
  attach(): string[] {
    return [];
  }
  parentOf(fs: Confined, cacheId: string, chainId: string): ParentLayer {
    const content = this.contentOf(this.final(cacheId));
    requireDir(fs, content, chainId);
    return { cacheId, content, link: '', lower: '', ancestors: [] };
  }
}

/** The writer of a driver, or a coded refusal for the drivers inject cannot write offline. */
export function layerWriter(driver: string): LayerWriter {
  switch (driver) {
    case 'overlay2':
    case 'fuse-overlayfs':
      return new OverlayLinks(driver);
    case 'aufs':
      return new AufsWriter();
    case 'vfs':
    case 'overlay':
    case 'btrfs':
      return new FullTreeWriter(driver);
    default:
      throw new DatarootError(
        'STORE_DRIVER_UNSUPPORTED',
        `inject cannot write a ${driver} store offline (its layers live in ${driver === 'zfs' ? 'zfs datasets' : driver === 'devicemapper' ? 'thin devices' : 'a format dataroot does not write'}): writable drivers are overlay2, fuse-overlayfs, overlay, aufs, btrfs and vfs`,
      );
  }
}

/** The drivers whose stores inject writes. */
export const WRITABLE_DRIVERS = ['overlay2', 'fuse-overlayfs', 'overlay', 'aufs', 'btrfs', 'vfs'] as const;

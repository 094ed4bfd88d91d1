import { chainIds, DIGEST_RE } from '../formats/digest/digest.js';
import type { Confined } from '../io/confined.js';
import { parseReference } from '../formats/docker/reference.js';
import { readContainers, type ContainerRecord } from './containers.js';
import { readImages, readRepositories, type ImageRecord, type RefEntry } from './images.js';
import { readLayers, readMounts, type LayerRecord, type MountRecord } from './layers.js';
import { adapterFor, type DriverAdapter } from './drivers.js';
import { type Layout } from './layout.js';
import { readNetworkKv, type KvRecord } from './networks.js';
import { problem, type Problem } from './problems.js';
import { realDir, type OpenedRoot } from './root.js';
import { readVolumes, type VolumeRecord } from './volumes.js';
import type { DriverChoice } from './driverchoice.js';

/** Why dockerd would not restore an image at start (it logs and skips it). */
export type NotRestored = 'invalid' | 'layer-missing' | 'os';

/**
 * The graphdriver store of one data-root as dockerd would load it at start: which layers load
 * (their own metadata and every parent's), which images are restored (valid config, loadable
 * chain), which references resolve. Everything is read once, lazily; damaged items carry their
 * problems and the rest is still listed.
 */
export class Store {
  readonly L: Layout;
  /** Every read of the root goes through this. */
  readonly fs: Confined;
  /** The root path as dockerd saw it, for the absolute paths it reports (GraphDriver, Mountpoint). */
  readonly shownRoot: string;
  readonly driver: string;
  readonly adapter: DriverAdapter;
  private cache = new Map<string, unknown>();

  constructor(
    readonly root: OpenedRoot,
    readonly choice: DriverChoice,
  ) {
    this.L = root.layout;
    this.fs = root.fs;
    this.driver = choice.driver;
    this.adapter = adapterFor(choice.driver);
    this.shownRoot = shownRootOf(root);
  }

  private once<T>(key: string, fn: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, fn());
    return this.cache.get(key) as T;
  }

  /** A path inside the root (relative to it) as dockerd would print it. */
  shown(rel: string): string {
    return rel === '' ? this.shownRoot : `${this.shownRoot}/${rel}`;
  }

  get repositories(): { refs: RefEntry[]; problems: Problem[]; missing: boolean } {
    return this.once('repos', () => {
      const r = readRepositories(this.fs, this.driver);
      // The reference store sorts references by their fully normalized string.
      r.refs.sort((a, b) => (a.normalized < b.normalized ? -1 : a.normalized > b.normalized ? 1 : 0));
      return r;
    });
  }

  /** Every config under imagedb/content/sha256 (restored or not). */
  get images(): Map<string, ImageRecord> {
    return this.once('images', () => new Map(readImages(this.fs, this.driver).map((i) => [i.id, i])));
  }

  get layerDb(): { layers: Map<string, LayerRecord>; other: string[] } {
    return this.once('layers', () => {
      const r = readLayers(this.fs, this.driver, this.adapter);
      return { layers: new Map(r.layers.map((l) => [l.chainId, l])), other: r.other };
    });
  }

  get layers(): Map<string, LayerRecord> {
    return this.layerDb.layers;
  }

  /**
   * The layers dockerd's layer store loads: diff, size and cache-id valid, and the parent (if any)
   * loadable too (loadLayer recurses, so a broken layer takes its descendants with it).
   */
  get loadable(): Map<string, string | undefined> {
    return this.once('loadable', () => {
      const why = new Map<string, string | undefined>();
      const visit = (id: string, depth: number): string | undefined => {
        if (why.has(id)) return why.get(id);
        const l = this.layers.get(id);
        let reason: string | undefined;
        if (l === undefined) reason = `layer ${id} does not exist`;
        else if (depth > 200) reason = 'parent chain too deep or cyclic';
        else if (l.diffId === undefined || l.size === undefined || l.cacheId === undefined) reason = `metadata of layer ${id} is invalid`;
        else if (l.problems.some((p) => p.path?.endsWith('/parent'))) reason = `parent of layer ${id} is invalid`;
        else if (l.parent !== undefined) {
          why.set(id, 'cycle');
          const p = visit(l.parent, depth + 1);
          if (p !== undefined) reason = `parent ${l.parent}: ${p}`;
        }
        why.set(id, reason);
        return reason;
      };
      for (const id of this.layers.keys()) visit(id, 0);
      return why;
    });
  }

  isLoadable(chainId: string): boolean {
    return this.layers.has(chainId) && this.loadable.get(chainId) === undefined;
  }

  /** Whether dockerd restores the image at start, and why not. */
  restoreState(img: ImageRecord): NotRestored | undefined {
    if (img.config === undefined || img.problems.some((p) => p.code === 'IMAGE_ID_MISMATCH' || p.code === 'IMAGE_CONFIG_INVALID')) return 'invalid';
    const os = img.config.os;
    if (os !== undefined && os !== '' && os !== 'linux') return 'os';
    if (img.chainId !== undefined && !this.isLoadable(img.chainId)) return 'layer-missing';
    return undefined;
  }

  /** The images dockerd lists (restored at start). */
  get restored(): ImageRecord[] {
    return this.once('restored', () => [...this.images.values()].filter((i) => this.restoreState(i) === undefined));
  }

  /** imageStore.Children: restored images whose metadata `parent` names this id. */
  children(id: string): ImageRecord[] {
    const byParent = this.once('children', () => {
      const m = new Map<string, ImageRecord[]>();
      for (const i of this.restored) {
        if (i.parent === undefined || !DIGEST_RE.test(i.parent)) continue;
        if (!this.restored.some((p) => p.id === i.parent)) continue;
        const list = m.get(i.parent) ?? [];
        list.push(i);
        m.set(i.parent, list);
      }
      return m;
    });
    return byParent.get(id) ?? [];
  }

  /** References to an image, sorted as the reference store sorts them. */
  refsOf(id: string): RefEntry[] {
    return this.repositories.refs.filter((r) => r.id === id);
  }

  /**
   * dockerd's GetImage: a full ID (with or without `sha256:`), a reference (tag `latest` when none),
   * or a unique prefix of a restored image's ID. Configs are read from disk, so an image that was
   * not restored is still found by its tag, as dockerd does.
   */
  lookupImage(q: string): { image?: ImageRecord; error?: Problem } {
    const full = /^(sha256:)?([a-f0-9]{64})$/.exec(q);
    if (full !== null) {
      const img = this.images.get(`sha256:${full[2]}`);
      return img !== undefined ? { image: img } : { error: problem('IMAGE_NOT_FOUND', `No such image: ${q}`) };
    }
    const ref = parseReference(q);
    if (ref !== undefined) {
      const want = ref.tag === undefined && ref.digest === undefined ? `${ref.normalized}:latest` : ref.normalized;
      const hit = this.repositories.refs.find((r) => r.normalized === want);
      if (hit !== undefined) {
        const img = this.images.get(hit.id);
        if (img !== undefined) return { image: img };
      }
    }
    const prefix = q.startsWith('sha256:') ? q.slice(7) : q;
    if (/^[a-f0-9]{1,63}$/.test(prefix)) {
      const hits = this.restored.filter((i) => i.hex.startsWith(prefix));
      if (hits.length === 1) return { image: hits[0]! };
      if (hits.length > 1) return { error: problem('IMAGE_AMBIGUOUS', `${q} matches ${hits.length} images`) };
    }
    return { error: problem('IMAGE_NOT_FOUND', `No such image: ${q}`) };
  }

  /** The chainIDs of an image's layers, bottom first. */
  chainOf(img: ImageRecord): string[] {
    return chainIds(img.diffIds);
  }

  /** roLayer.Size(): the sum of the `size` files of a layer and all its parents. */
  chainSize(chainId: string | undefined): number {
    let total = 0;
    let id = chainId;
    for (let i = 0; id !== undefined && i < 200; i++) {
      const l = this.layers.get(id);
      if (l === undefined) break;
      total += l.size ?? 0;
      id = l.parent;
    }
    return total;
  }

  get mounts(): MountRecord[] {
    return this.once('mounts', () => readMounts(this.fs, this.driver));
  }

  mountOf(containerId: string): MountRecord | undefined {
    return this.mounts.find((m) => m.containerId === containerId);
  }

  get containers(): ContainerRecord[] {
    return this.once('containers', () => readContainers(this.fs));
  }

  /** dockerd's container lookup: full ID, name (with or without `/`), or unique ID prefix. */
  lookupContainer(q: string): { container?: ContainerRecord; error?: Problem } {
    const byId = this.containers.find((c) => c.id === q);
    if (byId !== undefined) return { container: byId };
    const name = q.startsWith('/') ? q : `/${q}`;
    const byName = this.containers.find((c) => c.config?.Name === name);
    if (byName !== undefined) return { container: byName };
    if (/^[a-f0-9]+$/.test(q)) {
      const hits = this.containers.filter((c) => c.id.startsWith(q));
      if (hits.length === 1) return { container: hits[0]! };
      if (hits.length > 1) return { error: problem('CONTAINER_AMBIGUOUS', `${q} matches ${hits.length} containers`) };
    }
    return { error: problem('CONTAINER_NOT_FOUND', `No such container: ${q}`) };
  }

  get volumes(): { volumes: VolumeRecord[]; problems: Problem[] } {
    return this.once('volumes', () => readVolumes(this.fs));
  }

  get networkKv(): { records: KvRecord[]; problems: Problem[] } {
    return this.once('kv', () => readNetworkKv(this.fs));
  }
}

/**
 * The data-root path dockerd used. For a directory it is the directory itself (resolved as dockerd
 * resolves symlinks); for an unpacked archive it is read back from paths dockerd stored in the
 * containers' config.v2.json (LogPath, HostsPath), else /var/lib/docker.
 */
function shownRootOf(root: OpenedRoot): string {
  if (!root.fromArchive) return realDir(root.dir);
  for (const c of readContainers(root.fs)) {
    for (const p of [c.config?.LogPath, c.config?.HostsPath, c.config?.ResolvConfPath]) {
      const m = typeof p !== 'string' ? null : /^(\/[^\0]*)\/containers\/([a-f0-9]{64})\//.exec(p);
      if (m !== null && m[2] === c.id) return m[1]!;
    }
  }
  return '/var/lib/docker';
}

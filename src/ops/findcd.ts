import { DatarootError } from '../formats/errors.js';
import type { Confined } from '../io/confined.js';
import type { CdSnapshot } from '../store/containerd/model.js';
import type { ContainerRecord } from '../store/containers.js';
import type { Problem } from '../store/problems.js';
import { DOCKER_CONTAINERD_ROOT } from '../store/containerd/layout.js';
import { WHITEOUTS } from '../store/rootfs.js';
import { readVolumes } from '../store/volumes.js';
import { snapshotViewDirs } from './containerd.js';
import { containersOf, familiarName, isDangling, MOBY_NS, snapshotterOf, type DockerCdContext } from './containerddocker.js';
import { layersOf, trustedUnreadable, usableDir, type FindScope, type Source, type ViewInfo } from './find.js';

/**
 * `find` on Docker's containerd image store: the committed snapshots of namespace moby that are
 * image layers (key: a chainID the images name), each container's `<id>-init` and read-write
 * snapshots, and the data-root's volumes. Snapshot directories are read through containerd's
 * root, volumes through the data-root.
 */
export class CdScope implements FindScope {
  private readonly labels = new Map<string, string>();
  private readonly views = new Map<string, ViewInfo>();
  /** chainID -> the images (target digests) whose host manifest holds it, with their tags. */
  private readonly holders = new Map<string, { id: string; tags: string[] }[]>();
  /** Target digest -> the top chainID of its host manifest. */
  private readonly tops = new Map<string, string>();
  private readonly diffIdOf = new Map<string, string>();
  private chains: Map<string, Set<string>> | undefined;
  readonly containers: readonly ContainerRecord[];

  constructor(
    private readonly ctx: DockerCdContext,
    private readonly problems: Problem[],
  ) {
    this.containers = containersOf(ctx);
    if (process.getuid?.() !== 0 && ctx.snapshotter === 'overlayfs') problems.push(trustedUnreadable());
    const cd = ctx.cd;
    const images = cd.namespaceNames().includes(MOBY_NS) ? cd.meta.images(MOBY_NS) : [];
    for (const img of images) {
      const r = cd.resolve(img, ctx.snapshotter);
      const id = img.Target.digest;
      // Every platform's manifest: evidence from another architecture than the analyst's is searched too.
      const unpacked = r.manifests.filter((m) => m.chainIds.length > 0 && this.snap(m.chainIds[m.chainIds.length - 1]!) !== undefined);
      const view = r.best !== undefined && unpacked.includes(r.best) ? r.best : unpacked[0];
      if (view !== undefined) this.tops.set(id, view.chainIds[view.chainIds.length - 1]!);
      const tag = isDangling(img) ? undefined : familiarName(img.Name);
      for (const m of r.manifests)
        m.chainIds.forEach((k, i) => {
          const d = m.diffIds[i];
          if (d !== undefined) this.diffIdOf.set(k, d);
          const list = this.holders.get(k) ?? [];
          let entry = list.find((e) => e.id === id);
          if (entry === undefined) list.push((entry = { id, tags: [] }));
          if (tag !== undefined && !entry.tags.includes(tag)) entry.tags.push(tag);
          this.holders.set(k, list);
        });
    }
  }

  /** A snapshot of namespace moby, in the store's snapshotter or the one a container names. */
  private snap(key: string, snapshotter = this.ctx.snapshotter): CdSnapshot | undefined {
    return this.ctx.cd.snapshotByKey(MOBY_NS, snapshotter, key);
  }

  /** The parents of a snapshot, nearest first, as far as they resolve (a chain that comes back or runs past the bound ends: verify names it). */
  private parents(s: CdSnapshot | undefined): CdSnapshot[] {
    return s === undefined ? [] : this.ctx.cd.parentChain(s).parents;
  }

  sources(): Source[] {
    const cd = this.ctx.cd;
    const out: Source[] = [];
    const dirOf = (s: CdSnapshot | undefined): string | undefined => {
      const d = s === undefined ? undefined : cd.snapshotFs(s);
      return d !== undefined && usableDir(cd.fs, d, cd.shown(d), this.problems) ? d : undefined;
    };
    const source = (s: CdSnapshot, dir: string): Pick<Source, 'fs' | 'dir' | 'rules' | 'base'> => {
      const full = s.snapshotter === 'native';
      const p = full && s.Parent !== '' ? this.snap(s.Parent, s.snapshotter) : undefined;
      const base = p === undefined ? undefined : cd.snapshotFs(p);
      return { fs: cd.fs, dir, rules: full ? WHITEOUTS.none : WHITEOUTS.overlay, ...(base !== undefined ? { base } : {}) };
    };
    // Containers' snapshots first (they are not image layers), then every committed snapshot of
    // the namespace as an image layer, bottom first: those no image names (deleted or untagged
    // images, leftovers) are searched too.
    const containerSources: Source[] = [];
    const taken = new Set<string>();
    for (const c of this.containers) {
      const sn = snapshotterOf(this.ctx, c);
      for (const [key, kind, what] of [
        [`${c.id}-init`, 'init-layer', 'init layer'],
        [c.id, 'container-layer', 'read-write layer'],
      ] as const) {
        const s = this.snap(key, sn);
        const dir = dirOf(s);
        if (s === undefined || dir === undefined) continue;
        taken.add(`${sn}/${key}`);
        containerSources.push({ kind, ...source(s, dir), containerId: c.id });
        this.labels.set(dir, `${what} of container ${c.id}`);
      }
    }
    const depthOf = new Map<string, number>();
    const committed = cd.namespaceNames().includes(MOBY_NS)
      ? cd.snapshots(MOBY_NS).filter((s) => s.Kind === 'Committed' && !taken.has(`${s.snapshotter}/${s.Name}`))
      : [];
    for (const s of committed) depthOf.set(`${s.snapshotter}/${s.Name}`, this.parents(s).length);
    const depth = (s: CdSnapshot): number => depthOf.get(`${s.snapshotter}/${s.Name}`) ?? 0;
    committed.sort((a, b) => depth(a) - depth(b) || (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
    for (const s of committed) {
      const dir = dirOf(s);
      if (dir === undefined) continue;
      const diffId = this.diffIdOf.get(s.Name);
      out.push({
        kind: 'image-layer',
        ...source(s, dir),
        chainId: s.Name,
        ...(diffId !== undefined ? { diffId } : {}),
        ...(s.backend?.id !== undefined ? { cacheId: s.backend.id } : {}),
      });
      this.labels.set(dir, `image layer ${s.Name}`);
    }
    out.push(...containerSources);
    const docker = this.ctx.docker;
    if (docker !== undefined) {
      const vols = readVolumes(docker);
      this.problems.push(...vols.problems);
      for (const v of vols.volumes) {
        const dir = v.dataDir === '' ? `volumes/${v.name}/_data` : v.dataDir;
        if (usableDir(docker, dir, docker.abs(dir), this.problems)) out.push({ kind: 'volume', fs: docker, dir, rules: WHITEOUTS.none, volume: v.name });
      }
    }
    return out;
  }

  shown(src: Source, rel: string): string {
    if (src.kind !== 'volume') return this.ctx.cd.shown(rel);
    // The data-root as the engine saw it: around its containerd/daemon, else where it was read.
    const loc = this.ctx.cd.location;
    const suffix = `/${DOCKER_CONTAINERD_ROOT}`;
    const root = loc.how === 'docker-daemon' && loc.shown.endsWith(suffix) ? loc.shown.slice(0, -suffix.length) : src.fs.base;
    return `${root}/${rel}`;
  }

  label(src: { fs: Confined; dir: string }): string | undefined {
    return src.fs.base === this.ctx.cd.fs.base ? this.labels.get(src.dir) : undefined;
  }

  imagesWith(chainId: string): { id: string; tags: string[] }[] {
    return this.holders.get(chainId) ?? [];
  }

  containersOver(chainId: string): string[] {
    if (this.chains === undefined) {
      // Each container's image chain: its -init snapshot's parents.
      this.chains = new Map();
      for (const c of this.containers) {
        const init = this.snap(`${c.id}-init`, snapshotterOf(this.ctx, c));
        this.chains.set(c.id, new Set(this.parents(init).map((p) => p.Name)));
      }
    }
    return this.containers.filter((c) => this.chains!.get(c.id)?.has(chainId) === true).map((c) => c.id);
  }

  containerName(id: string): string {
    return (this.containers.find((c) => c.id === id)?.config?.Name ?? '').replace(/^\//, '');
  }

  containerView(id: string): ViewInfo {
    const c = this.containers.find((x) => x.id === id);
    return this.view(`c/${id}`, id, this.containerName(id), id, c === undefined ? undefined : snapshotterOf(this.ctx, c));
  }

  imageView(id: string): ViewInfo {
    const name = this.holders.get(this.tops.get(id) ?? '')?.find((h) => h.id === id)?.tags[0] ?? id.slice(7, 19);
    return this.view(`i/${id}`, id, name, this.tops.get(id));
  }

  private view(cacheKey: string, id: string, name: string, key: string | undefined, snapshotter?: string): ViewInfo {
    let v = this.views.get(cacheKey);
    if (v !== undefined) return v;
    v = { id, name, layers: undefined };
    const s = key === undefined ? undefined : this.snap(key, snapshotter);
    if (s !== undefined) {
      try {
        const view = snapshotViewDirs(this.ctx.cd, s);
        v = { ...v, ...layersOf(this.ctx.cd.fs, view.dirs, view.full ? WHITEOUTS.none : WHITEOUTS.overlay) };
      } catch (e) {
        if (!(e instanceof DatarootError)) throw e;
        v = { ...v, error: e.message };
      }
    }
    this.views.set(cacheKey, v);
    return v;
  }
}

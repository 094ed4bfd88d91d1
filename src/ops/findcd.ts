import { DatarootError } from '../formats/errors.js';
import type { Confined } from '../io/confined.js';
import type { CdSnapshot } from '../store/containerd/model.js';
import type { ContainerRecord } from '../store/containers.js';
import type { Problem } from '../store/problems.js';
import { DOCKER_CONTAINERD_ROOT } from '../store/containerd/layout.js';
import { WHITEOUTS } from '../store/rootfs.js';
import { readVolumes } from '../store/volumes.js';
import { snapshotViewDirs } from './containerd.js';
import { containersOf, familiarName, isDangling, MOBY_NS, type DockerCdContext } from './containerddocker.js';
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
  private readonly chainIdsOf = new Map<string, string[]>();
  private readonly diffIdOf = new Map<string, string>();
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
      const m = cd.resolve(img, ctx.snapshotter).best;
      if (m === undefined) continue;
      const id = img.Target.digest;
      const top = m.chainIds[m.chainIds.length - 1];
      if (top !== undefined) this.tops.set(id, top);
      this.chainIdsOf.set(id, m.chainIds);
      m.chainIds.forEach((k, i) => {
        const d = m.diffIds[i];
        if (d !== undefined) this.diffIdOf.set(k, d);
        const list = this.holders.get(k) ?? [];
        let entry = list.find((e) => e.id === id);
        if (entry === undefined) list.push((entry = { id, tags: [] }));
        const tag = isDangling(img) ? undefined : familiarName(img.Name);
        if (tag !== undefined && !entry.tags.includes(tag)) entry.tags.push(tag);
        this.holders.set(k, list);
      });
    }
  }

  private snap(key: string): CdSnapshot | undefined {
    return this.ctx.cd.snapshotByKey(MOBY_NS, this.ctx.snapshotter, key);
  }

  sources(): Source[] {
    const cd = this.ctx.cd;
    const full = this.ctx.snapshotter === 'native';
    const rules = full ? WHITEOUTS.none : WHITEOUTS.overlay;
    const out: Source[] = [];
    const dirOf = (s: CdSnapshot | undefined): string | undefined => {
      const d = s === undefined ? undefined : cd.snapshotFs(s);
      return d !== undefined && usableDir(cd.fs, d, cd.shown(d), this.problems) ? d : undefined;
    };
    const baseOf = (s: CdSnapshot): { base: string } | Record<string, never> => {
      const p = full && s.Parent !== '' ? this.snap(s.Parent) : undefined;
      const d = p === undefined ? undefined : cd.snapshotFs(p);
      return d !== undefined ? { base: d } : {};
    };
    // Image layers, bottom first (by the depth of their chain).
    const depth = (key: string): number => {
      let n = 0;
      for (let s = this.snap(key); s !== undefined && s.Parent !== '' && n < 1000; s = this.snap(s.Parent)) n++;
      return n;
    };
    const layers = [...this.holders.keys()].sort((a, b) => depth(a) - depth(b) || (a < b ? -1 : 1));
    for (const chainId of layers) {
      const s = this.snap(chainId);
      const dir = dirOf(s);
      if (s === undefined || dir === undefined) continue;
      const diffId = this.diffIdOf.get(chainId);
      out.push({
        kind: 'image-layer',
        fs: cd.fs,
        dir,
        rules,
        ...baseOf(s),
        chainId,
        ...(diffId !== undefined ? { diffId } : {}),
        ...(s.backend?.id !== undefined ? { cacheId: s.backend.id } : {}),
      });
      this.labels.set(dir, `image layer ${chainId}`);
    }
    for (const c of this.containers) {
      for (const [key, kind, what] of [
        [`${c.id}-init`, 'init-layer', 'init layer'],
        [c.id, 'container-layer', 'read-write layer'],
      ] as const) {
        const s = this.snap(key);
        const dir = dirOf(s);
        if (s === undefined || dir === undefined) continue;
        out.push({ kind, fs: cd.fs, dir, rules, ...baseOf(s), containerId: c.id });
        this.labels.set(dir, `${what} of container ${c.id}`);
      }
    }
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
    return this.containers.filter((c) => this.chainOfContainer(c).includes(chainId)).map((c) => c.id);
  }

  /** The image chain under a container: its -init snapshot's parents. */
  private chainOfContainer(c: ContainerRecord): string[] {
    const out: string[] = [];
    const init = this.snap(`${c.id}-init`);
    for (let s = init === undefined ? undefined : this.snap(init.Parent); s !== undefined && out.length < 1000; s = this.snap(s.Parent)) {
      out.push(s.Name);
      if (s.Parent === '') break;
    }
    return out;
  }

  containerName(id: string): string {
    return (this.containers.find((c) => c.id === id)?.config?.Name ?? '').replace(/^\//, '');
  }

  containerView(id: string): ViewInfo {
    return this.view(`c/${id}`, id, this.containerName(id), id);
  }

  imageView(id: string): ViewInfo {
    const name = this.holders.get(this.tops.get(id) ?? '')?.find((h) => h.id === id)?.tags[0] ?? id.slice(7, 19);
    return this.view(`i/${id}`, id, name, this.tops.get(id));
  }

  private view(cacheKey: string, id: string, name: string, key: string | undefined): ViewInfo {
    let v = this.views.get(cacheKey);
    if (v !== undefined) return v;
    v = { id, name, layers: undefined };
    const s = key === undefined ? undefined : this.snap(key);
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

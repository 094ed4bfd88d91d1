import { DatarootError } from '../formats/errors.js';
import { parseReference } from '../formats/docker/reference.js';
import { goRFC3339Nano } from '../formats/docker/gotime.js';
import type { CdImageRecord } from '../store/containerd/metadb.js';
import type { CdRoot, ResolvedImage, ResolvedManifest } from '../store/containerd/model.js';
import { readContainers, type ContainerRecord } from '../store/containers.js';
import type { Confined } from '../io/confined.js';
import { problem, type Problem } from '../store/problems.js';
import { snapshotChanges } from './containerd.js';
import { containerSummary, inspectHead, inspectNetworkSettings, mountPoints, runningNote, type ChangeDetail } from './containers.js';
import { createdUnix } from './images.js';

/**
 * Docker with the containerd image store (the default of Docker 29 on new installs), read offline
 * the way moby's daemon/containerd package presents it: images are the image records of the
 * `moby` namespace, an image's ID is its target (index or manifest) digest, untagged images are
 * named `moby-dangling@<digest>`; the config is read from the best present manifest for the host;
 * Size is the content present plus the unpacked snapshots. Containers are still config.v2.json
 * files, with `Driver: "overlayfs"` (the snapshotter) and `ImageManifest`; a container's
 * read-write snapshot is keyed by its ID over `<id>-init`, held by a lease of the same name.
 */

export const MOBY_NS = 'moby';
const DANGLING = 'moby-dangling@';
const PARENT_LABEL = 'org.mobyproject.image.parent';

type Obj = Record<string, unknown>;

export function isDangling(img: CdImageRecord): boolean {
  return img.Name === `${DANGLING}${img.Target.digest}`;
}

/** reference.FamiliarString of a normalized name; undefined when it does not parse as a reference. */
export function familiarName(name: string): string | undefined {
  const r = parseReference(name);
  if (r === undefined) return undefined;
  return `${r.name}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

function trimmed(name: string): string | undefined {
  const r = parseReference(name);
  return r?.name;
}

/** The best present manifest for the host (getBestPresentImageManifest). */
function best(r: ResolvedImage): ResolvedManifest | undefined {
  return r.best;
}

/** PresentContentSize of a manifest: itself, its config and layers, those present. */
function presentContentSize(cd: CdRoot, m: ResolvedManifest): number {
  let n = 0;
  if (cd.blobStat(m.desc.digest) === undefined) return 0;
  n += m.desc.size;
  if (m.config !== undefined && cd.blobStat(m.config.desc.digest) !== undefined) n += m.config.desc.size;
  for (const l of m.layers) if (l.present) n += l.desc.size;
  return n;
}

/** calculateSnapshotTotalUsage of a manifest's top chainID: the sizes of the chain's snapshots. */
function snapshotUsage(cd: CdRoot, ns: string, m: ResolvedManifest, snapshotter: string): number {
  let key = m.chainIds[m.chainIds.length - 1];
  let total = 0;
  for (let i = 0; key !== undefined && key !== '' && i < 512; i++) {
    const s = cd.snapshotByKey(ns, snapshotter, key);
    if (s === undefined) return 0; // not found: 0, as dockerd counts an image that is not unpacked
    total += cd.usage(s).Size;
    key = s.Parent;
  }
  return total;
}

export interface DockerCdContext {
  cd: CdRoot;
  /** The data-root (for containers/), when there is one. */
  docker: Confined | undefined;
  snapshotter: string;
}

/** The snapshotter of a container's snapshots: its config.v2.json Driver, else the store's. */
export function snapshotterOf(ctx: DockerCdContext, c: ContainerRecord): string {
  const d = c.config?.Driver;
  return d !== undefined && d !== '' ? d : ctx.snapshotter;
}

/** The data-root's containers (config.v2.json), none without a data-root. */
export function containersOf(ctx: DockerCdContext): ContainerRecord[] {
  return ctx.docker === undefined ? [] : readContainers(ctx.docker);
}

/** image.Summary of API 1.52 as dockerd 29's daemon/containerd/image_list.go builds it. */
export interface CdImageSummary {
  Containers: number;
  Created: number;
  Id: string;
  Labels: Record<string, string> | null;
  ParentId: string;
  Descriptor: Obj;
  RepoDigests: string[];
  RepoTags: string[];
  SharedSize: number;
  Size: number;
  Dataroot: { store: 'containerd'; namespace: string; names: string[]; manifest: string | null; problems: Problem[] };
}

export function listDockerImages(ctx: DockerCdContext, o: { all: boolean }): { images: CdImageSummary[]; problems: Problem[] } {
  const { cd } = ctx;
  const problems: Problem[] = [];
  if (!cd.namespaceNames().includes(MOBY_NS)) return { images: [], problems };
  const imgs = cd.meta.images(MOBY_NS);
  const intermediate = new Set<string>();
  if (!o.all) for (const i of imgs) if (i.Labels?.[PARENT_LABEL]) intermediate.add(i.Labels[PARENT_LABEL]);
  const unique = new Map<string, CdImageRecord>();
  const tags = new Map<string, string[]>();
  const names = new Map<string, string[]>();
  for (const img of imgs) {
    const d = img.Target.digest;
    names.set(d, [...(names.get(d) ?? []), img.Name]);
    if (isDangling(img)) {
      if (!o.all && intermediate.has(d)) continue;
      if (!unique.has(d)) unique.set(d, img);
      continue;
    }
    unique.set(d, img);
    const f = familiarName(img.Name);
    if (f !== undefined) tags.set(d, [...(tags.get(d) ?? []), f]);
  }
  const containers = containersOf(ctx);
  const out: CdImageSummary[] = [];
  for (const [d, img] of unique) {
    const r = cd.resolve(img, ctx.snapshotter);
    for (const p of r.problems) problems.push({ ...p, message: `image ${img.Name}: ${p.message}` });
    let total = 0;
    let count = 0;
    for (const m of r.manifests) {
      if (m.state !== 'present') continue;
      total += presentContentSize(cd, m);
      if (m.pseudo) continue;
      total += snapshotUsage(cd, MOBY_NS, m, ctx.snapshotter);
      count += containers.filter((c) => (c.config as { ImageManifest?: { digest?: string } } | undefined)?.ImageManifest?.digest === m.desc.digest).length;
    }
    if (r.targetState !== 'present') problems.push(problem('CONTAINERD_BLOB_MISSING', `image ${img.Name}: target ${d} is not in the content store`));
    const b = best(r);
    const desc: Obj = {
      mediaType: img.Target.mediaType,
      digest: d,
      size: img.Target.size,
      ...(img.Target.annotations !== undefined && Object.keys(img.Target.annotations).length > 0 ? { annotations: img.Target.annotations } : {}),
    };
    const base = {
      Dataroot: { store: 'containerd' as const, namespace: MOBY_NS, names: names.get(d) ?? [], manifest: b?.desc.digest ?? null, problems: r.problems },
    };
    if (b === undefined) {
      out.push({
        Containers: -1,
        Created: 0,
        Id: d,
        Labels: null,
        ParentId: '',
        Descriptor: desc,
        RepoDigests: [d],
        RepoTags: tags.get(d) ?? [],
        SharedSize: -1,
        Size: total,
        ...base,
      });
      continue;
    }
    const t = trimmed(img.Name);
    const repoDigests = !isDangling(img) && t !== undefined ? [`${t}@${d}`] : [];
    const repoTags = [...(tags.get(d) ?? [])];
    if (!isDangling(img) && parseReference(img.Name) === undefined) repoTags.push(img.Name);
    const cfg = b.config?.view?.raw ?? {};
    const cfgConfig = cfg['config'] as { Labels?: Record<string, string> } | undefined;
    out.push({
      Containers: count,
      Created: typeof cfg['created'] === 'string' ? createdUnix(cfg['created']) : 0,
      Id: d,
      Labels: cfgConfig?.Labels !== undefined && cfgConfig.Labels !== null && Object.keys(cfgConfig.Labels).length > 0 ? cfgConfig.Labels : null,
      ParentId: img.Labels?.[PARENT_LABEL] ?? '',
      Descriptor: desc,
      RepoDigests: repoDigests,
      RepoTags: repoTags,
      SharedSize: -1,
      Size: total,
      ...base,
    });
  }
  out.sort((a, b) => b.Created - a.Created || (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));
  return { images: out, problems };
}

/** dockerd's resolveImage: a digest reference, a name (tag `latest` by default), or a truncated ID (4 to 64 hex digits). */
export function resolveDockerImage(ctx: DockerCdContext, q: string): CdImageRecord {
  const imgs = ctx.cd.namespaceNames().includes(MOBY_NS) ? ctx.cd.meta.images(MOBY_NS) : [];
  const byDigest = /^(?:([^@]+)@)?(sha256:[a-f0-9]{64})$/.exec(q);
  if (byDigest !== null) {
    const hits = imgs.filter((i) => i.Target.digest === byDigest[2]);
    if (byDigest[1] !== undefined) {
      const want = parseReference(byDigest[1])?.normalized.replace(/:[^/:]+$/, '');
      const hit = hits.find(
        (i) =>
          parseReference(i.Name)
            ?.normalized.replace(/:[^/:]+$/, '')
            .replace(/@.*$/, '') === want,
      );
      if (hit !== undefined) return hit;
    } else if (hits.length > 0) return hits[0]!;
    throw new DatarootError('IMAGE_NOT_FOUND', `No such image: ${q}`);
  }
  const ref = parseReference(q);
  if (ref !== undefined) {
    const want = ref.tag === undefined && ref.digest === undefined ? `${ref.normalized}:latest` : ref.normalized;
    const hit = imgs.find((i) => i.Name === want);
    if (hit !== undefined) return hit;
  }
  const hex = q.replace(/^sha256:/, '');
  if (/^[a-f0-9]{4,64}$/.test(hex)) {
    const hits = imgs.filter((i) => i.Target.digest.startsWith(`sha256:${hex}`));
    const digests = new Set(hits.map((h) => h.Target.digest));
    if (digests.size > 1) throw new DatarootError('IMAGE_AMBIGUOUS', `${q}: ambiguous reference (${digests.size} images)`);
    if (hits.length > 0) return hits.find((h) => !isDangling(h)) ?? hits[0]!;
  }
  throw new DatarootError('IMAGE_NOT_FOUND', `No such image: ${q}`);
}

const CONFIG_KEYS = [
  'User',
  'ExposedPorts',
  'Env',
  'Entrypoint',
  'Cmd',
  'Volumes',
  'WorkingDir',
  'Labels',
  'StopSignal',
  'ArgsEscaped',
  'Healthcheck',
  'OnBuild',
  'Shell',
];

/** DockerOCIImageConfig re-marshalled: its fields in Go's struct order, empty ones omitted. */
function dockerConfig(c: unknown): Obj {
  const out: Obj = {};
  if (c === null || typeof c !== 'object') return out;
  const o = c as Obj;
  for (const k of CONFIG_KEYS) {
    const v = o[k];
    if (
      v === undefined ||
      v === null ||
      v === '' ||
      v === false ||
      (Array.isArray(v) && v.length === 0) ||
      (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)
    )
      continue;
    out[k] = v;
  }
  return out;
}

/** image.InspectResponse of API 1.52 (dockerd 29, daemon/containerd/image_inspect.go). */
export function inspectDockerImage(ctx: DockerCdContext, img: CdImageRecord): Obj {
  const { cd } = ctx;
  const target = img.Target.digest;
  const tagged = cd.meta.images(MOBY_NS).filter((i) => i.Target.digest === target);
  let last = 0;
  let lastText = '1970-01-01T00:00:00Z';
  for (const t of tagged)
    if (t.updatedMs > last) {
      last = t.updatedMs;
      lastText = t.UpdatedAt;
    }
  const r = cd.resolve(img, ctx.snapshotter);
  const b = best(r);
  const repoTags: string[] = [];
  const repoDigests: string[] = [];
  for (const t of tagged) {
    if (isDangling(t)) continue;
    const f = familiarName(t.Name);
    if (f === undefined) {
      repoTags.push(t.Name);
      continue;
    }
    if (!repoTags.includes(f)) repoTags.push(f);
    const ref = parseReference(t.Name);
    const dg = ref?.digest !== undefined ? f : `${trimmed(t.Name)}@${target}`;
    if (!repoDigests.includes(dg)) repoDigests.push(dg);
  }
  // size(): the target and one host manifest's children, as descriptors record them.
  const size = r.ctrSize;
  const out: Obj = { Id: target, RepoTags: repoTags, RepoDigests: repoDigests };
  const parent = tagged.map((t) => t.Labels?.[PARENT_LABEL]).find((x) => x !== undefined && x !== '');
  if (parent !== undefined) out['Parent'] = parent;
  const problems: Problem[] = [...r.problems];
  if (b !== undefined && b.config?.view !== undefined) {
    const c = b.config.view.raw;
    const hist = Array.isArray(c['history']) ? (c['history'] as Obj[]) : [];
    const comment = hist.length > 0 ? hist[hist.length - 1]!['comment'] : undefined;
    if (typeof comment === 'string' && comment !== '') out['Comment'] = comment;
    if (typeof c['created'] === 'string') out['Created'] = goRFC3339Nano(c['created']);
    if (typeof c['author'] === 'string' && c['author'] !== '') out['Author'] = c['author'];
    out['Config'] = dockerConfig(c['config']);
    out['Architecture'] = typeof c['architecture'] === 'string' ? c['architecture'] : '';
    if (typeof c['variant'] === 'string' && c['variant'] !== '') out['Variant'] = c['variant'];
    out['Os'] = typeof c['os'] === 'string' ? c['os'] : '';
    if (typeof c['os.version'] === 'string' && c['os.version'] !== '') out['OsVersion'] = c['os.version'];
  } else {
    problems.push(problem('IMAGE_NO_PLATFORM', `image ${img.Name} has no present manifest for this host's platform: dockerd shows no config`));
    out['Config'] = null;
    out['Architecture'] = '';
    out['Os'] = '';
  }
  out['Size'] = size;
  const layers = b?.diffIds ?? [];
  out['RootFS'] =
    b?.config?.view !== undefined
      ? { Type: rootfsType((b.config.view.raw['rootfs'] as Obj | undefined)?.['type']), ...(layers.length > 0 ? { Layers: layers } : {}) }
      : {};
  out['Metadata'] = { LastTagTime: last === 0 ? '1970-01-01T00:00:00Z' : lastText };
  out['Descriptor'] = {
    mediaType: img.Target.mediaType,
    digest: target,
    size: img.Target.size,
    ...(img.Target.annotations !== undefined && Object.keys(img.Target.annotations).length > 0 ? { annotations: img.Target.annotations } : {}),
  };
  out['Dataroot'] = {
    store: 'containerd',
    namespace: MOBY_NS,
    names: tagged.map((t) => t.Name),
    manifest: b?.desc.digest ?? null,
    snapshotter: ctx.snapshotter,
    layers: (b?.chainIds ?? []).map((chainId, i) => {
      const s = cd.snapshotByKey(MOBY_NS, ctx.snapshotter, chainId);
      return {
        diffId: layers[i],
        chainId,
        blob: b?.layers[i]?.desc.digest ?? null,
        blobPresent: b?.layers[i]?.present ?? false,
        snapshot:
          s === undefined
            ? null
            : { id: s.backend?.id ?? null, dir: cd.snapshotFs(s) === undefined ? null : cd.shown(cd.snapshotFs(s)!), size: cd.usage(s).Size },
      };
    }),
    problems,
  };
  return out;
}

/** `docker history` with the containerd store (daemon/containerd/image_history.go). */
export function dockerHistory(ctx: DockerCdContext, img: CdImageRecord): { history: Obj[]; problems: Problem[] } {
  const { cd } = ctx;
  const r = cd.resolve(img, ctx.snapshotter);
  const b = best(r);
  if (b?.config?.view === undefined)
    throw new DatarootError('IMAGE_NO_PLATFORM', `image with reference ${img.Name} was found but does not provide any platform`);
  const c = b.config.view.raw;
  const sizes = b.chainIds.map((k) => {
    const s = cd.snapshotByKey(MOBY_NS, ctx.snapshotter, k);
    return s === undefined ? 0 : cd.usage(s).Size;
  });
  const items: Obj[] = [];
  const hist = Array.isArray(c['history']) ? (c['history'] as Obj[]) : [];
  for (const h of hist) {
    let size = 0;
    if (h['empty_layer'] !== true) {
      if (sizes.length === 0) throw new DatarootError('IMAGE_HISTORY_INVALID', 'unable to find the size of the layer');
      size = sizes.shift()!;
    }
    items.unshift({
      Comment: typeof h['comment'] === 'string' ? h['comment'] : '',
      Created: typeof h['created'] === 'string' ? createdUnix(h['created']) : 0,
      CreatedBy: typeof h['created_by'] === 'string' ? h['created_by'] : '',
      Id: '<missing>',
      Size: size,
      Tags: null,
    });
  }
  let cur: CdImageRecord | undefined = img;
  for (const item of items) {
    if (cur === undefined) break;
    item['Id'] = cur.Target.digest;
    const t = cd.meta
      .images(MOBY_NS)
      .filter((i) => i.Target.digest === cur!.Target.digest && !isDangling(i))
      .map((i) => familiarName(i.Name))
      .filter((x): x is string => x !== undefined);
    item['Tags'] = t.length > 0 ? t : null;
    const p: string | undefined = cur.Labels?.[PARENT_LABEL];
    if (p === undefined || p === '') break;
    const parents: CdImageRecord[] = cd.meta.images(MOBY_NS).filter((i) => i.Target.digest === p);
    cur = parents.find((i: CdImageRecord) => i.Labels?.[PARENT_LABEL] !== undefined) ?? parents[0];
  }
  return { history: items, problems: r.problems };
}

// Containers

/** `docker ps -a` on a containerd-store root: config.v2.json as always; the image by its target digest. */
export function listDockerContainers(ctx: DockerCdContext, now = Date.now()): { containers: Obj[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const out: Obj[] = [];
  const imgs = ctx.cd.namespaceNames().includes(MOBY_NS) ? ctx.cd.meta.images(MOBY_NS) : [];
  for (const c of containersOf(ctx)) {
    for (const p of c.problems) problems.push({ ...p, message: `container ${c.id}: ${p.message}` });
    const cfg = c.config;
    if (cfg === undefined) continue;
    const imageId = cfg.Image ?? '';
    let image = cfg.Config?.Image ?? '';
    if (image !== imageId) {
      const ref = parseReference(image);
      const want = ref === undefined ? undefined : ref.tag === undefined && ref.digest === undefined ? `${ref.normalized}:latest` : ref.normalized;
      const hit = imgs.find((i) => i.Name === want);
      if (hit === undefined || hit.Target.digest !== imageId) image = imageId;
    }
    const note = runningNote(c);
    out.push({
      ...containerSummary(c, cfg, image, now, (cfg as { ImageManifest?: Obj }).ImageManifest),
      Dataroot: { store: 'containerd', ...(note !== undefined ? { note } : {}), problems: c.problems },
    });
  }
  out.sort((a, b) => (b['Created'] as number) - (a['Created'] as number) || ((a['Id'] as string) < (b['Id'] as string) ? -1 : 1));
  return { containers: out, problems };
}

export function findDockerContainer(ctx: DockerCdContext, q: string): ContainerRecord {
  const all = containersOf(ctx);
  const byId = all.find((c) => c.id === q);
  if (byId !== undefined) return byId;
  const name = q.startsWith('/') ? q : `/${q}`;
  const byName = all.find((c) => c.config?.Name === name);
  if (byName !== undefined) return byName;
  if (/^[a-f0-9]+$/.test(q)) {
    const hits = all.filter((c) => c.id.startsWith(q));
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1) throw new DatarootError('CONTAINER_AMBIGUOUS', `${q} matches ${hits.length} containers`);
  }
  throw new DatarootError('CONTAINER_NOT_FOUND', `No such container: ${q}`);
}

/**
 * `docker container inspect` on a containerd-store root: the API 1.41 object dataroot prints for
 * every root, with GraphDriver `{Name: <snapshotter>, Data: null}` (what API versions before 1.52
 * show for a snapshotter) and `ImageManifestDescriptor`; Dataroot names the container's snapshot,
 * its `-init` parent, its directory and its lease.
 */
export function inspectDockerContainer(ctx: DockerCdContext, c: ContainerRecord): Obj {
  const cfg = c.config;
  if (cfg === undefined)
    throw new DatarootError(
      c.problems[0]?.code ?? 'CONTAINER_CONFIG_INVALID',
      `container ${c.id}: ${c.problems[0]?.message ?? 'config.v2.json cannot be read'}`,
    );
  const { cd } = ctx;
  const problems: Problem[] = [...c.problems];
  const snapshotter = snapshotterOf(ctx, c);
  const snap = cd.snapshotByKey(MOBY_NS, snapshotter, c.id);
  if (snap === undefined)
    problems.push(
      problem('CONTAINER_LAYER_MISSING', `the container's snapshot ${c.id} (${snapshotter}, namespace moby) does not exist: dockerd cannot mount it`),
    );
  const lease = cd.namespaceNames().includes(MOBY_NS) ? cd.meta.leases(MOBY_NS).find((l) => l.ID === c.id) : undefined;
  if (lease === undefined)
    problems.push(problem('CONTAINER_LEASE_MISSING', `no lease ${c.id} in namespace moby: dockerd finds no read-write layer ("rw layer lease not found")`));
  const imageId = cfg.Image ?? '';
  if (imageId !== '' && !cd.meta.images(MOBY_NS).some((i) => i.Target.digest === imageId))
    problems.push(problem('CONTAINER_IMAGE_MISSING', `no image of namespace moby has the target ${imageId}`));
  const note = runningNote(c);
  const manifest = (cfg as { ImageManifest?: Obj }).ImageManifest;
  return {
    ...inspectHead(c.id, cfg),
    Platform: cfg.OS ?? '',
    ...(manifest !== undefined && manifest !== null ? { ImageManifestDescriptor: manifest } : {}),
    MountLabel: cfg.MountLabel ?? '',
    ProcessLabel: cfg.ProcessLabel ?? '',
    AppArmorProfile: cfg.AppArmorProfile ?? '',
    ExecIDs: null,
    HostConfig: c.hostConfig ?? null,
    GraphDriver: { Data: null, Name: cfg.Driver ?? '' },
    Mounts: mountPoints(cfg.MountPoints),
    Config: cfg.Config ?? null,
    NetworkSettings: inspectNetworkSettings(cfg),
    Dataroot: {
      store: 'containerd',
      dir: `containers/${c.id}`,
      snapshot:
        snap === undefined
          ? null
          : {
              key: snap.Name,
              parent: snap.Parent || null,
              kind: snap.Kind,
              snapshotter,
              id: snap.backend?.id ?? null,
              dir: cd.snapshotFs(snap) === undefined ? null : cd.shown(cd.snapshotFs(snap)!),
            },
      lease: lease === undefined ? null : { id: lease.ID, resources: lease.resources },
      ...(note !== undefined ? { note } : {}),
      problems,
    },
  };
}

/** `docker container diff` on a containerd-store root: the rw snapshot against its parent (`<id>-init`), as image_changes.go diffs them. */
export function dockerContainerChanges(ctx: DockerCdContext, c: ContainerRecord): ChangeDetail[] {
  const snapshotter = snapshotterOf(ctx, c);
  const s = ctx.cd.snapshotByKey(MOBY_NS, snapshotter, c.id);
  if (s === undefined) throw new DatarootError('CONTAINER_LAYER_MISSING', `container ${c.id} has no snapshot ${c.id} in ${snapshotter} (namespace moby)`);
  return snapshotChanges(ctx.cd, s);
}

/** RootFS.Type as docker reports it: the config's string, else empty (never an object's text). */
function rootfsType(t: unknown): string {
  return typeof t === 'string' ? t : '';
}

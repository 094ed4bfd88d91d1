import { decodeAnyValue, type AnyValue } from '../formats/containerd/any.js';
import { formatPlatform, hostRank, matchesHost } from '../formats/containerd/oci.js';
import { DatarootError } from '../formats/errors.js';
import { parseReference } from '../formats/docker/reference.js';
import type { CdContainerRecord, CdImageRecord } from '../store/containerd/metadb.js';
import { MAX_SNAPSHOT_CHAIN, type CdRoot, type CdSnapshot, type ResolvedImage, type ResolvedManifest, type Usage } from '../store/containerd/model.js';
import { problem, type Problem } from '../store/problems.js';
import { buildView, WHITEOUTS } from '../store/rootfs.js';
import { changesBetween, type ChangeDetail } from './containers.js';

/**
 * The `dataroot containerd …` operations: containerd's own objects, with the Go field names its
 * API and `ctr` print (images.Image, content.Info, snapshots.Info, containers.Container,
 * leases.Lease, content.Status), each with a `Dataroot` section for what dataroot adds (namespace,
 * presence on disk, on-disk directories, decoded protobuf, problems).
 */

type Obj = Record<string, unknown>;

export interface NamespaceItem {
  Name: string;
  Labels: Record<string, string> | null;
  Dataroot: { images: number; containers: number; snapshots: number; content: number; leases: number; ingests: number; sandboxes: number; problems: Problem[] };
}

export function listNamespaces(cd: CdRoot, only?: string): NamespaceItem[] {
  const names = cd.namespaceNames(only);
  return cd.meta
    .namespaces()
    .filter((n) => names.includes(n.name))
    .map((n) => ({
      Name: n.name,
      Labels: n.labels,
      Dataroot: {
        images: cd.meta.images(n.name).length,
        containers: cd.meta.containers(n.name).length,
        snapshots: [...cd.meta.snapshots(n.name).values()].reduce((a, l) => a + l.length, 0),
        content: cd.meta.blobs(n.name).length,
        leases: cd.meta.leases(n.name).length,
        ingests: cd.meta.ingests(n.name).length,
        sandboxes: cd.meta.sandboxes(n.name).length,
        problems: n.problems,
      },
    }));
}

// Images

export interface ImageItem {
  Name: string;
  Labels: Record<string, string> | null;
  Target: Obj;
  CreatedAt: string;
  UpdatedAt: string;
  Dataroot: {
    namespace: string;
    /** ctr images ls SIZE (bytes). */
    size: number;
    /** ctr images ls PLATFORMS ("-" when a blob on the way is missing). */
    platforms: string;
    /** What of the host platform's image is present: ctr images check's complete/incomplete. */
    status: string;
    present: number;
    required: number;
    unpacked: boolean;
    problems: Problem[];
  };
}

function targetOf(img: CdImageRecord): Obj {
  const t: Obj = { mediaType: img.Target.mediaType, digest: img.Target.digest, size: img.Target.size };
  if (img.Target.annotations !== undefined && Object.keys(img.Target.annotations).length > 0) t['annotations'] = img.Target.annotations;
  return t;
}

/**
 * `ctr images check` for the host platform: images.Manifest picks the host's manifest (a blob
 * missing on the way makes the image "unavailable"), then its config and layers are the required
 * blobs; UNPACKED is whether the top chainID is a snapshot.
 */
export function checkImage(cd: CdRoot, r: ResolvedImage): { present: number; required: number; status: string; unpacked: boolean } {
  const unavailable = { present: 0, required: 0, status: 'unavailable (0/?)', unpacked: false };
  if (r.targetState !== 'present') return unavailable;
  const cands: ResolvedManifest[] = [];
  for (const m of r.manifests) {
    if (m.desc.platform !== undefined && !matchesHost(m.desc.platform, cd.host)) continue;
    if (m.state !== 'present') return unavailable;
    if (m.desc.platform === undefined) {
      if (m.config?.state !== 'present') return unavailable;
      if (m.platform === undefined || !matchesHost(m.platform, cd.host)) continue;
    }
    cands.push(m);
  }
  if (cands.length === 0) return unavailable;
  cands.sort((a, b) => hostRank(a.platform!, cd.host) - hostRank(b.platform!, cd.host));
  const m = cands[0]!;
  const need = [...(m.config !== undefined ? [m.config.desc.digest] : []), ...m.layers.map((l) => l.desc.digest)];
  const present = need.filter((d) => cd.blobPresent(d)).length;
  return {
    present,
    required: need.length,
    status: `${present === need.length ? 'complete' : 'incomplete'} (${present}/${need.length})`,
    unpacked: m.config?.state === 'present' && m.unpacked,
  };
}

function imageItem(cd: CdRoot, img: CdImageRecord): ImageItem {
  const r = cd.resolve(img);
  const c = checkImage(cd, r);
  const problems = [...r.problems];
  if (r.targetState === 'missing')
    problems.push(problem('CONTAINERD_BLOB_MISSING', `image ${img.Name}: target ${img.Target.digest} is not in the content store`));
  return {
    Name: img.Name,
    Labels: img.Labels,
    Target: targetOf(img),
    CreatedAt: img.CreatedAt,
    UpdatedAt: img.UpdatedAt,
    Dataroot: {
      namespace: img.namespace,
      size: r.ctrSize,
      platforms: r.platforms === undefined ? '-' : r.platforms.length === 0 ? '-' : r.platforms.join(','),
      status: c.status,
      present: c.present,
      required: c.required,
      unpacked: c.unpacked,
      problems,
    },
  };
}

export function listImages(cd: CdRoot, only?: string): ImageItem[] {
  const out: ImageItem[] = [];
  for (const ns of cd.namespaceNames(only)) for (const img of cd.meta.images(ns)) out.push(imageItem(cd, img));
  return out;
}

/** An image by exact name, by its normalized name (`busybox` → `docker.io/library/busybox:latest`), or by a prefix of its target digest. */
export function findImage(cd: CdRoot, only: string | undefined, q: string): CdImageRecord {
  const nss = cd.namespaceNames(only);
  const all = nss.flatMap((ns) => cd.meta.images(ns));
  const exact = all.filter((i) => i.Name === q);
  if (exact.length === 1) return exact[0]!;
  const ref = parseReference(q);
  if (ref !== undefined) {
    const want = ref.tag === undefined && ref.digest === undefined ? `${ref.normalized}:latest` : ref.normalized;
    const hits = all.filter((i) => i.Name === want);
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1)
      throw new DatarootError(
        'IMAGE_AMBIGUOUS',
        `${q} names images in ${hits.length} namespaces (${hits.map((h) => h.namespace).join(', ')}): --namespace chooses`,
      );
  }
  if (exact.length > 1)
    throw new DatarootError(
      'IMAGE_AMBIGUOUS',
      `${q} names images in ${exact.length} namespaces (${exact.map((h) => h.namespace).join(', ')}): --namespace chooses`,
    );
  const hex = q.replace(/^sha256:/, '');
  if (/^[a-f0-9]{4,64}$/.test(hex)) {
    const hits = all.filter((i) => i.Target.digest.startsWith(`sha256:${hex}`));
    const targets = new Set(hits.map((h) => `${h.namespace}/${h.Target.digest}`));
    if (targets.size === 1) return hits[0]!;
    if (targets.size > 1) throw new DatarootError('IMAGE_AMBIGUOUS', `${q} matches ${targets.size} images`);
  }
  throw new DatarootError('IMAGE_NOT_FOUND', `No such image: ${q}`);
}

function manifestView(cd: CdRoot, m: ResolvedManifest): Obj {
  return {
    descriptor: {
      mediaType: m.desc.mediaType,
      digest: m.desc.digest,
      size: m.desc.size,
      ...(m.desc.platform !== undefined ? { platform: m.desc.platform } : {}),
      ...(m.desc.annotations !== undefined ? { annotations: m.desc.annotations } : {}),
    },
    platform: m.platform === undefined ? null : formatPlatform(m.platform),
    present: m.state === 'present',
    ...(m.why !== undefined ? { invalid: m.why } : {}),
    pseudo: m.pseudo,
    config:
      m.config === undefined
        ? null
        : {
            descriptor: { mediaType: m.config.desc.mediaType, digest: m.config.desc.digest, size: m.config.desc.size },
            present: m.config.state === 'present',
            ...(m.config.why !== undefined ? { invalid: m.config.why } : {}),
          },
    layers: m.layers.map((l, i) => {
      const rec = cd.blobRecords().get(l.desc.digest)?.[0];
      return {
        descriptor: { mediaType: l.desc.mediaType, digest: l.desc.digest, size: l.desc.size },
        present: l.present,
        diffID: m.diffIds[i] ?? null,
        chainID: m.chainIds[i] ?? null,
        uncompressed: rec?.Labels?.['containerd.io/uncompressed'] ?? null,
      };
    }),
    snapshot: m.chainIds.length === 0 ? null : { key: m.chainIds[m.chainIds.length - 1], unpacked: m.unpacked },
  };
}

/** `containerd image inspect`: the image record, then the walk from its target to configs, layers and snapshots. */
export function inspectImage(cd: CdRoot, img: CdImageRecord): Obj {
  const item = imageItem(cd, img);
  const r = cd.resolve(img);
  return {
    Name: item.Name,
    Labels: item.Labels,
    Target: item.Target,
    CreatedAt: item.CreatedAt,
    UpdatedAt: item.UpdatedAt,
    Dataroot: {
      ...item.Dataroot,
      kind: r.kind,
      targetPresent: r.targetState === 'present',
      best: r.best === undefined ? null : r.best.desc.digest,
      manifests: r.manifests.map((m) => manifestView(cd, m)),
    },
  };
}

// Content

export interface ContentItem {
  Digest: string;
  Size: number;
  CreatedAt: string;
  UpdatedAt: string;
  Labels: Record<string, string> | null;
  Dataroot: { namespace: string; state: 'present' | 'missing' | 'orphaned' | 'size-mismatch'; fileSize: number | null; problems: Problem[] };
}

/**
 * content.Info of every record (per namespace), with whether its blob file is present; then the
 * blob files no namespace records ("orphaned", listed once with no namespace, only when every
 * namespace is listed).
 */
export function listContent(cd: CdRoot, only?: string): ContentItem[] {
  const out: ContentItem[] = [];
  for (const ns of cd.namespaceNames(only)) {
    for (const b of cd.meta.blobs(ns)) {
      const st = cd.blobStat(b.Digest);
      const state = st === undefined ? 'missing' : st.size !== b.Size ? 'size-mismatch' : 'present';
      const problems = [...b.problems];
      if (state === 'missing') problems.push(problem('CONTAINERD_BLOB_MISSING', `blob ${b.Digest} (namespace ${ns}) has a record but no file`));
      if (state === 'size-mismatch')
        problems.push(problem('CONTAINERD_BLOB_SIZE_MISMATCH', `blob ${b.Digest}: the record says ${b.Size} bytes, the file has ${st!.size}`));
      out.push({
        Digest: b.Digest,
        Size: b.Size,
        CreatedAt: b.CreatedAt,
        UpdatedAt: b.UpdatedAt,
        Labels: b.Labels,
        Dataroot: { namespace: ns, state, fileSize: st?.size ?? null, problems },
      });
    }
  }
  if (only === undefined) {
    const recorded = cd.blobRecords();
    for (const d of cd.blobFiles().digests) {
      if (recorded.has(d)) continue;
      const st = cd.blobStat(d);
      out.push({
        Digest: d,
        Size: st?.size ?? 0,
        CreatedAt: st === undefined ? '' : st.mtime.toISOString(),
        UpdatedAt: st === undefined ? '' : st.mtime.toISOString(),
        Labels: null,
        Dataroot: {
          namespace: '',
          state: 'orphaned',
          fileSize: st?.size ?? null,
          problems: [
            problem(
              'CONTAINERD_BLOB_ORPHANED',
              `blob ${d} has no record in any namespace: containerd does not list it and removes it at its next content sweep`,
            ),
          ],
        },
      });
    }
  }
  return out;
}

// Snapshots

export interface SnapshotItem {
  Kind: string;
  Name: string;
  Parent?: string;
  Labels?: Record<string, string>;
  Created: string;
  Updated: string;
  Dataroot: { namespace: string; snapshotter: string; backendName: string; id: string | null; dir: string | null; usage: Usage; problems: Problem[] };
}

export function snapshotItem(cd: CdRoot, s: CdSnapshot): SnapshotItem {
  // snapshots.Info: Parent and Labels are omitempty.
  const out: SnapshotItem = { Kind: s.Kind, Name: s.Name, Created: s.Created, Updated: s.Updated } as SnapshotItem;
  if (s.Parent !== '') out.Parent = s.Parent;
  if (s.Labels !== null && Object.keys(s.Labels).length > 0) out.Labels = s.Labels;
  const problems = [...s.problems];
  if (s.backend?.id !== undefined && !cd.snapshotDirIds(s.snapshotter).has(s.backend.id))
    problems.push(problem('CONTAINERD_SNAPSHOT_DIR_MISSING', `snapshot ${s.Name}: ${s.dir} does not exist`));
  const reordered: SnapshotItem = {
    Kind: out.Kind,
    Name: out.Name,
    ...(out.Parent !== undefined ? { Parent: out.Parent } : {}),
    ...(out.Labels !== undefined ? { Labels: out.Labels } : {}),
    Created: out.Created,
    Updated: out.Updated,
  } as SnapshotItem;
  reordered.Dataroot = {
    namespace: s.namespace,
    snapshotter: s.snapshotter,
    backendName: s.record.name,
    id: s.backend?.id ?? null,
    dir: cd.snapshotFs(s) === undefined ? null : cd.shown(cd.snapshotFs(s)!),
    usage: cd.usage(s),
    problems,
  };
  return reordered;
}

export function listSnapshots(cd: CdRoot, only?: string, snapshotter?: string): SnapshotItem[] {
  const out: SnapshotItem[] = [];
  for (const ns of cd.namespaceNames(only)) for (const s of cd.snapshots(ns, snapshotter)) out.push(snapshotItem(cd, s));
  return out;
}

/** ctr snapshots tree: each root (no parent) then its children, indented. */
export function snapshotTree(items: SnapshotItem[]): string[] {
  const lines: string[] = [];
  const children = new Map<string, string[]>();
  for (const s of items) if (s.Parent !== undefined) children.set(s.Parent, [...(children.get(s.Parent) ?? []), s.Name]);
  const names = new Set(items.map((s) => s.Name));
  const stack: { name: string; level: number }[] = [];
  for (const s of items) {
    if (s.Parent !== undefined && names.has(s.Parent)) continue;
    stack.push({ name: s.Name, level: 0 });
    const seen = new Set<string>();
    while (stack.length > 0) {
      const { name, level } = stack.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      lines.push(`${'  '.repeat(level)}${level > 0 ? '\\_' : ''} ${name}`);
      const kids = children.get(name) ?? [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push({ name: kids[i]!, level: level + 1 });
    }
  }
  return lines;
}

// Containers

/** A protobuf Any as containerd's JSON prints it (type_url, base64 value). */
function anyJson(a: AnyValue | null): Obj | null {
  return a === null ? null : { type_url: a.typeUrl, value: Buffer.from(a.value).toString('base64') };
}

function decodedAny(a: AnyValue | null, problems: Problem[], what: string): unknown {
  if (a === null) return null;
  try {
    return decodeAnyValue(a).value;
  } catch (e) {
    if (e instanceof DatarootError) {
      problems.push(problem(e.code, `${what}: ${e.message}`));
      return null;
    }
    throw e;
  }
}

export interface ContainerItem extends Obj {
  ID: string;
  Image: string;
  Runtime: { Name: string; Options: Obj | null };
  Dataroot: Obj;
}

/** containers.Container as `ctr containers info` prints it (Spec decoded from its Any). */
export function containerItem(cd: CdRoot, c: CdContainerRecord): ContainerItem {
  const problems = [...c.problems];
  const spec = decodedAny(c.Spec, problems, `container ${c.ID} spec`);
  const ext: Obj | null = c.Extensions === null ? null : Object.fromEntries(Object.entries(c.Extensions).map(([k, v]) => [k, anyJson(v)]));
  const snap = c.Snapshotter !== '' && c.SnapshotKey !== '' ? cd.snapshotByKey(c.namespace, c.Snapshotter, c.SnapshotKey) : undefined;
  if (c.SnapshotKey !== '' && c.Snapshotter !== '' && snap === undefined)
    problems.push(problem('CONTAINERD_SNAPSHOT_MISSING', `container ${c.ID}: its snapshot ${c.SnapshotKey} (${c.Snapshotter}) does not exist`));
  const out: ContainerItem = {
    ID: c.ID,
    Labels: c.Labels,
    Image: c.Image,
    Runtime: { Name: c.Runtime.Name, Options: anyJson(c.Runtime.Options) },
    SnapshotKey: c.SnapshotKey,
    Snapshotter: c.Snapshotter,
    CreatedAt: c.CreatedAt,
    UpdatedAt: c.UpdatedAt,
    Extensions: ext,
    Spec: spec,
    Dataroot: {
      namespace: c.namespace,
      ...(c.SandboxID !== '' ? { sandboxID: c.SandboxID } : {}),
      specType: c.Spec?.typeUrl ?? null,
      runtimeOptions: decodedAny(c.Runtime.Options, problems, `container ${c.ID} runtime options`),
      extensions:
        c.Extensions === null
          ? null
          : Object.fromEntries(Object.entries(c.Extensions).map(([k, v]) => [k, { type_url: v.typeUrl, value: decodedAny(v, problems, `extension ${k}`) }])),
      snapshot:
        snap === undefined
          ? null
          : {
              kind: snap.Kind,
              parent: snap.Parent || null,
              id: snap.backend?.id ?? null,
              dir: cd.snapshotFs(snap) === undefined ? null : cd.shown(cd.snapshotFs(snap)!),
            },
      problems,
    },
  };
  return out;
}

export function listContainers(cd: CdRoot, only?: string): ContainerItem[] {
  const out: ContainerItem[] = [];
  for (const ns of cd.namespaceNames(only)) for (const c of cd.meta.containers(ns)) out.push(containerItem(cd, c));
  return out;
}

export function findContainer(cd: CdRoot, only: string | undefined, q: string): CdContainerRecord {
  const all = cd.namespaceNames(only).flatMap((ns) => cd.meta.containers(ns));
  let hits = all.filter((c) => c.ID === q);
  if (hits.length === 0) hits = all.filter((c) => c.ID.startsWith(q));
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1)
    throw new DatarootError(
      'CONTAINER_AMBIGUOUS',
      `${q} matches ${hits.length} containers (${hits.map((h) => `${h.namespace}/${h.ID}`).join(', ')}): --namespace or a longer ID chooses`,
    );
  throw new DatarootError('CONTAINER_NOT_FOUND', `No such container: ${q}`);
}

/** The directories of a snapshot's view, topmost first (overlayfs: its fs over its parents'; native: its own full tree). */
export function snapshotViewDirs(cd: CdRoot, s: CdSnapshot): { dirs: string[]; full: boolean } {
  const full = s.snapshotter === 'native';
  const chain = full ? { parents: [] } : cd.parentChain(s);
  const dirs = [s, ...chain.parents].map((cur) => {
    const d = cd.snapshotFs(cur);
    if (d === undefined)
      throw new DatarootError('CONTAINERD_SNAPSHOT_ID_INVALID', `snapshot ${cur.Name} has no readable id in ${cur.snapshotter}'s metadata.db`);
    const k = cd.fs.kind(d);
    if (k !== 'dir')
      throw new DatarootError(
        k === 'missing' ? 'CONTAINERD_SNAPSHOT_DIR_MISSING' : k === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'PATH_NOT_A_DIRECTORY',
        `snapshot ${cur.Name}: ${cd.shown(d)} is ${k === 'missing' ? 'missing' : `a ${k}`}`,
        { file: cd.shown(d) },
      );
    return d;
  });
  const end = chain.end;
  if (end?.kind === 'missing') throw new DatarootError('CONTAINERD_SNAPSHOT_MISSING', `snapshot ${end.of.Name}: its parent ${end.parent} does not exist`);
  // A parent chain that comes back to a snapshot, or longer than any image has layers: tampered.
  if (end !== undefined)
    throw new DatarootError(
      'CONTAINERD_SNAPSHOT_CYCLE',
      `snapshot ${s.Name}: its parent chain ${end.kind === 'cycle' ? `comes back to ${end.at}` : `is longer than ${MAX_SNAPSHOT_CHAIN}`}`,
    );
  return { dirs, full };
}

/**
 * Offline `diff` of a snapshot against its parent, as `docker container diff` computes it: the
 * snapshot's view (its upper directory over its parents', overlay whiteouts and opaque
 * directories applied) against the parent's view. Native snapshots are full copies: the snapshot's
 * tree against its parent's.
 */
export function snapshotChanges(cd: CdRoot, s: CdSnapshot): ChangeDetail[] {
  const view = snapshotViewDirs(cd, s);
  const rules = view.full ? WHITEOUTS.none : WHITEOUTS.overlay;
  const newView = buildView(cd.fs, view.dirs, rules);
  let oldView;
  if (s.Parent !== '') {
    const p = cd.snapshotByKey(s.namespace, s.snapshotter, s.Parent);
    if (p === undefined) throw new DatarootError('CONTAINERD_SNAPSHOT_MISSING', `snapshot ${s.Name}: its parent ${s.Parent} does not exist`);
    const pv = view.full ? snapshotViewDirs(cd, p) : { dirs: view.dirs.slice(1), full: false };
    oldView = pv.dirs.length === 0 ? undefined : buildView(cd.fs, pv.dirs, rules);
  }
  return changesBetween(newView, oldView);
}

export function containerChanges(cd: CdRoot, c: CdContainerRecord): ChangeDetail[] {
  if (c.Snapshotter === '' || c.SnapshotKey === '')
    throw new DatarootError(
      'CONTAINERD_SNAPSHOT_MISSING',
      `container ${c.ID} names no snapshot (snapshotter ${JSON.stringify(c.Snapshotter)}, key ${JSON.stringify(c.SnapshotKey)})`,
    );
  const s = cd.snapshotByKey(c.namespace, c.Snapshotter, c.SnapshotKey);
  if (s === undefined) throw new DatarootError('CONTAINERD_SNAPSHOT_MISSING', `container ${c.ID}: snapshot ${c.SnapshotKey} (${c.Snapshotter}) does not exist`);
  return snapshotChanges(cd, s);
}

// Leases and ingests

export interface LeaseItem {
  ID: string;
  CreatedAt: string;
  Labels: Record<string, string> | null;
  Dataroot: { namespace: string; resources: { ID: string; Type: string }[]; expired: boolean; problems: Problem[] };
}

export function listLeases(cd: CdRoot, only?: string, now = Date.now()): LeaseItem[] {
  const out: LeaseItem[] = [];
  for (const ns of cd.namespaceNames(only)) {
    for (const l of cd.meta.leases(ns)) {
      const exp = l.Labels?.['containerd.io/gc.expire'];
      const t = exp === undefined ? Number.NaN : Date.parse(exp);
      out.push({
        ID: l.ID,
        CreatedAt: l.CreatedAt,
        Labels: l.Labels,
        Dataroot: { namespace: ns, resources: l.resources, expired: !Number.isNaN(t) && t < now, problems: l.problems },
      });
    }
  }
  return out;
}

export interface IngestItem {
  Ref: string;
  Offset: number;
  Total: number;
  Expected: string;
  StartedAt: string;
  UpdatedAt: string;
  Dataroot: { namespace: string | null; expireAt: string | null; dir: string | null; leases: string[]; problems: Problem[] };
}

/**
 * Partial writes: content.Status of each ingest record (per namespace) joined with its backend
 * directory (`ingest/<sha256 of ref>`: data written so far, total, times); backend directories no
 * record names are listed too (namespace null).
 */
export function listIngests(cd: CdRoot, only?: string): IngestItem[] {
  const out: IngestItem[] = [];
  const backend = cd.backendIngests();
  const used = new Set<string>();
  const leasesOf = (ns: string, key: string): string[] =>
    cd.meta
      .leases(ns)
      .filter((l) => l.resources.some((r) => r.Type === 'ingests' && r.ID === key))
      .map((l) => l.ID);
  for (const ns of cd.namespaceNames(only)) {
    for (const i of cd.meta.ingests(ns)) {
      const b = backend.find((x) => x.ref === i.ref && i.ref !== '');
      if (b !== undefined) used.add(b.dir);
      const problems = [...i.problems];
      if (b === undefined)
        problems.push(problem('CONTAINERD_INGEST_MISSING', `ingest ${i.key} (namespace ${ns}) has no backend directory for ref ${JSON.stringify(i.ref)}`));
      out.push({
        Ref: i.key,
        Offset: b?.offset ?? 0,
        Total: b?.total ?? 0,
        Expected: i.expected ?? '',
        StartedAt: b?.startedAt?.toISOString() ?? '',
        UpdatedAt: b?.updatedAt?.toISOString() ?? '',
        Dataroot: {
          namespace: ns,
          expireAt: i.expireAt,
          dir: b === undefined ? null : cd.shown(b.dir),
          leases: leasesOf(ns, i.key),
          problems: [...problems, ...(b?.problems ?? [])],
        },
      });
    }
  }
  if (only === undefined) {
    for (const b of backend) {
      if (used.has(b.dir)) continue;
      out.push({
        Ref: b.ref,
        Offset: b.offset,
        Total: b.total,
        Expected: '',
        StartedAt: b.startedAt?.toISOString() ?? '',
        UpdatedAt: b.updatedAt?.toISOString() ?? '',
        Dataroot: {
          namespace: null,
          expireAt: null,
          dir: cd.shown(b.dir),
          leases: [],
          problems: [
            ...b.problems,
            problem(
              'CONTAINERD_INGEST_ORPHANED',
              `ingest ${b.dir} (ref ${JSON.stringify(b.ref)}) has no record in any namespace: containerd aborts it at its next content sweep`,
            ),
          ],
        },
      });
    }
  }
  return out;
}

import { isBlobDigest, isIngestDir, isSnapshotId } from '../formats/containerd/identifiers.js';
import { DatarootError } from '../formats/errors.js';
import { kindOfStats } from '../io/confined.js';
import { readContainers } from '../store/containers.js';
import { FILE_SNAPSHOTTERS } from '../store/containerd/layout.js';
import type { CdRoot, CdSnapshot } from '../store/containerd/model.js';
import { WHITEOUTS, type WhiteoutRules } from '../store/rootfs.js';
import { readVolumes } from '../store/volumes.js';
import { snapshotViewDirs } from './containerd.js';
import { MOBY_NS } from './containerddocker.js';
import type { LogSource } from './logs.js';
import type { ContainerRecord } from '../store/containers.js';
import { problem, type Problem } from '../store/problems.js';
import {
  containerPath,
  layerEntryWord,
  mountedOver,
  opaque,
  resolveInView,
  sightInView,
  statOf,
  volumePath,
  type ContainerRef,
  type DockerMeta,
  type ImageRef,
  type Part,
  type Sight,
  type WhichResult,
} from './which.js';

/**
 * `dataroot which` on containerd's root (a plain containerd, or the one Docker 29 keeps under
 * `containerd/daemon` for its containerd image store): a file of a snapshot's tree
 * (`io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/fs/…`, or `…native/snapshots/<n>/…`)
 * belongs to that snapshot: its namespace and key, for an image layer its chainID and diffID and
 * the images whose chain holds it, and for each container built on it (containerd's container
 * records; Docker's containers by their snapshot key) whether the container sees the file, sees
 * another version of it, or has it deleted by a whiteout or hidden by an opaque directory. A file
 * of a container's active snapshot belongs to the container, with what it does to the image. A
 * blob of the content store is named by the images that reference it.
 */

const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

/** The Docker side of a root on the containerd image store (containers/, volumes/), read lazily. */
export function dockerMetaOf(fs: DockerMeta['fs']): DockerMeta & LogSource {
  let containers: DockerMeta['containers'] | undefined;
  let volumes: DockerMeta['volumes'] | undefined;
  const meta = {
    fs,
    get containers() {
      return (containers ??= readContainers(fs));
    },
    get volumes() {
      return (volumes ??= readVolumes(fs));
    },
    lookupContainer(q: string): { container?: ContainerRecord; error?: Problem } {
      // As Store.lookupContainer (and dockerd): full ID, name, then a unique ID prefix.
      const all = meta.containers;
      const hit = all.find((c) => c.id === q) ?? all.find((c) => c.config?.Name === (q.startsWith('/') ? q : `/${q}`));
      if (hit !== undefined) return { container: hit };
      const hits = /^[a-f0-9]+$/.test(q) ? all.filter((c) => c.id.startsWith(q)) : [];
      if (hits.length === 1) return { container: hits[0]! };
      return {
        error:
          hits.length > 1
            ? problem('CONTAINER_AMBIGUOUS', `${q} matches ${hits.length} containers`)
            : problem('CONTAINER_NOT_FOUND', `No such container: ${q}`),
      };
    },
  };
  return meta;
}

/** `which` on a path of a Docker root whose image store is containerd's (no graphdriver store): containers/ and volumes/; the rest is named. */
export function whichDockerOnly(meta: DockerMeta, rel: string): WhichResult {
  const parts = rel.split('/').filter(Boolean);
  const st = statOf(meta.fs, rel);
  const base = {
    path: rel,
    exists: st !== undefined,
    ...(st !== undefined ? { type: kindOfStats(st) } : {}),
    ...(st?.isFile() === true ? { size: st.size } : {}),
  };
  if (parts.length === 0)
    return { ...base, owner: 'store', summary: 'the data-root itself (its images and layers are in containerd/daemon: the containerd image store)', notes: [] };
  if (parts[0] === 'containers') return { ...base, ...containerPath(meta, parts) };
  if (parts[0] === 'volumes') return { ...base, ...volumePath(meta, parts) };
  if (parts[0] === 'containerd')
    return {
      ...base,
      owner: 'store',
      summary: 'the containerd that dockerd starts itself (containerd/daemon holds its root: images, content, snapshots)',
      notes: [],
    };
  return { ...base, owner: 'other', summary: `not a path a Docker root on the containerd image store uses for images or containers (${parts[0]}/)`, notes: [] };
}

interface CdWhichOptions {
  /** Where the containerd root is under the root the user named ('' when it is that root; `containerd/daemon` in a Docker root). */
  prefix: string;
  /** The Docker root around it (its containers use snapshots of namespace moby). */
  docker?: DockerMeta | undefined;
}

const SNAPSHOTTER_DIR = /^io\.containerd\.snapshotter\.v1\.(.+)$/;

/** `which REL` where REL is relative to the containerd root. */
export function whichContainerd(cd: CdRoot, rel: string, o: CdWhichOptions): WhichResult {
  const parts = rel.split('/').filter(Boolean);
  const st = statOf(cd.fs, rel);
  const base: Pick<WhichResult, 'path' | 'exists' | 'type' | 'size' | 'notes'> = {
    path: o.prefix === '' ? rel : rel === '' ? o.prefix : `${o.prefix}/${rel}`,
    exists: st !== undefined,
    ...(st !== undefined ? { type: kindOfStats(st) } : {}),
    ...(st?.isFile() === true ? { size: st.size } : {}),
    notes: [],
  };
  if (parts.length === 0) return { ...base, owner: 'store', summary: `the root of containerd (${cd.location.shown})` };
  const top = parts[0]!;
  if (top === 'io.containerd.metadata.v1.bolt')
    return { ...base, owner: 'store', summary: "containerd's metadata (meta.db: namespaces, images, containers, content and snapshot records, leases)" };
  if (top === 'io.containerd.content.v1.content') return { ...base, ...contentPath(cd, parts) };
  const sm = SNAPSHOTTER_DIR.exec(top);
  if (sm !== null) return { ...base, ...snapshotterPath(cd, sm[1]!, parts, st, o) };
  const what: Record<string, string> = {
    'io.containerd.runtime.v2.task': "the runtime's task state (bundles of tasks that were running, by namespace)",
    'io.containerd.runtime.v1.linux': "the v1 runtime's task state",
    'io.containerd.grpc.v1.cri': "the CRI plugin's state (Kubernetes sandboxes and containers)",
    'io.containerd.grpc.v1.introspection': "the introspection service's uuid of this containerd",
  };
  return { ...base, owner: what[top] !== undefined ? 'store' : 'other', summary: what[top] ?? `a directory of a containerd plugin (${top})` };
}

function contentPath(cd: CdRoot, parts: string[]): Part {
  if (parts[1] === 'ingest') {
    const n = parts[2];
    if (n === undefined) return { owner: 'store', summary: 'partial writes of the content store (ingests)', notes: [] };
    const ing = isIngestDir(n) ? cd.backendIngests().find((i) => i.dir.endsWith(`/${n}`)) : undefined;
    return {
      owner: 'store',
      summary: `a partial write of the content store${ing !== undefined && ing.ref !== '' ? ` (ref ${ing.ref}, ${ing.offset} of ${ing.total} bytes)` : ''}`,
      notes: [],
    };
  }
  if (parts[1] !== 'blobs' || parts[2] !== 'sha256' || parts[3] === undefined)
    return { owner: 'store', summary: "containerd's content store (blobs by digest)", notes: [] };
  const digest = `sha256:${parts[3]}`;
  if (!isBlobDigest(digest) || parts.length > 4)
    return { owner: 'other', summary: `${parts.slice(3).join('/')} is not a blob name (sha256 hex digits)`, notes: [] };
  const notes: string[] = [];
  const records = cd.blobRecords().get(digest) ?? [];
  if (records.length === 0) notes.push('no namespace has a content record for this blob: containerd does not serve it');
  const images: ImageRef[] = [];
  const roles = new Set<string>();
  for (const ns of cd.namespaceNames()) {
    for (const img of cd.meta.images(ns)) {
      const r = cd.resolve(img);
      let role: string | undefined;
      if (img.Target.digest === digest) role = r.kind === 'index' ? 'index' : 'manifest';
      for (const m of r.manifests) {
        if (role !== undefined) break;
        if (m.desc.digest === digest) role = 'manifest';
        else if (m.config?.desc.digest === digest) role = 'config';
        else if (m.layers.some((l) => l.desc.digest === digest)) role = 'layer';
      }
      if (role === undefined) continue;
      roles.add(role);
      addImage(images, ns, img.Target.digest, img.Name);
    }
  }
  const nss = [...new Set(records.map((r) => r.namespace))];
  return {
    owner: images.length > 0 ? 'image' : 'store',
    summary: `blob ${short(digest)} of the content store${roles.size > 0 ? `: the ${[...roles].sort().join(', ')} of ${images.length} image${images.length === 1 ? '' : 's'}` : ', which no image references'}${nss.length > 0 ? ` (namespace ${nss.join(', ')})` : ''}`,
    images,
    notes,
  };
}

function addImage(images: ImageRef[], ns: string, target: string, name: string): void {
  const id = target;
  const tag = ns === MOBY_NS ? name : `${ns}/${name}`;
  const hit = images.find((i) => i.id === id);
  if (hit !== undefined) hit.tags.push(tag);
  else images.push({ id, tags: [tag] });
}

function snapshotterPath(cd: CdRoot, sn: string, parts: string[], st: ReturnType<typeof statOf>, o: CdWhichOptions): Part {
  const notes: string[] = [];
  if (!FILE_SNAPSHOTTERS.includes(sn)) return { owner: 'other', summary: `the home of the ${sn} snapshotter, whose layout dataroot does not read`, notes };
  if (parts.length === 1) return { owner: 'store', summary: `the home of the ${sn} snapshotter`, notes };
  if (parts[1] === 'metadata.db' && parts.length === 2)
    return { owner: 'store', summary: `the ${sn} snapshotter's metadata.db (snapshot ids, kinds, parents, sizes)`, notes };
  if (parts[1] !== 'snapshots' || parts[2] === undefined) return { owner: 'other', summary: `not a snapshot directory of ${sn}`, notes };
  const id = parts[2];
  if (!isSnapshotId(id)) return { owner: 'other', summary: `${id} is not a snapshot id (digits): no snapshot of ${sn} lives there`, notes };
  const dir = `io.containerd.snapshotter.v1.${sn}/snapshots/${id}`;
  let inner: string | undefined;
  let fsDir: string;
  if (sn === 'native') {
    fsDir = dir;
    inner = `/${parts.slice(3).join('/')}`;
  } else {
    fsDir = `${dir}/fs`;
    if (parts[3] === 'fs') inner = `/${parts.slice(4).join('/')}`;
  }
  const s = findSnapshot(cd, sn, id);
  if (s === undefined) {
    const b = cd.snapshotter(sn)?.byId(id);
    notes.push(
      b !== undefined
        ? `the ${sn} snapshotter has snapshot ${JSON.stringify(b.name)} there, but no namespace's meta.db record names it`
        : `the ${sn} snapshotter's metadata.db has no snapshot ${id}: an orphan directory`,
    );
    return {
      owner: 'other',
      summary: `a file of snapshot directory ${id} of ${sn}, which no snapshot record uses`,
      ...(inner !== undefined ? { pathInLayer: inner } : {}),
      notes,
    };
  }
  const typeWord = layerEntryWord(st);
  const snapInfo = {
    snapshot: { namespace: s.namespace, snapshotter: sn, key: s.Name, kind: s.Kind, id, parent: s.Parent === '' ? null : s.Parent, dir: cd.shown(fsDir) },
  };
  const where = inner === undefined ? ` (not in its tree: ${parts.slice(3).join('/') || 'its directory'})` : '';
  const rules: WhiteoutRules = sn === 'native' ? WHITEOUTS.none : WHITEOUTS.overlay;
  const docker = s.namespace === MOBY_NS ? o.docker : undefined;
  const dockerRef = (cid: string): ContainerRef | undefined => {
    const c = docker?.containers.find((x) => x.id === cid);
    return c === undefined ? undefined : { id: c.id, name: c.config?.Name ?? '' };
  };
  // Docker's read-write snapshot (key = container ID) and its -init parent.
  const initOf = s.Name.endsWith('-init') ? dockerRef(s.Name.slice(0, -5)) : undefined;
  const users = containersOfSnapshot(cd, s, dockerRef);
  if (s.Kind === 'Active' || s.Kind === 'View' || initOf !== undefined) {
    const ref = initOf ?? users[0]?.ref;
    if (ref === undefined) {
      notes.push(`no container names snapshot ${s.Name}`);
      return {
        owner: 'other',
        summary: `${typeWord} in ${s.Kind.toLowerCase()} snapshot ${s.Name} (${sn}, namespace ${s.namespace}), which no container uses${where}`,
        ...snapInfo,
        ...(inner !== undefined ? { pathInLayer: inner } : {}),
        notes,
      };
    }
    const init = initOf !== undefined;
    const who = `container ${ref.name === '' ? ref.id : `${ref.name} (${short(ref.id)})`}`;
    const out: Part = {
      owner: init ? 'init-layer' : 'container-layer',
      summary: init
        ? `${typeWord} in the init snapshot of ${who}: what dockerd prepares under the read-write snapshot (/etc/hosts, /etc/resolv.conf, /etc/hostname, /dev placeholders)${where}`
        : `${typeWord} in the read-write snapshot of ${who}${inner !== undefined ? `, ${inner} in the container` : where}`,
      ...snapInfo,
      container: { ...ref, ...(inner !== undefined ? { pathInContainer: inner } : {}), role: init ? 'init snapshot' : 'read-write snapshot' },
      notes,
    };
    if (users.length > 1)
      notes.push(
        `also named by ${users
          .slice(1)
          .map((u) => u.ref.name || u.ref.id)
          .join(', ')}`,
      );
    if (!init && inner !== undefined && inner !== '/' && rules !== WHITEOUTS.none) {
      const dirs = viewDirs(cd, s, notes);
      if (dirs !== undefined && dirs.length > 1) {
        const below = resolveInView(cd.fs, dirs.slice(1), rules, inner);
        const lowerName = (d: string): string => {
          const l = snapshotOfDir(cd, s, d);
          return l === undefined ? d : l.Name.endsWith('-init') ? 'the init snapshot' : `image layer ${short(l.Name)}`;
        };
        const isWh = st !== undefined && st.isCharacterDevice() && st.rdev === 0;
        if (isWh) out.container!.effect = `deletes ${inner} of the image${below.status === 'visible' ? ` (from ${lowerName(dirs[below.idx + 1]!)})` : ''}`;
        else if (st?.isDirectory() === true && opaque(cd.fs, `${fsDir}${inner}`, rules))
          out.container!.effect = `an opaque directory: hides what the image has under ${inner}`;
        else if (below.status === 'visible') out.container!.effect = `replaces the image's ${inner} (from ${lowerName(dirs[below.idx + 1]!)})`;
        else out.container!.effect = `added by the container (the image has no ${inner})`;
      }
      if (docker !== undefined) {
        const mo = mountedOver(docker, ref.id, inner);
        if (mo !== undefined) out.container!.mountedOver = mo;
      }
    }
    return out;
  }
  // A committed snapshot: an image layer when its key is a chainID the namespace's images name.
  const images: ImageRef[] = [];
  let diffId: string | undefined;
  for (const img of cd.meta.images(s.namespace)) {
    const r = cd.resolve(img, sn);
    let holds = false;
    for (const m of r.manifests) {
      const k = m.chainIds.indexOf(s.Name);
      if (k < 0) continue;
      holds = true;
      diffId ??= m.diffIds[k];
    }
    if (holds) addImage(images, s.namespace, img.Target.digest, img.Name);
  }
  const isLayer = s.Name.startsWith('sha256:') && (images.length > 0 || /^sha256:[a-f0-9]{64}$/.test(s.Name));
  const label = isLayer ? `image layer ${short(s.Name)}` : `committed snapshot ${s.Name}`;
  const res: Part = {
    owner: inner !== undefined ? (isLayer ? 'image-layer' : 'other') : 'layer-dir',
    summary:
      inner !== undefined
        ? `${typeWord} in ${label} (${sn}, namespace ${s.namespace}), ${inner} in the layer`
        : `a file of the snapshot directory of ${label} (${sn}, namespace ${s.namespace})${where}`,
    ...snapInfo,
    ...(isLayer
      ? {
          layer: {
            chainId: s.Name,
            ...(diffId !== undefined ? { diffId } : {}),
            cacheId: id,
            ...(s.Parent !== '' ? { parent: s.Parent } : {}),
            dir: cd.shown(fsDir),
          },
        }
      : {}),
    ...(inner !== undefined ? { pathInLayer: inner } : {}),
    images,
    notes,
  };
  if (inner !== undefined) {
    const sights: Sight[] = [];
    for (const u of users) {
      const dirs = viewDirs(cd, u.snap, notes);
      if (dirs === undefined) {
        sights.push({ ...u.ref, sees: 'unknown' });
        continue;
      }
      const mo = u.docker && docker !== undefined ? mountedOver(docker, u.ref.id, inner) : undefined;
      sights.push(sightInView(cd.fs, u.ref, dirs, rules, fsDir, inner, mo));
    }
    res.containers = sights.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  return res;
}

/** The snapshot (of any namespace) whose directory is `snapshots/<id>` of the snapshotter. */
function findSnapshot(cd: CdRoot, sn: string, id: string): CdSnapshot | undefined {
  for (const ns of cd.namespaceNames()) {
    const s = cd.snapshots(ns, sn).find((x) => x.backend?.id === id);
    if (s !== undefined) return s;
  }
  return undefined;
}

function snapshotOfDir(cd: CdRoot, s: CdSnapshot, dir: string): CdSnapshot | undefined {
  return cd.snapshots(s.namespace, s.snapshotter).find((x) => cd.snapshotFs(x) === dir);
}

function viewDirs(cd: CdRoot, s: CdSnapshot, notes: string[]): string[] | undefined {
  try {
    return snapshotViewDirs(cd, s).dirs;
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    notes.push(`${e.code}: ${e.message}`);
    return undefined;
  }
}

interface User {
  ref: ContainerRef;
  snap: CdSnapshot;
  docker: boolean;
}

/**
 * The containers whose snapshot is `s` or is built on it: containerd's container records (by
 * snapshotter and key) and, in namespace moby, Docker's containers (their snapshot's key is their ID).
 */
function containersOfSnapshot(cd: CdRoot, s: CdSnapshot, dockerRef: (id: string) => ContainerRef | undefined): User[] {
  const out: User[] = [];
  const records = cd.meta.containers(s.namespace);
  for (const u of cd.snapshots(s.namespace, s.snapshotter)) {
    if (!chainHas(cd, u, s.Name)) continue;
    for (const c of records) if (c.Snapshotter === s.snapshotter && c.SnapshotKey === u.Name) out.push({ ref: { id: c.ID, name: '' }, snap: u, docker: false });
    const d = dockerRef(u.Name);
    if (d !== undefined && !out.some((x) => x.ref.id === d.id)) out.push({ ref: d, snap: u, docker: true });
  }
  return out;
}

/** Whether `key` is `u` or one of its parents (bounded walk). */
function chainHas(cd: CdRoot, u: CdSnapshot, key: string): boolean {
  let cur: CdSnapshot | undefined = u;
  for (let i = 0; cur !== undefined && i < 512; i++) {
    if (cur.Name === key) return true;
    if (cur.Parent === '') return false;
    cur = cd.snapshotByKey(cur.namespace, cur.snapshotter, cur.Parent);
  }
  return false;
}

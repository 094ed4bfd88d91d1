import { isBlobDigest, isSnapshotId } from '../formats/containerd/identifiers.js';
import type { Confined } from '../io/confined.js';
import { CD, FILE_SNAPSHOTTERS } from '../store/containerd/layout.js';
import type { CdRoot, CdSnapshot } from '../store/containerd/model.js';
import { problem, type Problem } from '../store/problems.js';
import { MOBY_NS } from './containerddocker.js';
import type { LogSource } from './logs.js';
import {
  containerEvents,
  eventItems,
  fileTimes,
  historyEvents,
  timeOf,
  volumeEvents,
  type TimelineItem,
  type TimelineObject,
  type TimelineOptions,
  type TimelineRun,
} from './timeline.js';
import type { DockerMeta } from './which.js';

/**
 * The timeline of a containerd root (a plain containerd, or the one Docker 29 keeps under
 * `containerd/daemon`): meta.db's record times (image, container, snapshot, content and lease
 * CreatedAt/UpdatedAt), each image's config `created` and history, and file times of the root
 * (metadata, content, active snapshots; with `layers` committed snapshots too). Around a Docker
 * root on the containerd image store: its containers' events and logs, its volumes, and the
 * file times of the rest of the data-root. Sources are relative to the root the user named.
 */
export interface CdTimelineOptions extends TimelineOptions {
  /** Where the containerd root is under the root named ('' or `containerd/daemon`). */
  prefix: string;
  docker?: (DockerMeta & LogSource) | undefined;
}

const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

export function timelineContainerd(cd: CdRoot, o: CdTimelineOptions): TimelineRun {
  const problems: Problem[] = [];
  return { items: items(cd, o, problems), problems };
}

async function* items(cd: CdRoot, o: CdTimelineOptions, problems: Problem[]): AsyncGenerator<TimelineItem> {
  const at = (rel: string): string => (o.prefix === '' ? rel : rel === '' ? o.prefix : `${o.prefix}/${rel}`);
  const metaDb = at(CD.metaDb);
  const snapObj = new Map<string, TimelineObject>();

  for (const ns of cd.namespaceNames()) {
    const named = (n: string): string => (ns === MOBY_NS && o.docker !== undefined ? n : `${ns}/${n}`);
    // Images: the record's times; the config's created and history of the host's manifest.
    for (const img of cd.meta.images(ns)) {
      const obj: TimelineObject = { type: 'image', id: img.Target.digest, name: named(img.Name) };
      yield* eventItems(timeOf(img.CreatedAt), 'image.recorded', obj, metaDb, `namespace ${ns}, target ${img.Target.mediaType}`);
      if (img.UpdatedAt !== img.CreatedAt) yield* eventItems(timeOf(img.UpdatedAt), 'image.updated', obj, metaDb, `namespace ${ns}`);
      const best = cd.resolve(img).best;
      const view = best?.config?.view;
      if (best?.config === undefined || view === undefined) continue;
      const src = at(CD.blob(best.config.desc.digest));
      yield* eventItems(timeOf(view.created), 'image.created', obj, src);
      yield* historyEvents(view.raw['history'], obj, src);
    }
    // containerd's container records (Docker's live in config.v2.json, below).
    for (const c of cd.meta.containers(ns)) {
      const obj: TimelineObject = { type: 'container', id: c.ID, name: `${ns}/${c.ID}` };
      yield* eventItems(timeOf(c.CreatedAt), 'container.created', obj, metaDb, `image ${c.Image}, snapshot ${c.SnapshotKey}`);
      if (c.UpdatedAt !== c.CreatedAt) yield* eventItems(timeOf(c.UpdatedAt), 'container.updated', obj, metaDb);
    }
    // Snapshots: created, updated (a commit).
    for (const s of cd.snapshots(ns)) {
      const obj: TimelineObject = { type: 'snapshot', id: s.Name, name: `${ns}, ${s.snapshotter} ${s.backend?.id ?? '?'}` };
      if (s.backend?.id !== undefined) snapObj.set(`${s.snapshotter}/${s.backend.id}`, obj);
      yield* eventItems(
        timeOf(s.Created),
        'snapshot.created',
        obj,
        metaDb,
        `${s.Kind}${s.Parent !== '' ? `, parent ${s.Parent.startsWith('sha256:') ? short(s.Parent) : s.Parent}` : ''}`,
      );
      if (s.Updated !== s.Created) yield* eventItems(timeOf(s.Updated), 'snapshot.updated', obj, metaDb, s.Kind);
    }
    // Content: when each blob was recorded in the namespace.
    for (const b of cd.meta.blobs(ns)) {
      const obj: TimelineObject = { type: 'blob', id: b.Digest, name: ns };
      yield* eventItems(timeOf(b.CreatedAt), 'content.created', obj, metaDb, `${b.Size} bytes`);
      if (b.UpdatedAt !== b.CreatedAt) yield* eventItems(timeOf(b.UpdatedAt), 'content.updated', obj, metaDb);
    }
    for (const l of cd.meta.leases(ns))
      yield* eventItems(timeOf(l.CreatedAt), 'lease.created', { type: 'lease', id: l.ID, name: ns }, metaDb, `${l.resources.length} resources`);
  }

  const docker = o.docker;
  if (docker !== undefined) {
    yield* containerEvents(docker, docker.containers, problems);
    yield* volumeEvents(docker.fs, docker.volumes.volumes);
  }

  if (o.files === false) return;
  // The Docker root's own files (containers/, volumes/, …), the containerd root under it apart.
  if (docker !== undefined && o.prefix !== '') {
    const top = o.prefix.split('/')[0]!;
    for (const name of docker.fs.names('')) {
      if (name === top) continue;
      yield* walk(docker.fs, name, (rel) => dockerObject(rel), '', problems);
    }
  }
  // The containerd root: everything but the snapshotters' snapshots, then the active snapshots (with layers, every snapshot).
  const cobj: TimelineObject = { type: 'root', id: 'containerd' };
  for (const name of cd.fs.names('')) {
    const sn = /^io\.containerd\.snapshotter\.v1\.(.+)$/.exec(name)?.[1];
    if (sn === undefined || !FILE_SNAPSHOTTERS.includes(sn)) {
      yield* walk(cd.fs, name, (rel) => contentObject(rel) ?? { object: cobj }, o.prefix, problems);
      continue;
    }
    const st = cd.fs.lstatBig(name);
    if (st !== undefined) yield { kind: 'file', file: fileTimes(cobj, at(name), undefined, st) };
    for (const n of cd.fs.names(name)) {
      if (n !== 'snapshots') {
        yield* walk(cd.fs, `${name}/${n}`, () => ({ object: cobj }), o.prefix, problems);
        continue;
      }
      const sst = cd.fs.lstatBig(`${name}/snapshots`);
      if (sst !== undefined) yield { kind: 'file', file: fileTimes(cobj, at(`${name}/snapshots`), undefined, sst) };
      for (const id of cd.snapshotDirIds(sn)) {
        const obj = snapObj.get(`${sn}/${id}`);
        const snap = obj === undefined ? undefined : findSnap(cd, sn, id);
        if (!o.layers && snap !== undefined && snap.Kind === 'Committed') continue;
        if (!isSnapshotId(id)) {
          problems.push(problem('CONTAINERD_SNAPSHOT_ID_INVALID', `${at(`${name}/snapshots/${id}`)} is not named by a snapshot id: not walked`));
          continue;
        }
        const dir = `${name}/snapshots/${id}`;
        const fsDir = CD.snapshotFs(sn, id);
        const inside = (rel: string): string | undefined => (rel === fsDir ? '/' : rel.startsWith(`${fsDir}/`) ? rel.slice(fsDir.length) : undefined);
        const o2 = obj ?? { type: 'snapshot' as const, id, name: `${sn} ${id}, no snapshot record` };
        yield* walk(cd.fs, dir, (rel) => ({ object: o2, ...(inside(rel) !== undefined ? { path: inside(rel)! } : {}) }), o.prefix, problems);
      }
    }
  }
}

function findSnap(cd: CdRoot, sn: string, id: string): CdSnapshot | undefined {
  for (const ns of cd.namespaceNames()) {
    const s = cd.snapshots(ns, sn).find((x) => x.backend?.id === id);
    if (s !== undefined) return s;
  }
  return undefined;
}

function contentObject(rel: string): { object: TimelineObject } | undefined {
  const m = /^io\.containerd\.content\.v1\.content\/blobs\/sha256\/([a-f0-9]{64})$/.exec(rel);
  if (m === null || !isBlobDigest(`sha256:${m[1]}`)) return undefined;
  return { object: { type: 'blob', id: `sha256:${m[1]}` } };
}

function dockerObject(rel: string): { object: TimelineObject; path?: string } {
  let m: RegExpExecArray | null;
  if ((m = /^containers\/([a-f0-9]{64})(?:\/|$)/.exec(rel)) !== null) return { object: { type: 'container', id: m[1]! } };
  if ((m = /^volumes\/([^/]+)\/_data(\/.*)?$/.exec(rel)) !== null) return { object: { type: 'volume', id: m[1]! }, path: m[2] ?? '/' };
  if ((m = /^volumes\/([^/]+)(?:\/|$)/.exec(rel)) !== null && m[1] !== 'metadata.db') return { object: { type: 'volume', id: m[1]! } };
  return { object: { type: 'root', id: rel.split('/')[0]! } };
}

/** The files under `top` of a confined root (iterative walk, symlinks as entries), their sources prefixed. */
function* walk(
  fs: Confined,
  top: string,
  attr: (rel: string) => { object: TimelineObject; path?: string },
  prefix: string,
  problems: Problem[],
): Generator<TimelineItem> {
  const at = (rel: string): string => (prefix === '' ? rel : `${prefix}/${rel}`);
  const st = fs.lstatBig(top);
  if (st === undefined) return;
  const a0 = attr(top);
  yield { kind: 'file', file: fileTimes(a0.object, at(top), a0.path, st) };
  if (!st.isDirectory()) return;
  for (const e of fs.walk(top, (rel, err) => problems.push(problem(err.code, err.message, at(rel))), { bigint: true })) {
    const a = attr(e.rel);
    yield { kind: 'file', file: fileTimes(a.object, at(e.rel), a.path, e.stat) };
  }
}

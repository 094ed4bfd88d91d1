import type { BigIntStats } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { instantFromNanos, isZeroInstant, parseRFC3339, type Instant } from '../formats/docker/timestamp.js';
import { isKnownDriver, LAYOUT as L } from '../store/layout.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';
import { readContainerLogs, type LogRecord, type LogSource } from './logs.js';
import { kindOfStats, type Confined } from '../io/confined.js';
import type { ContainerRecord } from '../store/containers.js';
import type { VolumeRecord } from '../store/volumes.js';

/**
 * Every time a data-root holds, as items of one stream: point events of the daemon's objects
 * (image created and each history step, lastUpdated; container created, started, finished, health
 * checks; volume and network created; the first and last log message of each container) and the
 * times of files (mtime, atime, ctime, birth time) of the daemon's metadata (imagedb, layerdb,
 * containers, volumes, network, …), of every container's read-write layer and every volume, and
 * with `layers` of every driver layer directory. Each item names its object and its source file.
 * Items come in walk order: the caller sorts (or, for a body file, lets mactime sort).
 */
export type ObjectType = 'image' | 'container' | 'layer' | 'volume' | 'network' | 'root' | 'snapshot' | 'blob' | 'lease';

export interface TimelineObject {
  type: ObjectType;
  id: string;
  name?: string;
}

export interface TimelineEvent {
  time: Instant;
  /** `image.created`, `container.started`, `file.mtime`, … */
  event: string;
  object: TimelineObject;
  /** The file of the root the time was read from (relative to the root). */
  source: string;
  /** The path inside the object (a container's or volume's view, a layer's tree). */
  path?: string;
  detail?: string;
  file?: FileInfo;
}

export interface FileInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  inode: string;
}

export interface FileTimes {
  object: TimelineObject;
  source: string;
  path?: string;
  file: FileInfo;
  atime: Instant;
  mtime: Instant;
  ctime: Instant;
  /** Birth time when the file system records it. */
  btime: Instant | undefined;
}

export type TimelineItem = { kind: 'event'; event: TimelineEvent } | { kind: 'file'; file: FileTimes };

export interface TimelineOptions {
  /** Also the files of image layers (and every other driver layer directory). */
  layers: boolean;
  /** File times at all (false: the daemon's events only). */
  files?: boolean;
}

export function fileTimes(object: TimelineObject, source: string, path: string | undefined, st: BigIntStats): FileTimes {
  const b = st.birthtimeNs;
  return {
    object,
    source,
    ...(path !== undefined ? { path } : {}),
    file: { type: kindOfStats(st), mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: Number(st.size), inode: st.ino.toString() },
    atime: instantFromNanos(st.atimeNs),
    mtime: instantFromNanos(st.mtimeNs),
    ctime: instantFromNanos(st.ctimeNs),
    btime: b > 0n ? instantFromNanos(b) : undefined,
  };
}

/** The file events of a file record (birth time only when known). */
export function fileEvents(f: FileTimes): TimelineEvent[] {
  const base = { object: f.object, source: f.source, ...(f.path !== undefined ? { path: f.path } : {}), file: f.file };
  const out: TimelineEvent[] = [
    { time: f.mtime, event: 'file.mtime', ...base },
    { time: f.atime, event: 'file.atime', ...base },
    { time: f.ctime, event: 'file.ctime', ...base },
  ];
  if (f.btime !== undefined) out.push({ time: f.btime, event: 'file.btime', ...base });
  return out;
}

const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

/** How an object is named for people: `container /web (6e1fc4473ba3)`. */
export function objectLabel(o: TimelineObject): string {
  switch (o.type) {
    case 'image':
      return `image ${o.name !== undefined ? `${o.name} ` : ''}(${short(o.id)})`;
    case 'container':
      return `container ${o.name ?? ''} (${short(o.id)})`.replace('  ', ' ');
    case 'network':
      return `network ${o.name ?? ''} (${short(o.id)})`.replace('  ', ' ');
    case 'layer':
      return `layer ${o.id.startsWith('sha256:') ? short(o.id) : o.id}${o.name !== undefined ? ` (${o.name})` : ''}`;
    case 'volume':
      return `volume ${o.id}`;
    case 'root':
      return o.id === '' ? 'data-root' : o.id;
    case 'snapshot':
      return `snapshot ${o.id.startsWith('sha256:') ? short(o.id) : o.id}${o.name !== undefined ? ` (${o.name})` : ''}`;
    case 'blob':
      return `blob ${short(o.id)}${o.name !== undefined ? ` (${o.name})` : ''}`;
    case 'lease':
      return `lease ${o.id}${o.name !== undefined ? ` (${o.name})` : ''}`;
  }
}

/** An event, or none when the time is missing or Go's zero time (an empty detail is left out). */
export function eventItems(time: Instant | undefined, event: string, object: TimelineObject, source: string, detail?: string): TimelineItem[] {
  return time === undefined || isZeroInstant(time)
    ? []
    : [{ kind: 'event', event: { time, event, object, source, ...(detail !== undefined && detail !== '' ? { detail } : {}) } }];
}

/** The time a JSON value states in RFC 3339; undefined when it is not a string or does not parse. */
export function timeOf(s: unknown): Instant | undefined {
  return typeof s === 'string' ? parseRFC3339(s) : undefined;
}

/** An image config's history as image.history events, one a step (`created_by` cut at 300 characters). */
export function historyEvents(history: unknown, obj: TimelineObject, source: string): TimelineItem[] {
  const hist: unknown[] = Array.isArray(history) ? history : [];
  const out: TimelineItem[] = [];
  for (let i = 0; i < hist.length; i++) {
    const h = hist[i] as { created?: unknown; created_by?: unknown; empty_layer?: unknown } | null;
    if (h === null || typeof h !== 'object') continue;
    const by = typeof h.created_by === 'string' ? h.created_by : '';
    out.push(
      ...eventItems(
        timeOf(h.created),
        'image.history',
        obj,
        source,
        `step ${i + 1}/${hist.length}${h.empty_layer === true ? ' (no layer)' : ''}: ${by.length > 300 ? `${by.slice(0, 300)}…` : by}`,
      ),
    );
  }
  return out;
}

export interface TimelineRun {
  items: AsyncGenerator<TimelineItem>;
  /** Findings met while walking (filled as the items are consumed). */
  problems: Problem[];
}

export function timeline(store: Store, o: TimelineOptions): TimelineRun {
  const problems: Problem[] = [];
  return { items: items(store, o, problems), problems };
}

async function* items(store: Store, o: TimelineOptions, problems: Problem[]): AsyncGenerator<TimelineItem> {
  const fs = store.fs;
  const drv = store.driver;

  // Images: created, history, lastUpdated.
  const imageObj = new Map<string, TimelineObject>();
  for (const img of store.images.values()) {
    const tags = store.refsOf(img.id).map((r) => r.normalized);
    const obj: TimelineObject = { type: 'image', id: img.id, ...(tags[0] !== undefined ? { name: tags[0] } : {}) };
    imageObj.set(img.hex, obj);
    const cfg = img.config;
    if (cfg === undefined) continue;
    yield* eventItems(timeOf(cfg.created), 'image.created', obj, img.contentPath, tags.length > 0 ? `tags ${tags.join(', ')}` : undefined);
    yield* historyEvents(cfg.history, obj, img.contentPath);
    if (img.lastUpdated !== undefined)
      yield* eventItems(timeOf(img.lastUpdated.trim()), 'image.lastUpdated', obj, `${L.imageMetadataDir(drv)}/${img.hex}/lastUpdated`);
  }

  // Containers: created, started, finished, health checks, first and last log message.
  const containerObj = new Map<string, TimelineObject>();
  for (const c of store.containers)
    containerObj.set(c.id, { type: 'container', id: c.id, ...(typeof c.config?.Name === 'string' ? { name: c.config.Name } : {}) });
  yield* containerEvents(store, store.containers, problems);

  // Volumes: created (the ctime of _data, as the local driver reports CreatedAt).
  yield* volumeEvents(fs, store.volumes.volumes);

  // Networks: created.
  for (const r of store.networkKv.records) {
    if (r.kind !== 'network') continue;
    const id = r.ids[0] ?? '';
    const name = typeof r.value['name'] === 'string' ? r.value['name'] : undefined;
    yield* eventItems(
      timeOf(r.value['created']),
      'network.created',
      { type: 'network', id, ...(name !== undefined ? { name } : {}) },
      L.networkDb,
      typeof r.value['networkType'] === 'string' ? `driver ${r.value['networkType']}` : undefined,
    );
  }
  yield* rest(store, o, problems, imageObj, containerObj);
}

/** Docker containers' events (config.v2.json) and the first and last message of their logs. */
export async function* containerEvents(logs: LogSource, containers: ContainerRecord[], problems: Problem[]): AsyncGenerator<TimelineItem> {
  for (const c of containers) {
    const cfg = c.config;
    const obj: TimelineObject = { type: 'container', id: c.id, ...(typeof cfg?.Name === 'string' ? { name: cfg.Name } : {}) };
    if (cfg === undefined) continue;
    const src = `${c.dir}/config.v2.json`;
    const st = cfg.State ?? {};
    const restarts = typeof cfg.RestartCount === 'number' && cfg.RestartCount > 0 ? `, restart count ${cfg.RestartCount}` : '';
    yield* eventItems(timeOf(cfg.Created), 'container.created', obj, src, typeof cfg.Config?.Image === 'string' ? `image ${cfg.Config.Image}` : undefined);
    yield* eventItems(timeOf(st.StartedAt), 'container.started', obj, src, `${st.Running === true ? 'recorded as running' : ''}${restarts}`.replace(/^, /, ''));
    yield* eventItems(
      timeOf(st.FinishedAt),
      'container.finished',
      obj,
      src,
      `exit code ${st.ExitCode ?? 0}${st.OOMKilled === true ? ', OOM killed' : ''}${st.Error ? `, error ${JSON.stringify(st.Error)}` : ''}${restarts}`,
    );
    const health = st.Health as { Log?: { Start?: unknown; End?: unknown; ExitCode?: unknown }[] } | null | undefined;
    if (health !== null && typeof health === 'object' && Array.isArray(health.Log)) {
      for (const h of health.Log) {
        if (h === null || typeof h !== 'object') continue;
        yield* eventItems(timeOf(h.Start), 'container.health', obj, src, `health check started (exit code ${String(h.ExitCode)})`);
      }
    }
    for await (const it of logEnds(logs, c.id, obj, problems)) yield it;
  }
}

/** Volumes: created (the ctime of _data, as the local driver reports CreatedAt). */
export function* volumeEvents(fs: Confined, volumes: VolumeRecord[]): Generator<TimelineItem> {
  for (const v of volumes) {
    if (v.dataDir === '') continue;
    const st = fs.lstatBig(v.dataDir);
    if (st === undefined) continue;
    yield* eventItems(instantFromNanos(st.ctimeNs), 'volume.created', { type: 'volume', id: v.name }, v.dataDir, `driver ${v.driver}`);
  }
}

function* rest(
  store: Store,
  o: TimelineOptions,
  problems: Problem[],
  imageObj: Map<string, TimelineObject>,
  containerObj: Map<string, TimelineObject>,
): Generator<TimelineItem> {
  const fs = store.fs;
  if (o.files === false) return;
  // File times: everything of the root but the driver homes (metadata, containers, volumes, …).
  const homes = new Set<string>(fs.names('').filter((n) => isKnownDriver(n)));
  for (const top of fs.names('')) {
    if (homes.has(top)) continue;
    yield* walkFiles(store, top, (rel) => attribute(store, rel, imageObj, containerObj), problems);
  }

  // Read-write layers of containers (and, with layers, every driver layer directory).
  const a = store.adapter;
  if (a.content === 'none') {
    problems.push(
      problem('STORE_DRIVER_CONTENT_UNSUPPORTED', `the ${store.driver} driver keeps layer contents that cannot be read offline: no file times of layers`),
    );
    return;
  }
  const byMount = new Map<string, TimelineObject>();
  for (const m of store.mounts) {
    const obj = containerObj.get(m.containerId) ?? { type: 'container' as const, id: m.containerId };
    if (m.mountId !== undefined) byMount.set(m.mountId, obj);
    if (m.initId !== undefined) byMount.set(m.initId, obj);
  }
  const byCache = new Map<string, TimelineObject>();
  for (const l of store.layers.values())
    if (l.cacheId !== undefined)
      byCache.set(l.cacheId, { type: 'layer', id: l.chainId, ...(l.diffId !== undefined ? { name: `diff ${short(l.diffId)}` } : {}) });
  const seen = new Set<string>();
  for (const m of store.mounts) {
    if (m.mountId === undefined) continue;
    seen.add(m.mountId);
    yield* walkLayer(store, m.mountId, byMount.get(m.mountId)!, problems);
  }
  if (!o.layers) return;
  for (const { name, rel } of a.layerDirNames(fs)) {
    if (seen.has(name)) continue;
    const obj = byCache.get(name) ?? byMount.get(name) ?? { type: 'layer' as const, id: name, name: 'not in layerdb' };
    if (!/^[A-Za-z0-9._-]+$/.test(name)) continue;
    yield* walkLayer(store, name, obj, problems, rel);
  }
}

/** The first and last message of a container's logs (every rotation present). */
async function* logEnds(store: LogSource, id: string, obj: TimelineObject, problems: Problem[]): AsyncGenerator<TimelineItem> {
  const ends: [string, number][] = [
    ['log.first', -1],
    ['log.last', 1],
  ];
  for (const [event, tail] of ends) {
    let rec: LogRecord | undefined;
    try {
      const r = await readContainerLogs(store, id, { tail, allRotated: true });
      for await (const batch of r.records) {
        rec = tail < 0 ? batch[0] : batch[batch.length - 1];
        if (tail < 0) break;
      }
      await r.records.return(undefined);
      for (const p of r.problems) problems.push({ ...p, message: `logs of ${id.slice(0, 12)}: ${p.message}` });
    } catch (e) {
      if (!(e instanceof DatarootError)) throw e;
      if (e.code !== 'LOGS_NOT_ON_DISK') problems.push(problem(e.code, `logs of ${id.slice(0, 12)}: ${e.message}`));
      return;
    }
    if (rec === undefined) return;
    const text = new TextDecoder().decode(rec.line).replace(/\n$/, '');
    yield {
      kind: 'event',
      event: { time: rec.time, event, object: obj, source: rec.file, detail: `${rec.stream}: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}` },
    };
  }
}

/** Which object a file of the root belongs to, and its path there. */
function attribute(
  store: Store,
  rel: string,
  images: Map<string, TimelineObject>,
  containers: Map<string, TimelineObject>,
): { object: TimelineObject; path?: string } {
  const d = store.driver.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let m: RegExpExecArray | null;
  if ((m = new RegExp(`^image/${d}/imagedb/(?:content|metadata)/sha256/([a-f0-9]{64})(?:/|$)`).exec(rel)) !== null)
    return { object: images.get(m[1]!) ?? { type: 'image', id: `sha256:${m[1]}` } };
  if ((m = new RegExp(`^image/${d}/layerdb/sha256/([a-f0-9]{64})(?:/|$)`).exec(rel)) !== null) {
    const l = store.layers.get(`sha256:${m[1]}`);
    return { object: { type: 'layer', id: `sha256:${m[1]}`, ...(l?.diffId !== undefined ? { name: `diff ${short(l.diffId)}` } : {}) } };
  }
  if ((m = new RegExp(`^image/${d}/layerdb/mounts/([a-f0-9]{64})(?:/|$)`).exec(rel)) !== null)
    return { object: containers.get(m[1]!) ?? { type: 'container', id: m[1]! } };
  if ((m = /^containers\/([a-f0-9]{64})(?:\/|$)/.exec(rel)) !== null) return { object: containers.get(m[1]!) ?? { type: 'container', id: m[1]! } };
  if ((m = /^volumes\/([^/]+)\/_data(\/.*)?$/.exec(rel)) !== null) return { object: { type: 'volume', id: m[1]! }, path: m[2] ?? '/' };
  if ((m = /^volumes\/([^/]+)(?:\/|$)/.exec(rel)) !== null && m[1] !== 'metadata.db') return { object: { type: 'volume', id: m[1]! } };
  const top = rel.split('/')[0]!;
  return { object: { type: 'root', id: top === 'image' ? 'image store' : top === 'network' ? 'network store' : top === 'volumes' ? 'volume store' : top } };
}

function* walkFiles(store: Store, top: string, attr: (rel: string) => { object: TimelineObject; path?: string }, problems: Problem[]): Generator<TimelineItem> {
  const st = store.fs.lstatBig(top);
  if (st === undefined) return;
  yield { kind: 'file', file: fileTimes(attr(top).object, top, attr(top).path, st) };
  if (!st.isDirectory()) return;
  for (const e of store.fs.walk(top, (rel, err) => problems.push(problem(err.code, err.message, rel)), { bigint: true })) {
    const a = attr(e.rel);
    yield { kind: 'file', file: fileTimes(a.object, e.rel, a.path, e.stat) };
  }
}

/** The files of a driver layer directory; those in its content tree carry their path in the layer. */
function* walkLayer(store: Store, id: string, obj: TimelineObject, problems: Problem[], dir = store.adapter.layerDir(id)): Generator<TimelineItem> {
  const content = store.adapter.contentDir(store.fs, id);
  const k = store.fs.kind(dir);
  if (k === 'missing') return;
  if (k !== 'dir') {
    problems.push(problem(k === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'PATH_NOT_A_DIRECTORY', `${dir} is a ${k}, not a layer directory: not walked`, dir));
    return;
  }
  const inside = (rel: string): string | undefined =>
    content === undefined ? undefined : rel === content ? '/' : rel.startsWith(`${content}/`) ? rel.slice(content.length) : undefined;
  const st = store.fs.lstatBig(dir)!;
  yield { kind: 'file', file: fileTimes(obj, dir, inside(dir), st) };
  for (const e of store.fs.walk(dir, (rel, err) => problems.push(problem(err.code, err.message, rel)), { bigint: true })) {
    yield { kind: 'file', file: fileTimes(obj, e.rel, inside(e.rel), e.stat) };
  }
}

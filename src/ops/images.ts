import { DatarootError } from '../formats/errors.js';
import { goContainerConfig } from '../formats/docker/apitypes.js';
import { GO_ZERO_TIME, goRFC3339Nano, parseGoTime } from '../formats/docker/gotime.js';
import type { ImageRecord, RefEntry } from '../store/images.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';

/** `docker image ls` filters dataroot understands (the daemon's own set). */
export interface ImageFilters {
  dangling?: boolean;
  label: string[];
  reference: string[];
  before?: string;
  since?: string;
}

export interface ImageListOptions {
  all: boolean;
  filters: ImageFilters;
}

/** types.ImageSummary, field for field, plus what dataroot knows about the item. */
export interface ImageSummary {
  Containers: number;
  Created: number;
  Id: string;
  Labels: Record<string, string> | null;
  ParentId: string;
  RepoDigests: string[] | null;
  RepoTags: string[] | null;
  SharedSize: number;
  Size: number;
  VirtualSize: number;
}

export interface ImageListResult {
  images: ImageSummary[];
  /** Images on disk dockerd would not list, and why. */
  skipped: { id: string; reason: string; problems: Problem[] }[];
  problems: Problem[];
}

/** Go's path.Match: `*` and `?` never match `/`; `[...]` classes with `^` negation; `\` escapes. */
export function goPathMatch(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += `\\${pattern[++i]!}`;
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) return false;
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = `^${cls.slice(1)}`;
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  try {
    return new RegExp(`${re}$`).test(name);
  } catch {
    return false;
  }
}

/** reference.FamiliarMatch: the pattern against the familiar string, else the familiar name. */
function familiarMatch(pattern: string, r: RefEntry): boolean {
  return goPathMatch(pattern, r.familiar) || goPathMatch(pattern, r.name);
}

/** filters.MatchKVList: every `k` or `k=v` of the filter is in the labels. */
export function matchLabels(filters: string[], labels: Record<string, unknown> | null | undefined): boolean {
  if (filters.length === 0) return true;
  if (labels === null || labels === undefined) return false;
  return filters.every((f) => {
    const eq = f.indexOf('=');
    if (eq < 0) return Object.prototype.hasOwnProperty.call(labels, f);
    return labels[f.slice(0, eq)] === f.slice(eq + 1);
  });
}

export function createdUnix(s: string | undefined): number {
  if (s === undefined) return -62135596800;
  return parseGoTime(s)?.unix ?? -62135596800;
}

function labelsOf(img: ImageRecord): Record<string, string> | null {
  const c = img.config?.config;
  if (c === null || c === undefined || typeof c !== 'object') return null;
  const l = (c as { Labels?: unknown }).Labels;
  return l !== null && typeof l === 'object' ? (l as Record<string, string>) : null;
}

const REASONS: Record<string, string> = {
  invalid: 'dockerd skips it at start ("invalid image"): its config does not verify or is not a valid image config',
  'layer-missing': 'dockerd skips it at start ("layer does not exist, not restoring image"): its layer chain does not load',
  os: 'dockerd skips it: the operating system is not supported on this host',
};

/** `docker image ls [-a] [--filter …]` over the store, as dockerd 20.10 computes it. */
export function listImages(store: Store, opts: ImageListOptions): ImageListResult {
  const f = opts.filters;
  const problems: Problem[] = [...store.repositories.problems];
  const skipped: ImageListResult['skipped'] = [];
  for (const img of store.images.values()) {
    const state = store.restoreState(img);
    if (state !== undefined) skipped.push({ id: img.id, reason: REASONS[state]!, problems: img.problems });
  }
  const lookupTime = (q: string | undefined): number | undefined => {
    if (q === undefined) return undefined;
    const r = store.lookupImage(q);
    if (r.image === undefined) throw new DatarootError('USAGE_BAD_FILTER', `filter image ${q}: ${r.error?.message ?? 'not found'}`);
    const t = parseGoTime(r.image.config?.created ?? GO_ZERO_TIME);
    return t === undefined ? 0 : t.unix * 1e9 + t.nanos;
  };
  const before = lookupTime(f.before);
  const since = lookupTime(f.since);
  const images: ImageSummary[] = [];
  for (const img of store.restored) {
    // dangling=true starts from the heads (images without children).
    if (f.dangling === true && store.children(img.id).length > 0) continue;
    const t = parseGoTime(img.config?.created ?? GO_ZERO_TIME);
    const tn = t === undefined ? 0 : t.unix * 1e9 + t.nanos;
    if (before !== undefined && tn >= before) continue;
    if (since !== undefined && tn <= since) continue;
    if (f.label.length > 0 && (img.config?.config === null || img.config?.config === undefined || !matchLabels(f.label, labelsOf(img)))) continue;
    let repoDigests: string[] | null = null;
    let repoTags: string[] | null = null;
    let taggedSkip = false;
    for (const r of store.refsOf(img.id)) {
      if (f.reference.length > 0 && !f.reference.some((p) => familiarMatch(p, r))) continue;
      if (r.digest !== undefined) (repoDigests ??= []).push(r.familiar);
      if (r.tag !== undefined) {
        if (f.dangling === true) {
          taggedSkip = true;
          break;
        }
        (repoTags ??= []).push(r.familiar);
      }
    }
    if (taggedSkip) continue;
    if ((repoDigests === null || repoDigests.length === 0) && (repoTags === null || repoTags.length === 0)) {
      if ((!opts.all && store.children(img.id).length > 0) || f.dangling === false || f.reference.length > 0) continue;
      repoDigests = ['<none>@<none>'];
      repoTags = ['<none>:<none>'];
    }
    const size = store.chainSize(img.chainId);
    images.push({
      Containers: -1,
      Created: createdUnix(img.config?.created),
      Id: img.id,
      Labels: labelsOf(img),
      ParentId: img.parent ?? '',
      RepoDigests: repoDigests,
      RepoTags: repoTags,
      SharedSize: -1,
      Size: size,
      VirtualSize: size,
    });
  }
  images.sort((a, b) => b.Created - a.Created || (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));
  return { images, skipped, problems };
}

export interface LayerLink {
  diffId: string;
  chainId: string;
  cacheId: string | null;
  dir: string | null;
  size: number | null;
  present: boolean;
}

/** The `docker image inspect` object, plus a `Dataroot` section (layer chain, restore state, problems). */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  Container: string;
  ContainerConfig: Record<string, unknown>;
  DockerVersion: string;
  Author: string;
  Config: Record<string, unknown> | null;
  Architecture: string;
  Variant?: string;
  Os: string;
  OsVersion?: string;
  Size: number;
  VirtualSize: number;
  GraphDriver: { Data: Record<string, string> | null; Name: string };
  RootFS: { Type: string; Layers?: string[] };
  Metadata: { LastTagTime: string };
  Dataroot: { restored: boolean; reason?: string; layers: LayerLink[]; problems: Problem[]; configPath: string };
}

export function inspectImage(store: Store, img: ImageRecord): ImageInspect {
  const c = img.config ?? {};
  const problems: Problem[] = [...img.problems];
  const chain = store.chainOf(img);
  const layers: LayerLink[] = chain.map((chainId, i) => {
    const l = store.layers.get(chainId);
    if (l === undefined) problems.push(problem('LAYER_CHAIN_MISSING', `layer ${chainId} (diffID ${img.diffIds[i]}) has no layerdb entry`));
    else for (const p of l.problems) problems.push(p);
    if (l !== undefined && l.driverDir !== undefined && !l.driverDirExists)
      problems.push(problem('LAYER_DIR_MISSING', `driver directory of cache-id ${l.cacheId} does not exist`, l.driverDir));
    return {
      diffId: img.diffIds[i]!,
      chainId,
      cacheId: l?.cacheId ?? null,
      dir: l?.driverDir !== undefined ? store.shown(l.driverDir) : null,
      size: l?.size ?? null,
      present: l !== undefined,
    };
  });
  const refs = store.refsOf(img.id);
  let comment = typeof c.comment === 'string' ? c.comment : '';
  const history = Array.isArray(c.history) ? c.history : [];
  if (comment === '' && history.length > 0) comment = history[history.length - 1]?.comment ?? '';
  let lastTag = GO_ZERO_TIME;
  if (img.lastUpdated !== undefined) {
    const t = parseGoTime(img.lastUpdated);
    if (t === undefined)
      problems.push(
        problem('IMAGE_LASTUPDATED_INVALID', `lastUpdated ${JSON.stringify(img.lastUpdated)} is not an RFC 3339 time: docker image inspect fails on it`),
      );
    else lastTag = goRFC3339Nano(img.lastUpdated);
  }
  const top = chain[chain.length - 1];
  const topLayer = top === undefined ? undefined : store.layers.get(top);
  const state = store.restoreState(img);
  const out: ImageInspect = {
    Id: img.id,
    RepoTags: refs.filter((r) => r.tag !== undefined).map((r) => r.familiar),
    RepoDigests: refs.filter((r) => r.digest !== undefined && r.tag === undefined).map((r) => r.familiar),
    Parent: img.parent ?? '',
    Comment: comment,
    Created: c.created === undefined ? GO_ZERO_TIME : goRFC3339Nano(c.created),
    Container: typeof c.container === 'string' ? c.container : '',
    ContainerConfig: goContainerConfig(c.container_config),
    DockerVersion: typeof c.docker_version === 'string' ? c.docker_version : '',
    Author: typeof c.author === 'string' ? c.author : '',
    Config: c.config === null || c.config === undefined ? null : goContainerConfig(c.config),
    Architecture: typeof c.architecture === 'string' ? c.architecture : '',
    Os: typeof c.os === 'string' && c.os !== '' ? c.os : 'linux',
    Size: store.chainSize(img.chainId),
    VirtualSize: store.chainSize(img.chainId),
    GraphDriver: {
      Data: topLayer?.cacheId === undefined ? null : store.adapter.graphDriverData(store.fs, topLayer.cacheId, (r) => store.shown(r)),
      Name: store.driver,
    },
    RootFS: img.diffIds.length > 0 ? { Type: c.rootfs?.type ?? '', Layers: img.diffIds } : { Type: c.rootfs?.type ?? '' },
    Metadata: { LastTagTime: lastTag },
    Dataroot: {
      restored: state === undefined,
      ...(state !== undefined ? { reason: REASONS[state]! } : {}),
      layers,
      problems,
      configPath: store.shown(img.contentPath),
    },
  };
  if (typeof c.variant === 'string' && c.variant !== '') out.Variant = c.variant;
  if (typeof c['os.version'] === 'string' && c['os.version'] !== '') out.OsVersion = c['os.version'];
  // Keep dockerd's field order: Variant and OsVersion sit between Architecture and Os.
  return reorder(out, [
    'Id',
    'RepoTags',
    'RepoDigests',
    'Parent',
    'Comment',
    'Created',
    'Container',
    'ContainerConfig',
    'DockerVersion',
    'Author',
    'Config',
    'Architecture',
    'Variant',
    'Os',
    'OsVersion',
    'Size',
    'VirtualSize',
    'GraphDriver',
    'RootFS',
    'Metadata',
    'Dataroot',
  ]);
}

function reorder<T extends object>(o: T, keys: string[]): T {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (Object.prototype.hasOwnProperty.call(o, k)) out[k] = (o as Record<string, unknown>)[k];
  return out as T;
}

/** image.HistoryResponseItem */
export interface HistoryItem {
  Comment: string;
  Created: number;
  CreatedBy: string;
  Id: string;
  Size: number;
  Tags: string[] | null;
}

/** `docker history`: newest first, per-layer sizes, IDs and tags filled in along the parent chain. */
export function imageHistory(store: Store, img: ImageRecord): { history: HistoryItem[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const entries = Array.isArray(img.config?.history) ? img.config.history : [];
  const chain = store.chainOf(img);
  let counter = 0;
  const items: HistoryItem[] = [];
  for (const h of entries) {
    let size = 0;
    if (h.empty_layer !== true) {
      const chainId = chain[counter];
      if (chainId === undefined)
        throw new DatarootError('IMAGE_HISTORY_INVALID', `${img.id}: too many non-empty layers in the history section`, { file: img.contentPath });
      const l = store.layers.get(chainId);
      if (l === undefined) throw new DatarootError('LAYER_CHAIN_MISSING', `${img.id}: layer ${chainId} does not exist`, { file: img.contentPath });
      size = l.size ?? 0;
      counter++;
    }
    items.unshift({
      Comment: h.comment ?? '',
      Created: h.created === undefined ? 0 : createdUnix(h.created),
      CreatedBy: h.created_by ?? '',
      Id: '<missing>',
      Size: size,
      Tags: null,
    });
  }
  let cur: ImageRecord | undefined = img;
  for (const item of items) {
    if (cur === undefined) break;
    item.Id = cur.id;
    const tags = store
      .refsOf(cur.id)
      .filter((r) => r.tag !== undefined)
      .map((r) => r.familiar);
    item.Tags = tags.length > 0 ? tags : null;
    const parent: string | undefined = cur.parent;
    if (parent === undefined || parent === '') break;
    const next = store.lookupImage(parent);
    cur = next.image;
    if (cur === undefined)
      problems.push(problem('IMAGE_PARENT_MISSING', `parent ${JSON.stringify(parent)} cannot be found: older history rows show <missing>`));
  }
  return { history: items, problems };
}

/** Resolves an image argument or throws the coded error (exit 2) the CLI prints. */
export function requireImage(store: Store, q: string): ImageRecord {
  const r = store.lookupImage(q);
  if (r.image === undefined) throw new DatarootError(r.error?.code ?? 'IMAGE_NOT_FOUND', r.error?.message ?? `No such image: ${q}`);
  return r.image;
}

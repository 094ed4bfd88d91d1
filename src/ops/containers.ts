import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { goEndpointSettings, goSummaryEndpoint, humanDuration } from '../formats/docker/apitypes.js';
import { GO_ZERO_TIME, goRFC3339Nano, isGoZeroTime, parseGoTime } from '../formats/docker/gotime.js';
import { stateString, type ContainerRecord, type StoredMountPoint, type StoredState } from '../store/containers.js';
import { graphDriverData, overlayLowerDirs } from '../store/drivers.js';
import { driverDirOf } from '../store/layers.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';
import { buildView, type FsNode } from '../store/rootfs.js';
import { exists } from '../store/fsread.js';
import { createdUnix } from './images.js';

type Obj = Record<string, unknown>;

export interface MountPointApi {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** container.GetMountPoints(): API mount points from config.v2.json's MountPoints (sorted by destination). */
export function mountPoints(mps: Record<string, StoredMountPoint> | null | undefined): MountPointApi[] {
  const out: MountPointApi[] = [];
  for (const m of Object.values(mps ?? {})) {
    const mp: MountPointApi = { Type: m.Type ?? '', Source: m.Source ?? '', Destination: m.Destination ?? '', Mode: m.Relabel ?? '', RW: m.RW === true, Propagation: m.Propagation ?? '' };
    // Name and Driver are omitempty in types.MountPoint.
    const ordered: MountPointApi = { Type: mp.Type } as MountPointApi;
    if (m.Name) ordered.Name = m.Name;
    ordered.Source = mp.Source;
    ordered.Destination = mp.Destination;
    if (m.Driver) ordered.Driver = m.Driver;
    ordered.Mode = mp.Mode;
    ordered.RW = mp.RW;
    ordered.Propagation = mp.Propagation;
    out.push(ordered);
  }
  return out.sort((a, b) => (a.Destination < b.Destination ? -1 : a.Destination > b.Destination ? 1 : 0));
}

/** container.State.String(): the STATUS column of `docker ps` (relative to `now`). */
export function statusString(s: StoredState | undefined, now: number): string {
  if (s === undefined) return '';
  const since = (t: string | undefined): string => {
    const p = t === undefined ? undefined : parseGoTime(t);
    return humanDuration(p === undefined ? 0 : now / 1000 - (p.unix + p.nanos / 1e9));
  };
  const health = (s.Health as { Status?: string } | null | undefined)?.Status;
  if (s.Running) {
    if (s.Paused) return `Up ${since(s.StartedAt)} (Paused)`;
    if (s.Restarting) return `Restarting (${s.ExitCode ?? 0}) ${since(s.FinishedAt)} ago`;
    if (health !== undefined) return `Up ${since(s.StartedAt)} (${health === 'starting' ? 'health: starting' : health})`;
    return `Up ${since(s.StartedAt)}`;
  }
  if (s.RemovalInProgress) return 'Removal In Progress';
  if (s.Dead) return 'Dead';
  if (isGoZeroTime(s.StartedAt)) return 'Created';
  if (isGoZeroTime(s.FinishedAt)) return '';
  return `Exited (${s.ExitCode ?? 0}) ${since(s.FinishedAt)} ago`;
}

/** The Command column: Path and Args, args with a space quoted in single quotes. */
function commandOf(c: ContainerRecord): string {
  const path = c.config?.Path ?? '';
  const args = c.config?.Args ?? [];
  if (args.length === 0) return path;
  return `${path} ${args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ')}`;
}

function portsOf(ports: unknown): Obj[] {
  const out: Obj[] = [];
  if (ports === null || typeof ports !== 'object') return out;
  for (const [key, bindings] of Object.entries(ports as Record<string, unknown>)) {
    const [p, proto] = key.split('/');
    const priv = Number(p);
    if (!Array.isArray(bindings) || bindings.length === 0) {
      out.push({ PrivatePort: priv, Type: proto ?? 'tcp' });
      continue;
    }
    for (const b of bindings as { HostIp?: string; HostPort?: string }[]) {
      const e: Obj = {};
      if (b.HostIp) e['IP'] = b.HostIp;
      e['PrivatePort'] = priv;
      if (b.HostPort && Number(b.HostPort) !== 0) e['PublicPort'] = Number(b.HostPort);
      e['Type'] = proto ?? 'tcp';
      out.push(e);
    }
  }
  return out;
}

/** A note for a container the daemon did not stop (the root was captured from a killed or running daemon). */
function runningNote(c: ContainerRecord): string | undefined {
  if (c.config?.State?.Running !== true) return undefined;
  return 'recorded as running: the daemon did not stop it (killed daemon or live copy); dockerd will find its process gone at next start and mark it exited';
}

export interface ContainerSummary extends Obj {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  State: string;
  Status: string;
}

export interface ContainerListResult {
  containers: ContainerSummary[];
  problems: Problem[];
}

/** `docker ps -a` over the stored containers, newest first. */
export function listContainers(store: Store, now = Date.now()): ContainerListResult {
  const problems: Problem[] = [];
  const containers: ContainerSummary[] = [];
  for (const c of store.containers) {
    for (const p of c.problems) problems.push({ ...p, message: `container ${c.id}: ${p.message}` });
    const cfg = c.config;
    if (cfg === undefined) continue;
    const imageId = cfg.Image ?? '';
    let image = cfg.Config?.Image ?? '';
    if (image !== imageId) {
      const r = store.lookupImage(image);
      if (r.image === undefined || r.image.id !== imageId) image = imageId;
    }
    const networks: Obj = {};
    for (const [name, ep] of Object.entries(cfg.NetworkSettings?.Networks ?? {})) if (ep !== null) networks[name] = goSummaryEndpoint(ep);
    const note = runningNote(c);
    containers.push({
      Id: c.id,
      Names: [cfg.Name ?? ''],
      Image: image,
      ImageID: imageId,
      Command: commandOf(c),
      Created: createdUnix(cfg.Created),
      Ports: portsOf(cfg.NetworkSettings?.Ports),
      Labels: cfg.Config?.Labels ?? null,
      State: stateString(cfg.State),
      Status: statusString(cfg.State, now),
      HostConfig: { NetworkMode: (c.hostConfig?.['NetworkMode'] as string | undefined) ?? '' },
      NetworkSettings: { Networks: networks },
      Mounts: mountPoints(cfg.MountPoints),
      ...(note !== undefined || c.problems.length > 0 ? { Dataroot: { ...(note !== undefined ? { note } : {}), problems: c.problems } } : {}),
    });
  }
  containers.sort((a, b) => b.Created - a.Created || (a.Id < b.Id ? -1 : 1));
  return { containers, problems };
}

/** `docker container inspect`, from config.v2.json and hostconfig.json, plus a `Dataroot` section. */
export function inspectContainer(store: Store, c: ContainerRecord): Obj {
  const cfg = c.config;
  if (cfg === undefined) {
    throw new DatarootError(c.problems[0]?.code ?? 'CONTAINER_CONFIG_INVALID', `container ${c.id}: ${c.problems[0]?.message ?? 'config.v2.json cannot be read'}`, { file: join(c.dir, 'config.v2.json') });
  }
  const s = cfg.State ?? {};
  const state: Obj = {
    Status: stateString(cfg.State),
    Running: s.Running === true,
    Paused: s.Paused === true,
    Restarting: s.Restarting === true,
    OOMKilled: s.OOMKilled === true,
    Dead: s.Dead === true,
    Pid: s.Pid ?? 0,
    ExitCode: s.ExitCode ?? 0,
    Error: s.Error ?? '',
    StartedAt: s.StartedAt === undefined ? GO_ZERO_TIME : goRFC3339Nano(s.StartedAt),
    FinishedAt: s.FinishedAt === undefined ? GO_ZERO_TIME : goRFC3339Nano(s.FinishedAt),
  };
  if (s.Health !== null && s.Health !== undefined) state['Health'] = s.Health;
  const mount = store.mountOf(c.id);
  const problems: Problem[] = [...c.problems, ...(mount?.problems ?? [])];
  if (mount === undefined) problems.push(problem('CONTAINER_LAYER_MISSING', `layerdb/mounts/${c.id} does not exist: dockerd cannot mount this container`));
  else if (mount.mountId !== undefined && !exists(driverDirOf(store.L, store.driver, mount.mountId))) {
    problems.push(problem('CONTAINER_LAYER_MISSING', `the driver directory of the container's layer (${mount.mountId}) does not exist`));
  }
  const imageId = cfg.Image ?? '';
  if (imageId !== '' && !store.images.has(imageId)) problems.push(problem('CONTAINER_IMAGE_MISSING', `image ${imageId} is not in the image store`));
  const ns = cfg.NetworkSettings ?? {};
  const networks: Obj = {};
  for (const [name, ep] of Object.entries(ns.Networks ?? {})) if (ep !== null) networks[name] = goEndpointSettings(ep);
  const bridge = (ns.Networks ?? {})['bridge'];
  const def = goEndpointSettings(bridge ?? {});
  const ports: Obj = {};
  if (ns.Ports !== null && typeof ns.Ports === 'object') Object.assign(ports, ns.Ports);
  const note = runningNote(c);
  return {
    Id: c.id,
    Created: cfg.Created === undefined ? GO_ZERO_TIME : goRFC3339Nano(cfg.Created),
    Path: cfg.Path ?? '',
    Args: cfg.Args ?? null,
    State: state,
    Image: imageId,
    ResolvConfPath: cfg.ResolvConfPath ?? '',
    HostnamePath: cfg.HostnamePath ?? '',
    HostsPath: cfg.HostsPath ?? '',
    LogPath: cfg.LogPath ?? '',
    Name: cfg.Name ?? '',
    RestartCount: cfg.RestartCount ?? 0,
    Driver: cfg.Driver ?? '',
    Platform: cfg.OS ?? '',
    MountLabel: cfg.MountLabel ?? '',
    ProcessLabel: cfg.ProcessLabel ?? '',
    AppArmorProfile: cfg.AppArmorProfile ?? '',
    ExecIDs: null,
    HostConfig: c.hostConfig ?? null,
    GraphDriver: { Data: mount?.mountId === undefined ? null : graphDriverData(store, mount.mountId), Name: cfg.Driver ?? '' },
    Mounts: mountPoints(cfg.MountPoints),
    Config: cfg.Config ?? null,
    NetworkSettings: {
      Bridge: (ns['Bridge'] as string | undefined) ?? '',
      SandboxID: (ns['SandboxID'] as string | undefined) ?? '',
      HairpinMode: ns['HairpinMode'] === true,
      LinkLocalIPv6Address: (ns['LinkLocalIPv6Address'] as string | undefined) ?? '',
      LinkLocalIPv6PrefixLen: (ns['LinkLocalIPv6PrefixLen'] as number | undefined) ?? 0,
      Ports: ports,
      SandboxKey: (ns['SandboxKey'] as string | undefined) ?? '',
      SecondaryIPAddresses: ns['SecondaryIPAddresses'] ?? null,
      SecondaryIPv6Addresses: ns['SecondaryIPv6Addresses'] ?? null,
      EndpointID: def['EndpointID'],
      Gateway: def['Gateway'],
      GlobalIPv6Address: def['GlobalIPv6Address'],
      GlobalIPv6PrefixLen: def['GlobalIPv6PrefixLen'],
      IPAddress: def['IPAddress'],
      IPPrefixLen: def['IPPrefixLen'],
      IPv6Gateway: def['IPv6Gateway'],
      MacAddress: def['MacAddress'],
      Networks: networks,
    },
    Dataroot: {
      dir: store.shown(c.dir),
      mountId: mount?.mountId ?? null,
      initId: mount?.initId ?? null,
      layerParent: mount?.parent ?? null,
      ...(note !== undefined ? { note } : {}),
      problems,
    },
  };
}

export function requireContainer(store: Store, q: string): ContainerRecord {
  const r = store.lookupContainer(q);
  if (r.container === undefined) throw new DatarootError(r.error?.code ?? 'CONTAINER_NOT_FOUND', r.error?.message ?? `No such container: ${q}`);
  return r.container;
}

export type ChangeKind = 'C' | 'A' | 'D';

export interface Change {
  Path: string;
  /** 0 modify, 1 add, 2 delete (archive.ChangeType, as the API reports it). */
  Kind: 0 | 1 | 2;
}

export interface ChangeDetail extends Change {
  type?: string;
  size?: number;
  mode?: string;
  uid?: number;
  gid?: number;
  mtime?: string;
  sha256?: string;
  linkTarget?: string;
}

/** statDifferent of pkg/archive: directories compare mode, owner and rdev only; others also mtime and size. */
function statDifferent(a: FsNode, b: FsNode): boolean {
  const o = a.stat;
  const n = b.stat;
  if (o.mode !== n.mode || o.uid !== n.uid || o.gid !== n.gid || o.rdev !== n.rdev) return true;
  if (!o.isDirectory()) {
    const sameTime = o.mtimeMs / 1000n === n.mtimeMs / 1000n && (o.mtimeNs === n.mtimeNs || o.mtimeNs % 1_000_000_000n === 0n || n.mtimeNs % 1_000_000_000n === 0n);
    if (!sameTime || o.size !== n.size) return true;
  }
  return false;
}

function capEqual(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}

/**
 * pkg/archive's ChangesDirs between two trees: an entry only in the new tree is A (and its subtree),
 * one only in the old is D, a stat difference is C, and a directory with changes inside is C.
 */
export function changesBetween(newRoot: FsNode, oldRoot: FsNode | undefined): Change[] {
  const changes: Change[] = [];
  const added = new Set<FsNode>();
  const walk = (info: FsNode, old: FsNode | undefined, path: string): void => {
    const at = changes.length;
    if (old === undefined) {
      changes.push({ Path: path, Kind: 1 });
      added.add(info);
    }
    const oldChildren = new Map<string, FsNode>(old !== undefined && info.stat.isDirectory() ? old.children ?? [] : []);
    for (const [name, child] of info.children ?? []) {
      const oc = oldChildren.get(name);
      const childPath = path === '/' ? `/${name}` : `${path}/${name}`;
      if (oc !== undefined) {
        if (statDifferent(oc, child) || !capEqual(oc.capability, child.capability)) {
          changes.push({ Path: childPath, Kind: 0 });
          added.add(child);
        }
        oldChildren.delete(name);
      }
      walk(child, oc, childPath);
    }
    for (const name of oldChildren.keys()) changes.push({ Path: path === '/' ? `/${name}` : `${path}/${name}`, Kind: 2 });
    if (changes.length > at && info.stat.isDirectory() && !added.has(info) && path !== '/') changes.splice(at, 0, { Path: path, Kind: 0 });
  };
  walk(newRoot, oldRoot, '/');
  return changes.sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
}

function typeOf(n: FsNode): string {
  const s = n.stat;
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isCharacterDevice()) return 'char';
  if (s.isBlockDevice()) return 'block';
  if (s.isFIFO()) return 'fifo';
  if (s.isSocket()) return 'socket';
  return 'file';
}

function nodeAt(root: FsNode, path: string): FsNode | undefined {
  let n: FsNode | undefined = root;
  for (const part of path.split('/').filter(Boolean)) n = n?.children?.get(part);
  return n;
}

/**
 * Offline `docker container diff`: the container's view (its read-write layer over the init layer
 * and the image layers) against its parent's view (the init layer and the image), as dockerd's
 * naive differ compares them. Overlay whiteouts and opaque directories are applied when the views
 * are merged. With `details`, added and changed entries carry type, size, mode, owner, mtime and
 * the sha256 of regular files.
 */
export function containerChanges(store: Store, c: ContainerRecord, details = false): ChangeDetail[] {
  const mount = store.mountOf(c.id);
  if (mount?.mountId === undefined) throw new DatarootError('CONTAINER_LAYER_MISSING', `container ${c.id} has no read-write layer (layerdb/mounts/${c.id}/mount-id)`);
  const mountId = mount.mountId;
  let newView: FsNode;
  let oldView: FsNode | undefined;
  if (store.driver === 'overlay2') {
    const home = store.L.driverHome('overlay2');
    const upper = join(home, mountId, 'diff');
    if (!exists(upper)) throw new DatarootError('CONTAINER_LAYER_MISSING', `${store.shown(upper)} does not exist`, { file: upper });
    const { dirs, broken } = overlayLowerDirs(store.L, mountId);
    if (broken.length > 0) throw new DatarootError('OVERLAY_LINK_BROKEN', `lower links of ${mountId} do not resolve: ${broken.join(', ')}`);
    newView = buildView([upper, ...dirs], true);
    oldView = dirs.length > 0 ? buildView(dirs, true) : undefined;
  } else if (store.driver === 'vfs') {
    const dir = driverDirOf(store.L, 'vfs', mountId);
    if (!exists(dir)) throw new DatarootError('CONTAINER_LAYER_MISSING', `${store.shown(dir)} does not exist`, { file: dir });
    newView = buildView([dir], false);
    const init = mount.initId !== undefined ? driverDirOf(store.L, 'vfs', mount.initId) : undefined;
    oldView = init !== undefined && exists(init) ? buildView([init], false) : undefined;
  } else {
    throw new DatarootError('STORE_DRIVER_UNSUPPORTED', `container diff is not supported for the ${store.driver} driver yet (overlay2 and vfs are)`);
  }
  const changes: ChangeDetail[] = changesBetween(newView, oldView);
  if (!details) return changes;
  for (const ch of changes) {
    if (ch.Kind === 2) continue;
    const n = nodeAt(newView, ch.Path);
    if (n === undefined) continue;
    const s = n.stat;
    ch.type = typeOf(n);
    ch.size = Number(s.size);
    ch.mode = (Number(s.mode) & 0o7777).toString(8).padStart(4, '0');
    ch.uid = Number(s.uid);
    ch.gid = Number(s.gid);
    ch.mtime = new Date(Number(s.mtimeMs)).toISOString();
    if (s.isFile()) ch.sha256 = `sha256:${createHash('sha256').update(readFileSync(n.abs)).digest('hex')}`;
  }
  return changes;
}

export const CHANGE_LETTER: Record<0 | 1 | 2, ChangeKind> = { 0: 'C', 1: 'A', 2: 'D' };

import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { kindOfStats, type Confined } from '../io/confined.js';
import { goEndpointSettings, goSummaryEndpoint, humanDuration } from '../formats/docker/apitypes.js';
import { GO_ZERO_TIME, goRFC3339Nano, isGoZeroTime, parseGoTime } from '../formats/docker/gotime.js';
import { stateString, type ContainerRecord, type StoredContainer, type StoredMountPoint, type StoredState } from '../store/containers.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';
import { buildView, type FsNode } from '../store/rootfs.js';
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
    const mp: MountPointApi = {
      Type: m.Type ?? '',
      Source: m.Source ?? '',
      Destination: m.Destination ?? '',
      Mode: m.Relabel ?? '',
      RW: m.RW === true,
      Propagation: m.Propagation ?? '',
    };
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
function statusString(s: StoredState | undefined, now: number): string {
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
export function runningNote(c: ContainerRecord): string | undefined {
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

/**
 * A container as `docker ps -a` shows it, without the Dataroot section (the caller's): `image` is
 * the IMAGE column; `manifest` is the ImageManifestDescriptor a containerd-store root records.
 */
export function containerSummary(c: ContainerRecord, cfg: StoredContainer, image: string, now: number, manifest?: Obj | null): ContainerSummary {
  const networks: Obj = {};
  for (const [name, ep] of Object.entries(cfg.NetworkSettings?.Networks ?? {})) if (ep !== null) networks[name] = goSummaryEndpoint(ep);
  return {
    Id: c.id,
    Names: [cfg.Name ?? ''],
    Image: image,
    ImageID: cfg.Image ?? '',
    ...(manifest !== undefined && manifest !== null ? { ImageManifestDescriptor: manifest } : {}),
    Command: commandOf(c),
    Created: createdUnix(cfg.Created),
    Ports: portsOf(cfg.NetworkSettings?.Ports),
    Labels: cfg.Config?.Labels ?? null,
    State: stateString(cfg.State),
    Status: statusString(cfg.State, now),
    HostConfig: { NetworkMode: (c.hostConfig?.['NetworkMode'] as string | undefined) ?? '' },
    NetworkSettings: { Networks: networks },
    Mounts: mountPoints(cfg.MountPoints),
  };
}

/** `docker ps -a` over the stored containers, newest first. */
export function listContainers(store: Store, now = Date.now()): ContainerListResult {
  const problems: Problem[] = [];
  const containers: ContainerSummary[] = [];
  for (const c of store.containers) {
    for (const p of c.problems) problems.push({ ...p, message: `container ${c.id}: ${p.message}` });
    const cfg = c.config;
    if (cfg === undefined) continue;
    // dockerd loads only the containers of its own driver ("" was aufs, the first default).
    const driver = typeof cfg.Driver === 'string' ? cfg.Driver : '';
    if (driver !== store.driver && !(driver === '' && store.driver === 'aufs')) {
      problems.push({
        code: 'CONTAINER_OTHER_DRIVER',
        message: `container ${c.id} (${cfg.Name ?? ''}) was made on the ${driver === '' ? 'aufs' : driver} driver: dockerd on ${store.driver} skips it (--driver ${driver === '' ? 'aufs' : driver} lists it)`,
        path: `${c.dir}/config.v2.json`,
      });
      continue;
    }
    const imageId = cfg.Image ?? '';
    let image = cfg.Config?.Image ?? '';
    if (image !== imageId) {
      const r = store.lookupImage(image);
      if (r.image === undefined || r.image.id !== imageId) image = imageId;
    }
    const note = runningNote(c);
    containers.push({
      ...containerSummary(c, cfg, image, now),
      ...(note !== undefined || c.problems.length > 0 ? { Dataroot: { ...(note !== undefined ? { note } : {}), problems: c.problems } } : {}),
    });
  }
  containers.sort((a, b) => b.Created - a.Created || (a.Id < b.Id ? -1 : 1));
  return { containers, problems };
}

/** The State of `docker container inspect`, from config.v2.json's State. */
function inspectState(cfg: StoredContainer): Obj {
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
  return state;
}

/** The fields `docker container inspect` begins with (Id … Driver), the same on every store. */
export function inspectHead(id: string, cfg: StoredContainer): Obj {
  return {
    Id: id,
    Created: cfg.Created === undefined ? GO_ZERO_TIME : goRFC3339Nano(cfg.Created),
    Path: cfg.Path ?? '',
    Args: cfg.Args ?? null,
    State: inspectState(cfg),
    Image: cfg.Image ?? '',
    ResolvConfPath: cfg.ResolvConfPath ?? '',
    HostnamePath: cfg.HostnamePath ?? '',
    HostsPath: cfg.HostsPath ?? '',
    LogPath: cfg.LogPath ?? '',
    Name: cfg.Name ?? '',
    RestartCount: cfg.RestartCount ?? 0,
    Driver: cfg.Driver ?? '',
  };
}

/** The NetworkSettings of `docker container inspect`: every endpoint, and the bridge's at the top level as the API keeps it. */
export function inspectNetworkSettings(cfg: StoredContainer): Obj {
  const ns = cfg.NetworkSettings ?? {};
  const networks: Obj = {};
  for (const [name, ep] of Object.entries(ns.Networks ?? {})) if (ep !== null) networks[name] = goEndpointSettings(ep);
  const def = goEndpointSettings((ns.Networks ?? {})['bridge'] ?? {});
  const ports: Obj = {};
  if (ns.Ports !== null && typeof ns.Ports === 'object') Object.assign(ports, ns.Ports);
  return {
    Bridge: ns['Bridge'] ?? '',
    SandboxID: ns['SandboxID'] ?? '',
    HairpinMode: ns['HairpinMode'] === true,
    LinkLocalIPv6Address: ns['LinkLocalIPv6Address'] ?? '',
    LinkLocalIPv6PrefixLen: ns['LinkLocalIPv6PrefixLen'] ?? 0,
    Ports: ports,
    SandboxKey: ns['SandboxKey'] ?? '',
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
  };
}

/** `docker container inspect`, from config.v2.json and hostconfig.json, plus a `Dataroot` section. */
export function inspectContainer(store: Store, c: ContainerRecord): Obj {
  const cfg = c.config;
  if (cfg === undefined) {
    throw new DatarootError(
      c.problems[0]?.code ?? 'CONTAINER_CONFIG_INVALID',
      `container ${c.id}: ${c.problems[0]?.message ?? 'config.v2.json cannot be read'}`,
      { file: `${c.dir}/config.v2.json` },
    );
  }
  const mount = store.mountOf(c.id);
  const problems: Problem[] = [...c.problems, ...(mount?.problems ?? [])];
  if (mount === undefined) problems.push(problem('CONTAINER_LAYER_MISSING', `layerdb/mounts/${c.id} does not exist: dockerd cannot mount this container`));
  else if (mount.mountId !== undefined && !store.fs.isDir(store.adapter.layerDir(mount.mountId))) {
    problems.push(problem('CONTAINER_LAYER_MISSING', `the driver directory of the container's layer (${mount.mountId}) does not exist`));
  }
  const imageId = cfg.Image ?? '';
  if (imageId !== '' && !store.images.has(imageId)) problems.push(problem('CONTAINER_IMAGE_MISSING', `image ${imageId} is not in the image store`));
  const note = runningNote(c);
  return {
    ...inspectHead(c.id, cfg),
    // container.FromDisk: an empty OS is the host's (linux).
    Platform: typeof cfg.OS === 'string' && cfg.OS !== '' ? cfg.OS : 'linux',
    MountLabel: cfg.MountLabel ?? '',
    ProcessLabel: cfg.ProcessLabel ?? '',
    AppArmorProfile: cfg.AppArmorProfile ?? '',
    ExecIDs: null,
    HostConfig: c.hostConfig ?? null,
    GraphDriver: {
      Data: mount?.mountId === undefined ? null : store.adapter.graphDriverData(store.fs, mount.mountId, (r) => store.shown(r)),
      Name: cfg.Driver ?? '',
    },
    Mounts: mountPoints(cfg.MountPoints),
    Config: cfg.Config ?? null,
    NetworkSettings: inspectNetworkSettings(cfg),
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

export function requireContainer(store: Pick<Store, 'lookupContainer'>, q: string): ContainerRecord {
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
    const sameTime =
      o.mtimeMs / 1000n === n.mtimeMs / 1000n && (o.mtimeNs === n.mtimeNs || o.mtimeNs % 1_000_000_000n === 0n || n.mtimeNs % 1_000_000_000n === 0n);
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
 * Iterative (a deep tree costs memory, not stack); the result is sorted by path.
 */
export function changesBetween(newRoot: FsNode, oldRoot: FsNode | undefined): Change[] {
  const changes: Change[] = [];
  /** Paths already reported as added or changed (their parents need no C of their own for them). */
  const marked = new Set<string>(['/']);
  const join = (path: string, name: string): string => (path === '/' ? `/${name}` : `${path}/${name}`);
  const stack: { info: FsNode; old: FsNode | undefined; path: string }[] = [{ info: newRoot, old: oldRoot, path: '/' }];
  while (stack.length > 0) {
    const { info, old, path } = stack.pop()!;
    if (old === undefined && path !== '/') {
      changes.push({ Path: path, Kind: 1 });
      marked.add(path);
    }
    const oldChildren = new Map<string, FsNode>(old !== undefined && info.stat.isDirectory() ? (old.children ?? []) : []);
    for (const [name, child] of info.children ?? []) {
      const oc = oldChildren.get(name);
      const childPath = join(path, name);
      if (oc !== undefined) {
        if (statDifferent(oc, child) || !capEqual(oc.capability, child.capability)) {
          changes.push({ Path: childPath, Kind: 0 });
          marked.add(childPath);
        }
        oldChildren.delete(name);
      }
      stack.push({ info: child, old: oc, path: childPath });
    }
    for (const name of oldChildren.keys()) changes.push({ Path: join(path, name), Kind: 2 });
  }
  if (oldRoot === undefined) changes.push({ Path: '/', Kind: 1 });
  // A directory with a change inside is changed itself, unless it was reported already.
  for (const ch of [...changes]) {
    for (let p = ch.Path.slice(0, ch.Path.lastIndexOf('/')); p !== ''; p = p.slice(0, p.lastIndexOf('/'))) {
      if (marked.has(p)) break;
      marked.add(p);
      changes.push({ Path: p, Kind: 0 });
    }
  }
  return changes.sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
}

/** The type word of a node (kindOfStats; a stat of no known type counts as a file). */
function typeOf(n: FsNode): string {
  const k = kindOfStats(n.stat);
  return k === 'unknown' ? 'file' : k;
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
  if (mount?.mountId === undefined) {
    const why = mount?.problems.find((p) => p.code === 'ID_INVALID');
    if (why !== undefined) throw new DatarootError('ID_INVALID', `container ${c.id}: ${why.message}`, { file: store.shown(why.path ?? '') });
    throw new DatarootError('CONTAINER_LAYER_MISSING', `container ${c.id} has no read-write layer (layerdb/mounts/${c.id}/mount-id)`);
  }
  const a = store.adapter;
  if (a.content === 'none' || a.contentDir(store.fs, mount.mountId) === undefined) {
    throw new DatarootError(
      'STORE_DRIVER_CONTENT_UNSUPPORTED',
      `the ${store.driver} driver keeps the container's files where they cannot be read offline (${store.driver === 'zfs' ? 'its datasets are mounted only while dockerd runs' : store.driver === 'devicemapper' ? 'thin devices of a device-mapper pool' : 'not as plain directories'})`,
      { driver: store.driver },
    );
  }
  const { dirs, whiteouts, problems } = a.viewDirs(store.fs, mount.mountId);
  const bad = problems[0];
  if (bad !== undefined) throw new DatarootError(bad.code, bad.message, { file: store.shown(bad.path ?? '') });
  const top = dirs[0]!;
  for (const d of dirs) {
    const dk = store.fs.kind(d);
    if (dk === 'symlink') throw store.fs.symlinkError(d);
    if (dk !== 'dir')
      throw new DatarootError(
        dk === 'missing' ? (d === top ? 'CONTAINER_LAYER_MISSING' : 'LAYER_DIR_MISSING') : 'PATH_NOT_A_DIRECTORY',
        `${d === top ? 'the container layer' : 'lower layer'} ${store.shown(d)} is ${dk === 'missing' ? 'missing' : `a ${dk}`}`,
        { file: store.shown(d) },
      );
  }
  const newView = buildView(store.fs, dirs, whiteouts);
  let oldView: FsNode | undefined;
  if (a.content === 'full') {
    // A full tree per layer: the container's against its init layer's (dockerd's naive differ).
    const init = mount.initId ?? `${mount.mountId}-init`;
    const initDirs = a.viewDirs(store.fs, init);
    oldView = initDirs.problems.length === 0 && store.fs.isDir(initDirs.dirs[0]!) ? buildView(store.fs, initDirs.dirs, initDirs.whiteouts) : undefined;
  } else {
    oldView = dirs.length > 1 ? buildView(store.fs, dirs.slice(1), whiteouts) : undefined;
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
    const sha = s.isFile() ? sha256Of(store.fs, n.rel) : undefined;
    if (sha !== undefined) ch.sha256 = sha;
  }
  return changes;
}

/** sha256 of a regular file of the root, streamed (no whole-file read). */
export function sha256Of(fs: Confined, rel: string): string | undefined {
  const f = fs.openFile(rel);
  if (f === undefined) return undefined;
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (let pos = 0; ;) {
      const n = readSync(f.fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      pos += n;
    }
  } finally {
    f.close();
  }
  return `sha256:${h.digest('hex')}`;
}

export const CHANGE_LETTER: Record<0 | 1 | 2, ChangeKind> = { 0: 'C', 1: 'A', 2: 'D' };

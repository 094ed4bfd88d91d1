import { DatarootError } from '../formats/errors.js';
import type { ErrorCode } from '../formats/errorcodes.js';
import { goField, isObj } from '../formats/docker/godecode.js';
import { goMap, imageReference19, isDigestRef19, humanDuration19, v19Config, v19EndpointSettings, v19HostConfig } from '../formats/docker/legacyapi.js';
import { GO_ZERO_TIME, goRFC3339Nano, isGoZeroTime, parseGoTime } from '../formats/docker/gotime.js';
import { LIMITS } from '../io/confined.js';
import { readJson, readText } from '../store/fsread.js';
import { HEX64 } from '../store/layout.js';
import { GRAPH_DIR, type LegacyContainer, type LegacyImage, type LegacyStore } from '../store/legacy.js';
import { problem, type Problem } from '../store/problems.js';
import type { Finding, VerifyResult } from './verify.js';
import { matchLabels } from './images.js';

/**
 * The commands of a pre-1.10 root, as Docker 1.9 (API 1.21) answered them: `docker images`,
 * `inspect`, `history`, `ps -a`, `info` and a `verify` of what can be checked in a store whose
 * IDs are not content-addressed. Each function names the moby v1.9.1 source it follows.
 */

type Obj = Record<string, unknown>;

const ZERO_UNIX = -62135596800;

function unixOf(s: unknown): number {
  const t = typeof s === 'string' ? parseGoTime(s) : undefined;
  return t === undefined ? ZERO_UNIX : t.unix;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

// ---------------------------------------------------------------------------------------------
// Images

/** types.Image of API 1.21 (v1.9.1 api/types/types.go): Size is the layer's own, VirtualSize the chain's. */
export interface V19Image {
  Id: string;
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  Created: number;
  Size: number;
  VirtualSize: number;
  Labels: Record<string, unknown> | null;
}

export interface LegacyImageList {
  images: V19Image[];
  skipped: { id: string; reason: string; problems: Problem[] }[];
  problems: Problem[];
}

export interface LegacyImageFilters {
  dangling?: boolean;
  label: string[];
}

function labelsOf(img: LegacyImage): Record<string, unknown> | null | undefined {
  const c = img.json === undefined ? undefined : goField(img.json, 'config');
  if (!isObj(c)) return undefined; // image.Config == nil
  return goMap(goField(c, 'Labels'));
}

function newImage(ls: LegacyStore, img: LegacyImage): V19Image {
  return {
    Id: img.id,
    ParentId: img.parent,
    RepoTags: [],
    RepoDigests: [],
    Created: unixOf(img.created),
    Size: img.size,
    VirtualSize: ls.parentsSize(img) + img.size,
    Labels: labelsOf(img) ?? null,
  };
}

/** The reasons an image on disk is not listed. */
function skipReason(img: LegacyImage): string {
  if (!img.driverExists) return 'dockerd 1.9 does not restore it: the graphdriver has no layer of that ID';
  if (!img.restored) return 'dockerd 1.9 does not restore it: graph/<id>/json or layersize does not load';
  return `dockerd 1.9 cannot get it: its json names another id (${img.jsonId.slice(0, 80)})`;
}

/**
 * `docker images [-a]` of 1.9: TagStore.Images (v1.9.1 graph/list.go). Every repository/ref pair of
 * repositories-<driver> whose image graph.Get loads becomes a row (a ref holding `:` is a digest);
 * untagged images follow: the heads (images no restored image names as parent), or every image with
 * `-a`. Newest first.
 */
export function listLegacyImages(ls: LegacyStore, o: { all: boolean; filters: LegacyImageFilters }): LegacyImageList {
  const f = o.filters;
  const filtTagged = f.dangling !== true;
  const problems: Problem[] = [...ls.repositories.problems];
  const skipped: LegacyImageList['skipped'] = [];
  for (const img of ls.images.values()) if (!img.gettable) skipped.push({ id: img.id, reason: skipReason(img), problems: img.problems });
  const all = new Map<string, LegacyImage>();
  for (const img of ls.gettable) if ((o.all && filtTagged) || !ls.hasChildren(img.id)) all.set(img.id, img);
  const lookup = new Map<string, V19Image>();
  for (const r of ls.repositories.refs) {
    const imgRef = imageReference19(r.repo, r.ref);
    const g = ls.get(r.id);
    if (g.image === undefined) {
      problems.push(problem('REFERENCE_DANGLING', `couldn't load ${r.id} from ${imgRef}: ${g.error?.message ?? 'not found'}`, ls.repositoriesFile));
      continue;
    }
    const image = g.image;
    const seen = lookup.get(image.id);
    if (seen !== undefined) {
      if (filtTagged) (isDigestRef19(r.ref) ? seen.RepoDigests : seen.RepoTags).push(imgRef);
      continue;
    }
    all.delete(image.id);
    if (f.label.length > 0 && !matchLabels(f.label, labelsOf(image))) continue;
    if (filtTagged) {
      const n = newImage(ls, image);
      if (isDigestRef19(r.ref)) n.RepoDigests = [imgRef];
      else n.RepoTags = [imgRef];
      lookup.set(image.id, n);
    }
  }
  const images = [...lookup.values()];
  for (const image of all.values()) {
    if (f.label.length > 0 && !matchLabels(f.label, labelsOf(image))) continue;
    const n = newImage(ls, image);
    n.RepoTags = ['<none>:<none>'];
    n.RepoDigests = ['<none>@<none>'];
    images.push(n);
  }
  images.sort((a, b) => b.Created - a.Created || (a.Id < b.Id ? -1 : a.Id > b.Id ? 1 : 0));
  return { images, skipped, problems };
}

/** GraphDriver.Data of 1.9's GetMetadata(id) for the root's driver (keys sorted, as Go encodes a map). */
function graphDriverData(ls: LegacyStore, id: string, problems: Problem[]): Record<string, string> | null {
  switch (ls.driver) {
    case 'overlay': {
      // v1.9.1 daemon/graphdriver/overlay/overlay.go GetMetadata.
      const dir = `overlay/${id}`;
      if (ls.fs.kind(dir) !== 'dir') {
        problems.push(problem('LEGACY_LAYER_MISSING', `${dir} does not exist: dockerd 1.9 fails this inspect`, dir));
        return null;
      }
      if (ls.fs.exists(`${dir}/root`)) return { RootDir: ls.shown(`${dir}/root`) };
      const lower = readText(ls.fs, `${dir}/lower-id`, { max: LIMITS.meta });
      if (lower.value === undefined || !HEX64.test(lower.value)) {
        problems.push(
          lower.problem ??
            problem(
              'LEGACY_LAYER_MISSING',
              `${dir}/lower-id is ${lower.value === undefined ? 'missing' : 'not an image ID'}: dockerd 1.9 fails this inspect`,
              `${dir}/lower-id`,
            ),
        );
        return null;
      }
      return {
        LowerDir: ls.shown(`overlay/${lower.value}/root`),
        MergedDir: ls.shown(`${dir}/merged`),
        UpperDir: ls.shown(`${dir}/upper`),
        WorkDir: ls.shown(`${dir}/work`),
      };
    }
    case 'devicemapper': {
      // v1.9.1 daemon/graphdriver/devmapper/driver.go GetMetadata: DeviceId, DeviceSize, DeviceName.
      const rel = `devicemapper/metadata/${id}`;
      const r = readJson(ls.fs, rel, { max: LIMITS.meta });
      if (r === undefined || !r.ok || !isObj(r.value)) {
        problems.push(
          problem(
            'LEGACY_LAYER_MISSING',
            `${rel} ${r === undefined ? 'does not exist' : 'does not decode'}: dockerd 1.9 fails this inspect ("Unknown device")`,
            rel,
          ),
        );
        return null;
      }
      const deviceId = goField(r.value, 'device_id');
      const out: Record<string, string> = { DeviceId: typeof deviceId === 'number' || typeof deviceId === 'string' ? String(deviceId) : '0' };
      // Name() is "docker-<major>:<minor>-<inode of the devicemapper directory>-<id>": known only on
      // the file system the root was written on, so only for a directory root read in place.
      if (!ls.root.fromArchive) {
        const st = ls.fs.lstatBig('devicemapper');
        if (st?.isDirectory() === true) {
          const major = (st.dev >> 8n) & 0xfffn;
          const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & 0xfff00n);
          out['DeviceName'] = `docker-${major}:${minor}-${st.ino}-${id}`;
        }
      }
      const size = goField(r.value, 'size');
      out['DeviceSize'] = typeof size === 'number' || typeof size === 'string' ? String(size) : '0';
      return out;
    }
    default:
      // aufs, btrfs, vfs and zfs return nil metadata in 1.9.
      return null;
  }
}

/** types.ImageInspect of API 1.21 (v1.9.1 graph/service.go Lookup), plus a Dataroot section. */
export function inspectLegacyImage(ls: LegacyStore, img: LegacyImage): Obj {
  const j = img.json ?? {};
  const problems: Problem[] = [...img.problems];
  const repoTags: string[] = [];
  const repoDigests: string[] = [];
  for (const r of ls.repositories.refs) if (r.id === img.id) (isDigestRef19(r.ref) ? repoDigests : repoTags).push(imageReference19(r.repo, r.ref));
  const chain: string[] = [];
  let cur: LegacyImage | null = img;
  for (let i = 0; cur !== null && i < 1000; i++) {
    chain.push(cur.id);
    const p = ls.parentOf(cur);
    if (p.error !== undefined) problems.push(p.error);
    cur = p.image;
    if (cur !== null && chain.includes(cur.id)) {
      problems.push(problem('LEGACY_PARENT_CYCLE', `the parent chain of ${img.id} loops at ${cur.id}`));
      break;
    }
  }
  const cfg = goField(j, 'config');
  const created = str(goField(j, 'created'));
  const data = graphDriverData(ls, img.id, problems);
  return {
    Id: img.id,
    RepoTags: repoTags,
    RepoDigests: repoDigests,
    Parent: img.parent,
    Comment: str(goField(j, 'comment')),
    Created: created === '' ? GO_ZERO_TIME : goRFC3339Nano(created),
    Container: str(goField(j, 'container')),
    ContainerConfig: v19Config(goField(j, 'container_config')),
    DockerVersion: str(goField(j, 'docker_version')),
    Author: str(goField(j, 'author')),
    Config: isObj(cfg) ? v19Config(cfg) : null,
    Architecture: str(goField(j, 'architecture')),
    Os: str(goField(j, 'os')),
    Size: img.size,
    VirtualSize: ls.parentsSize(img) + img.size,
    GraphDriver: { Name: ls.driver, Data: data },
    Dataroot: {
      legacy: true,
      dir: ls.shown(img.dir),
      parentChain: chain,
      layersize: img.size,
      checksum: img.files.checksum ?? null,
      tarData: img.files.tarData,
      v1Compatibility: img.files.v1Compatibility,
      migration: img.files.migration,
      problems,
    },
  };
}

/** types.ImageHistory of API 1.21 (v1.9.1 graph/history.go). */
export interface V19History {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
}

/**
 * `docker history` of 1.9 (TagStore.History): the image, then each parent through graph.Get of its
 * `parent`, newest first. CreatedBy is container_config.Cmd joined by spaces; Tags are every
 * `repo:tag` and `repo@digest` of the image. A parent that does not load ends the walk (1.9 fails
 * the whole command: "Error while getting parent image"); the rows so far are shown with a problem.
 */
export function legacyHistory(ls: LegacyStore, img: LegacyImage): { history: V19History[]; problems: Problem[] } {
  const tags = new Map<string, string[]>();
  for (const r of ls.repositories.refs) {
    const l = tags.get(r.id) ?? [];
    l.push(imageReference19(r.repo, r.ref));
    tags.set(r.id, l);
  }
  const problems: Problem[] = [];
  const history: V19History[] = [];
  const seen = new Set<string>();
  let cur: LegacyImage | null = img;
  while (cur !== null) {
    if (seen.has(cur.id) || history.length >= 1000) {
      problems.push(problem('LEGACY_PARENT_CYCLE', `the parent chain of ${img.id} loops at ${cur.id}`));
      break;
    }
    seen.add(cur.id);
    const j = cur.json ?? {};
    const cc = goField(j, 'container_config');
    const cmd = isObj(cc) ? v19Config(cc)['Cmd'] : null;
    history.push({
      Id: cur.id,
      Created: unixOf(cur.created),
      CreatedBy: Array.isArray(cmd) ? cmd.join(' ') : '',
      Tags: tags.get(cur.id) ?? null,
      Size: cur.size,
      Comment: str(goField(j, 'comment')),
    });
    const p = ls.parentOf(cur);
    if (p.error !== undefined) {
      problems.push({ ...p.error, message: `Error while getting parent image: ${p.error.message}` });
      break;
    }
    cur = p.image;
  }
  return { history, problems };
}

export function requireLegacyImage(ls: LegacyStore, q: string): LegacyImage {
  const r = ls.lookupImage(q);
  if (r.image === undefined)
    throw new DatarootError(
      r.error?.code ?? 'IMAGE_NOT_FOUND',
      r.error?.code === 'IMAGE_NOT_FOUND' ? `No such image: ${q}` : (r.error?.message ?? `No such image: ${q}`),
    );
  return r.image;
}

// ---------------------------------------------------------------------------------------------
// Containers

interface State19 {
  Running?: unknown;
  Paused?: unknown;
  Restarting?: unknown;
  OOMKilled?: unknown;
  Dead?: unknown;
  Pid?: unknown;
  ExitCode?: unknown;
  Error?: unknown;
  StartedAt?: unknown;
  FinishedAt?: unknown;
}

function stateOf(c: LegacyContainer): State19 {
  const s = c.config === undefined ? undefined : goField(c.config, 'State');
  if (!isObj(s)) return {};
  const o: State19 = {};
  for (const k of ['Running', 'Paused', 'Restarting', 'OOMKilled', 'Dead', 'Pid', 'ExitCode', 'Error', 'StartedAt', 'FinishedAt'] as const)
    o[k] = goField(s, k);
  return o;
}

/** State.StateString of v1.9.1 daemon/state.go. */
export function stateString19(s: State19): string {
  if (s.Running === true) {
    if (s.Paused === true) return 'paused';
    if (s.Restarting === true) return 'restarting';
    return 'running';
  }
  if (s.Dead === true) return 'dead';
  if (isGoZeroTime(typeof s.StartedAt === 'string' ? s.StartedAt : undefined)) return 'created';
  return 'exited';
}

/** State.String of v1.9.1 daemon/state.go: the STATUS column, relative to `now` (ms). */
export function status19(s: State19, now: number): string {
  const since = (t: unknown): string => {
    const p = typeof t === 'string' ? parseGoTime(t) : undefined;
    return humanDuration19(p === undefined ? now / 1000 - ZERO_UNIX : now / 1000 - (p.unix + p.nanos / 1e9));
  };
  const code = typeof s.ExitCode === 'number' ? s.ExitCode : 0;
  if (s.Running === true) {
    if (s.Paused === true) return `Up ${since(s.StartedAt)} (Paused)`;
    if (s.Restarting === true) return `Restarting (${code}) ${since(s.FinishedAt)} ago`;
    return `Up ${since(s.StartedAt)}`;
  }
  if (s.Dead === true) return 'Dead';
  if (isGoZeroTime(typeof s.StartedAt === 'string' ? s.StartedAt : undefined)) return 'Created';
  if (isGoZeroTime(typeof s.FinishedAt === 'string' ? s.FinishedAt : undefined)) return '';
  return `Exited (${code}) ${since(s.FinishedAt)} ago`;
}

/** types.Container of API 1.21 (v1.9.1 api/types/types.go), plus dataroot's notes. */
export interface V19Container extends Obj {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  Ports: Obj[];
  Labels: Obj | null;
  Status: string;
  HostConfig: { NetworkMode?: string };
}

function runningNote(s: State19): string | undefined {
  if (s.Running !== true) return undefined;
  return 'recorded as running: the daemon did not stop it (killed daemon or live copy); dockerd 1.9 marks it exited (137) at its next start';
}

/** Ports of transformContainer (v1.9.1 daemon/list.go): one per private port, or per host binding. */
function ports19(raw: unknown): Obj[] {
  const out: Obj[] = [];
  if (!isObj(raw)) return out;
  for (const key of Object.keys(raw).sort()) {
    const [p, proto] = key.split('/');
    const priv = Number(p);
    const bindings = raw[key];
    if (!Array.isArray(bindings) || bindings.length === 0) {
      out.push({ PrivatePort: priv, Type: proto ?? 'tcp' });
      continue;
    }
    for (const b of bindings) {
      const o = isObj(b) ? b : {};
      const e: Obj = {};
      const ip = str(goField(o, 'HostIp'));
      if (ip !== '') e['IP'] = ip;
      e['PrivatePort'] = priv;
      const hp = Number(str(goField(o, 'HostPort')));
      if (hp !== 0 && Number.isFinite(hp)) e['PublicPort'] = hp;
      e['Type'] = proto ?? 'tcp';
      out.push(e);
    }
  }
  return out;
}

function commandOf(cfg: Obj): string {
  const path = str(goField(cfg, 'Path'));
  const args = goField(cfg, 'Args');
  if (!Array.isArray(args) || args.length === 0) return path;
  return `${path} ${args.map((a) => (typeof a === 'string' && a.includes(' ') ? `'${a}'` : String(a))).join(' ')}`;
}

export interface LegacyContainerList {
  containers: V19Container[];
  /** Containers on disk dockerd 1.9 does not load, and why. */
  skipped: { id: string; reason: string }[];
  problems: Problem[];
}

function otherDriver(ls: LegacyStore, c: LegacyContainer): string {
  return `its Driver is ${JSON.stringify(str(goField(c.config!, 'Driver')))}: dockerd 1.9 loads only the containers of the driver it runs (${ls.driver}; "" counts as aufs)`;
}

/**
 * `docker ps -a` of 1.9 (daemon/list.go transformContainer): the containers daemon.restore
 * registers (config.json loads, Driver is the root's), newest first; Names are every path of
 * linkgraph.db that reaches the container at depth 1 or 2 (`/db`, `/web/alias`).
 */
export function listLegacyContainers(ls: LegacyStore, now = Date.now()): LegacyContainerList {
  const problems: Problem[] = [...ls.links.problems];
  for (const c of ls.containers) for (const p of c.problems) problems.push({ ...p, message: `container ${c.id}: ${p.message}` });
  const containers: V19Container[] = [];
  const skipped = ls.containers.filter((c) => c.loaded && !c.driverMatch).map((c) => ({ id: c.id, reason: otherDriver(ls, c) }));
  for (const c of ls.registered) {
    const cfg = c.config!;
    const imageId = str(goField(cfg, 'Image'));
    const ccfg = goField(cfg, 'Config');
    const configImage = isObj(ccfg) ? str(goField(ccfg, 'Image')) : '';
    // getImage of v1.9.1 daemon/list.go.
    let image = configImage;
    if (!imageId.startsWith(configImage)) {
      const id = ls.tagId(configImage);
      if (id === undefined || id !== imageId) image = imageId;
    }
    const s = stateOf(c);
    const names = ls.links.names.get(c.id) ?? [];
    const note = runningNote(s);
    const notes: string[] = [];
    if (note !== undefined) notes.push(note);
    if (names.length === 0) notes.push('no name in linkgraph.db: dockerd 1.9 gives it a new random name at its next start');
    const ns = goField(cfg, 'NetworkSettings');
    const labels = isObj(ccfg) ? goMap(goField(ccfg, 'Labels')) : null;
    const mode = c.hostConfig === undefined ? '' : str(goField(c.hostConfig, 'NetworkMode'));
    containers.push({
      Id: c.id,
      Names: names,
      Image: image,
      ImageID: imageId,
      Command: commandOf(cfg),
      Created: unixOf(goField(cfg, 'Created')),
      Ports: ports19(isObj(ns) ? goField(ns, 'Ports') : undefined),
      Labels: labels,
      Status: status19(s, now),
      HostConfig: mode === '' ? {} : { NetworkMode: mode },
      ...(notes.length > 0 ? { Dataroot: { notes } } : {}),
    });
  }
  return { containers, skipped, problems };
}

/** The read-write layer directory of a container for the root's driver (the container ID in 1.9). */
export function containerLayerDir(ls: LegacyStore, id: string): string | undefined {
  switch (ls.driver) {
    case 'aufs':
      return `aufs/diff/${id}`;
    case 'overlay':
      return `overlay/${id}`;
    case 'vfs':
      return `vfs/dir/${id}`;
    case 'btrfs':
      return `btrfs/subvolumes/${id}`;
    case 'devicemapper':
      return `devicemapper/metadata/${id}`;
    default:
      return undefined;
  }
}

/**
 * `docker inspect` of a container in 1.9 (daemon/inspect.go ContainerInspect, API 1.21):
 * config.json and hostconfig.json decoded as 1.9's structs; HostConfig.Links are the links of
 * linkgraph.db (`/db:/web/alias`); LogConfig gets the daemon's defaults (json-file, no options).
 */
export function inspectLegacyContainer(ls: LegacyStore, c: LegacyContainer): Obj {
  const cfg = c.config;
  if (cfg === undefined)
    throw new DatarootError(c.problems[0]?.code ?? 'CONTAINER_CONFIG_INVALID', `container ${c.id}: ${c.problems[0]?.message ?? 'config.json cannot be read'}`);
  const problems: Problem[] = [...c.problems];
  const s = stateOf(c);
  const time = (v: unknown): string => (typeof v === 'string' && v !== '' ? goRFC3339Nano(v) : GO_ZERO_TIME);
  const hc = v19HostConfig(c.hostConfig ?? {});
  if (c.hostConfigFile) for (const k of ['Dns', 'DnsSearch', 'DnsOptions']) if (hc[k] === null) hc[k] = [];
  // daemon.children(Name): Walk(name, fn, 0); one child that is not a registered container fails it all.
  const name = str(goField(cfg, 'Name'));
  const kids = ls.links.children(name.startsWith('/') ? name : `/${name}`);
  const links: string[] = [];
  let linksOk = true;
  for (const k of kids) {
    const child = ls.registered.find((x) => x.id === k.id);
    if (child === undefined) {
      linksOk = false;
      problems.push(
        problem(
          'LINKGRAPH_DANGLING',
          `link ${k.path} points to ${k.id}, which is not a loaded container: dockerd 1.9 shows no links for ${name}`,
          'linkgraph.db',
        ),
      );
      break;
    }
    links.push(`${str(goField(child.config!, 'Name'))}:${k.path}`);
  }
  if (linksOk && links.length > 0) hc['Links'] = [...((hc['Links'] as string[] | null) ?? []), ...links.sort()];
  const lc = hc['LogConfig'] as { Type: string; Config: Obj | null };
  if (lc.Type === '') lc.Type = 'json-file';
  if (lc.Config === null || Object.keys(lc.Config).length === 0) lc.Config = {};

  const imageId = str(goField(cfg, 'Image'));
  if (imageId !== '' && ls.get(imageId).image === undefined) problems.push(problem('CONTAINER_IMAGE_MISSING', `image ${imageId} does not load from graph/`));
  const layer = containerLayerDir(ls, c.id);
  if (layer !== undefined && !ls.fs.exists(layer)) problems.push(problem('CONTAINER_LAYER_MISSING', `the container's layer ${layer} does not exist`, layer));

  const mps = goField(cfg, 'MountPoints');
  const mounts: Obj[] = [];
  if (isObj(mps)) {
    for (const dest of Object.keys(mps).sort()) {
      const m = isObj(mps[dest]) ? mps[dest] : {};
      const mname = str(goField(m, 'Name'));
      const driver = str(goField(m, 'Driver'));
      let source = str(goField(m, 'Source'));
      // mountPoint.Path(): a volume's path when the volume is known (the local driver's _data).
      if (source === '' && mname !== '' && driver === 'local') source = ls.shown(`volumes/${mname}/_data`);
      const o: Obj = {};
      if (mname !== '') o['Name'] = mname;
      o['Source'] = source;
      o['Destination'] = str(goField(m, 'Destination'));
      if (driver !== '') o['Driver'] = driver;
      o['Mode'] = str(goField(m, 'Relabel'));
      o['RW'] = goField(m, 'RW') === true;
      mounts.push(o);
    }
  }
  const ns = isObj(goField(cfg, 'NetworkSettings')) ? (goField(cfg, 'NetworkSettings') as Obj) : {};
  const nets = goField(ns, 'Networks');
  const networks = isObj(nets)
    ? Object.fromEntries(
        Object.keys(nets)
          .sort()
          .map((k) => [k, v19EndpointSettings(nets[k])]),
      )
    : null;
  const bridge = v19EndpointSettings(isObj(nets) ? nets['bridge'] : {});
  const ccfg = goField(cfg, 'Config');
  const args = goField(cfg, 'Args');
  const note = runningNote(s);
  const names = ls.links.names.get(c.id) ?? [];
  const legacyKeys = Object.fromEntries(
    ['ExecDriver', 'Volumes', 'VolumesRW', 'MqueuePath', 'ShmPath'].filter((k) => goField(cfg, k) !== undefined).map((k) => [k, goField(cfg, k)]),
  );
  return {
    Id: c.id,
    Created: time(goField(cfg, 'Created')),
    Path: str(goField(cfg, 'Path')),
    Args: Array.isArray(args) ? args : null,
    State: {
      Status: stateString19(s),
      Running: s.Running === true,
      Paused: s.Paused === true,
      Restarting: s.Restarting === true,
      OOMKilled: s.OOMKilled === true,
      Dead: s.Dead === true,
      Pid: typeof s.Pid === 'number' ? s.Pid : 0,
      ExitCode: typeof s.ExitCode === 'number' ? s.ExitCode : 0,
      Error: str(s.Error),
      StartedAt: time(s.StartedAt),
      FinishedAt: time(s.FinishedAt),
    },
    Image: imageId,
    ResolvConfPath: str(goField(cfg, 'ResolvConfPath')),
    HostnamePath: str(goField(cfg, 'HostnamePath')),
    HostsPath: str(goField(cfg, 'HostsPath')),
    LogPath: str(goField(cfg, 'LogPath')),
    Name: name,
    RestartCount: typeof goField(cfg, 'RestartCount') === 'number' ? goField(cfg, 'RestartCount') : 0,
    Driver: str(goField(cfg, 'Driver')),
    ExecDriver: str(goField(cfg, 'ExecDriver')),
    MountLabel: str(goField(cfg, 'MountLabel')),
    ProcessLabel: str(goField(cfg, 'ProcessLabel')),
    AppArmorProfile: str(goField(cfg, 'AppArmorProfile')),
    ExecIDs: null,
    HostConfig: hc,
    GraphDriver: { Name: str(goField(cfg, 'Driver')), Data: graphDriverData(ls, c.id, problems) },
    Mounts: mounts,
    Config: isObj(ccfg) ? v19Config(ccfg) : null,
    NetworkSettings: {
      Bridge: str(goField(ns, 'Bridge')),
      SandboxID: str(goField(ns, 'SandboxID')),
      HairpinMode: goField(ns, 'HairpinMode') === true,
      LinkLocalIPv6Address: str(goField(ns, 'LinkLocalIPv6Address')),
      LinkLocalIPv6PrefixLen: typeof goField(ns, 'LinkLocalIPv6PrefixLen') === 'number' ? goField(ns, 'LinkLocalIPv6PrefixLen') : 0,
      Ports: goMap(goField(ns, 'Ports')),
      SandboxKey: str(goField(ns, 'SandboxKey')),
      SecondaryIPAddresses: Array.isArray(goField(ns, 'SecondaryIPAddresses')) ? goField(ns, 'SecondaryIPAddresses') : null,
      SecondaryIPv6Addresses: Array.isArray(goField(ns, 'SecondaryIPv6Addresses')) ? goField(ns, 'SecondaryIPv6Addresses') : null,
      EndpointID: bridge['EndpointID'],
      Gateway: bridge['Gateway'],
      GlobalIPv6Address: bridge['GlobalIPv6Address'],
      GlobalIPv6PrefixLen: bridge['GlobalIPv6PrefixLen'],
      IPAddress: bridge['IPAddress'],
      IPPrefixLen: bridge['IPPrefixLen'],
      IPv6Gateway: bridge['IPv6Gateway'],
      MacAddress: bridge['MacAddress'],
      Networks: networks,
    },
    Dataroot: {
      legacy: true,
      dir: ls.shown(c.dir),
      names,
      layerDir: layer === undefined ? null : ls.shown(layer),
      ...(Object.keys(legacyKeys).length > 0 ? { legacyKeys } : {}),
      ...(note !== undefined ? { note } : {}),
      problems,
    },
  };
}

export function requireLegacyContainer(ls: LegacyStore, q: string): LegacyContainer {
  const r = ls.lookupContainer(q);
  if (r.container === undefined)
    throw new DatarootError(
      r.error?.code ?? 'CONTAINER_NOT_FOUND',
      r.error?.code === 'CONTAINER_NOT_FOUND' ? `No such container: ${q}` : (r.error?.message ?? `No such container: ${q}`),
    );
  return r.container;
}

// ---------------------------------------------------------------------------------------------
// Verify

/** The checks of `verify` that have nothing to check in a pre-1.10 root, and why. */
export const NOT_APPLICABLE = [
  'image IDs: a pre-1.10 image ID is random (stringid.GenerateRandomID), not the sha256 of its config, so no ID can be proven from content',
  'chain IDs and diffIDs: there is no layerdb; a layer is named by its image ID and carries no digest of its content',
  'layer content (--deep): graph/<id>/checksum, where present, is the digest of the compressed registry blob, which the root does not hold; nothing on disk names the digest of the uncompressed layer',
  'references as digests: repositories-<driver> maps tags and digests to bare v1 IDs; a digest key names the registry manifest, which the root does not hold',
] as const;

export interface LegacyVerifyResult extends VerifyResult {
  legacy: true;
  notApplicable: readonly string[];
}

/**
 * The severity of a finding in a pre-1.10 root: dockerd 1.9 fails on these (an image whose parent
 * is missing does not load there); everything else it meets it skips or repairs, so a warning. The
 * catalog's severities are those of a current root.
 */
const ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'LEGACY_IMAGE_JSON_INVALID',
  'LEGACY_IMAGE_JSON_MISSING',
  'LEGACY_JSON_TYPE',
  'LEGACY_IMAGE_ID_INVALID',
  'LEGACY_IMAGE_ID_MISMATCH',
  'LEGACY_LAYERSIZE_INVALID',
  'LEGACY_LAYER_MISSING',
  'LEGACY_PARENT_CYCLE',
  'IMAGE_PARENT_MISSING',
  'REFERENCE_DANGLING',
  'REPOSITORIES_INVALID',
  'CONTAINER_CONFIG_INVALID',
  'CONTAINER_CONFIG_MISSING',
  'CONTAINER_HOSTCONFIG_INVALID',
  'CONTAINER_ID_MISMATCH',
  'CONTAINER_IMAGE_MISSING',
  'CONTAINER_LAYER_MISSING',
  'SQLITE_CORRUPT',
  'SQLITE_TOO_MANY_ROWS',
  'LINKGRAPH_SCHEMA',
  'LINKGRAPH_ROW_INVALID',
  'SYMLINK_OUT_OF_ROOT',
  'SYMLINK_NOT_FOLLOWED',
  'FILE_NOT_REGULAR',
  'FILE_TOO_LARGE',
  'PATH_NOT_A_DIRECTORY',
  'JSON_TOO_DEEP',
]);

/**
 * What can be verified in a pre-1.10 root: every graph/<id>/json decodes as 1.9's image, every
 * layersize is present and an integer, every parent loads (no cycle), every tag and digest
 * reference resolves, every container's config loads and its image exists, the driver holds a
 * layer for every image and every container, and linkgraph.db reads. What cannot be checked is
 * listed in `notApplicable`, never as a finding.
 */
export function verifyLegacy(ls: LegacyStore, o: { images?: string[] } = {}): LegacyVerifyResult {
  const findings: Finding[] = [];
  const add = (p: Problem, subject: string, fix = ''): void => {
    findings.push({
      code: p.code,
      severity: ERROR_CODES.has(p.code) ? 'error' : 'warning',
      subject,
      message: p.message,
      paths: p.path !== undefined ? [ls.shown(p.path)] : [],
      fix,
    });
  };
  let images = [...ls.images.values()];
  if (o.images !== undefined) {
    const keep = new Set<string>();
    for (const q of o.images) {
      const img = requireLegacyImage(ls, q);
      for (let cur: LegacyImage | null = img; cur !== null && !keep.has(cur.id); cur = ls.parentOf(cur).image) keep.add(cur.id);
    }
    images = images.filter((i) => keep.has(i.id));
  }
  for (const img of images) {
    for (const p of img.problems) add(p, img.id);
    if (!img.gettable) continue;
    const p = ls.parentOf(img);
    if (p.error !== undefined)
      add({ ...p.error, path: img.dir }, img.id, 'the parent image is gone: history stops here and VIRTUAL SIZE leaves out the missing layers');
    const seen = new Set<string>([img.id]);
    for (let cur = p.image; cur !== null; cur = ls.parentOf(cur).image) {
      if (seen.has(cur.id) || seen.size > 1000) {
        add(problem('LEGACY_PARENT_CYCLE', `the parent chain loops at ${cur.id}`, img.dir), img.id);
        break;
      }
      seen.add(cur.id);
    }
  }
  if (o.images === undefined) {
    for (const n of ls.otherGraphEntries) {
      if (n === '_tmp') {
        if (ls.fs.names(`${GRAPH_DIR}/_tmp`).length > 0)
          add(problem('STAGING_LEFTOVER', 'graph/_tmp holds what an interrupted pull, build or delete of 1.9 left', `${GRAPH_DIR}/_tmp`), 'graph/_tmp');
      } else add(problem('LEGACY_GRAPH_ENTRY', `graph/${n} is not an image ID: dockerd 1.9 ignores it`, `${GRAPH_DIR}/${n}`), `graph/${n}`);
    }
    const repos = ls.repositories;
    if (repos.missing) add(problem('REPOSITORIES_MISSING', `${ls.repositoriesFile} is missing: no image has a tag`, ls.repositoriesFile), ls.repositoriesFile);
    for (const p of repos.problems) add(p, ls.repositoriesFile);
    for (const r of repos.refs) {
      const ref = imageReference19(r.repo, r.ref);
      if (isDigestRef19(r.ref) && !/^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/.test(r.ref)) {
        add(problem('REFERENCE_INVALID', `${ref}: the key holds ":" so 1.9 takes it as a digest, but it is not one`, ls.repositoriesFile), ref);
      }
      const g = ls.get(r.id);
      if (g.image === undefined)
        add(
          problem('REFERENCE_DANGLING', `${ref} points to ${r.id.slice(0, 80)}, which does not load: ${g.error?.message ?? ''}`, ls.repositoriesFile),
          ref,
          'remove the tag, or restore graph/<id> and its driver layer',
        );
    }
    for (const p of ls.links.problems) add(p, 'linkgraph.db');
    const loaded = new Set(ls.containers.filter((c) => c.loaded).map((c) => c.id));
    for (const c of ls.containers) {
      for (const p of c.problems) add(p, c.id);
      if (c.loaded && !c.driverMatch) add(problem('CONTAINER_OTHER_DRIVER', otherDriver(ls, c), `${c.dir}/config.json`), c.id);
      if (!c.loaded || !c.driverMatch) continue;
      const imageId = str(goField(c.config!, 'Image'));
      if (ls.get(imageId).image === undefined)
        add(problem('CONTAINER_IMAGE_MISSING', `its image ${imageId.slice(0, 80)} does not load from graph/`, `${c.dir}/config.json`), c.id);
      const layer = containerLayerDir(ls, c.id);
      if (layer !== undefined && !ls.fs.exists(layer)) add(problem('CONTAINER_LAYER_MISSING', `its ${ls.driver} layer ${layer} does not exist`, layer), c.id);
      if (ls.links.present && !ls.links.names.has(c.id) && ls.links.problems.length === 0) {
        add(
          problem('CONTAINER_NAME_MISSING', 'linkgraph.db has no name for it: dockerd 1.9 gives it a new random name at its next start', 'linkgraph.db'),
          c.id,
        );
      }
    }
    for (const n of ls.otherContainerEntries)
      add(
        problem('LEGACY_CONTAINER_ENTRY', `containers/${n} is not a container ID: dockerd 1.9 fails to load it and goes on`, `containers/${n}`),
        `containers/${n}`,
      );
    for (const e of ls.links.edges) {
      if (e.entityId === '0' || e.parentId === null) continue;
      if (!loaded.has(e.entityId))
        add(
          problem(
            'LINKGRAPH_DANGLING',
            `edge ${JSON.stringify(e.name)} names ${e.entityId.slice(0, 80)}, which is not a container of this root`,
            'linkgraph.db',
          ),
          'linkgraph.db',
        );
    }
    // Driver directories nothing names (an image of graph/ or a container, with its -init).
    const known = new Set<string>([...ls.images.keys(), ...ls.containers.map((c) => c.id), ...ls.containers.map((c) => `${c.id}-init`)]);
    const dir = { aufs: 'aufs/layers', overlay: 'overlay', vfs: 'vfs/dir', btrfs: 'btrfs/subvolumes', devicemapper: 'devicemapper/metadata' }[
      ls.driver as 'aufs'
    ];
    if (dir !== undefined) {
      for (const n of ls.fs.names(dir)) {
        if (known.has(n) || (ls.driver === 'devicemapper' && ['base', 'deviceset-metadata', 'transaction-metadata'].includes(n)) || n.startsWith('.')) continue;
        add(problem('ORPHAN_DRIVER_DIR', `${dir}/${n} belongs to no image of graph/ and no container`, `${dir}/${n}`), `${dir}/${n}`);
      }
    }
  }
  const notApplicable = [
    ...NOT_APPLICABLE,
    ...(ls.driver === 'zfs'
      ? ['zfs layers: dockerd asks `zfs list` whether a layer exists, which a directory cannot answer; every layer is taken as present']
      : []),
  ];
  const errors = findings.filter((f) => f.severity === 'error').length;
  return {
    root: ls.root.source,
    driver: ls.driver,
    deep: false,
    checked: { images: images.length, layers: images.length, containers: o.images === undefined ? ls.containers.length : 0, boltFiles: 0, layerBytes: 0 },
    findings,
    errors,
    warnings: findings.length - errors,
    legacy: true,
    notApplicable,
  };
}

// ---------------------------------------------------------------------------------------------
// Info

export interface LegacyInfo {
  /** The root was written before Docker 1.10 (graph era) and is read as such. */
  pre110: true;
  repositories: string;
  graphImages: number;
  /** Images graph.Get loads (what docker images -a lists). */
  images: number;
  containers: number;
  /** Containers daemon.restore registers for this driver. */
  registered: number;
  linkgraph: boolean;
  names: number;
  notes: string[];
}

export function legacyInfoOf(ls: LegacyStore): LegacyInfo {
  let names = 0;
  for (const n of ls.links.names.values()) names += n.length;
  return {
    pre110: true,
    repositories: ls.repositoriesFile,
    graphImages: ls.images.size,
    images: ls.gettable.length,
    containers: ls.containers.length,
    registered: ls.registered.length,
    linkgraph: ls.links.present,
    names,
    notes: [...ls.driverNotes, ...ls.links.problems.map((p) => `${p.code}: ${p.message}`)],
  };
}

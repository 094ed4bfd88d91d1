import { LIMITS, type Confined } from '../io/confined.js';
import { HEX64, LAYOUT as L } from './layout.js';
import { problem, type Problem } from './problems.js';
import { readJson } from './fsread.js';
import { shapeError, type Shape } from '../formats/json/shape.js';

/** container.State as dockerd stores it in config.v2.json. */
export interface StoredState {
  Running?: boolean;
  Paused?: boolean;
  Restarting?: boolean;
  OOMKilled?: boolean;
  RemovalInProgress?: boolean;
  Dead?: boolean;
  Pid?: number;
  ExitCode?: number;
  Error?: string;
  StartedAt?: string;
  FinishedAt?: string;
  Health?: unknown;
}

export interface StoredMountPoint {
  Source?: string;
  Destination?: string;
  RW?: boolean;
  Name?: string;
  Driver?: string;
  Type?: string;
  Relabel?: string;
  Propagation?: string;
  Spec?: Record<string, unknown>;
}

/** The parts of config.v2.json dataroot uses; everything is kept in `raw`. */
export interface StoredContainer {
  ID?: string;
  Created?: string;
  Path?: string;
  Args?: string[];
  Config?: Record<string, unknown> & { Image?: string; Labels?: Record<string, string> | null; Cmd?: string[] | null; Entrypoint?: string[] | null };
  Image?: string;
  State?: StoredState;
  NetworkSettings?: Record<string, unknown> & { Networks?: Record<string, Record<string, unknown>> | null; Ports?: unknown };
  LogPath?: string;
  Name?: string;
  Driver?: string;
  OS?: string;
  Platform?: string;
  MountLabel?: string;
  ProcessLabel?: string;
  RestartCount?: number;
  HasBeenStartedBefore?: boolean;
  MountPoints?: Record<string, StoredMountPoint> | null;
  AppArmorProfile?: string;
  HostnamePath?: string;
  HostsPath?: string;
  ResolvConfPath?: string;
}

const S = 'string' as const;
const B = 'bool' as const;
const N = 'number' as const;

/** The fields of `StoredContainer` with their Go types, as dockerd's container.Container decodes them. */
const CONTAINER_SHAPE: Shape = {
  obj: {
    ID: S,
    Created: S,
    Path: S,
    Args: { arr: { nonNull: S } },
    Config: { obj: { Image: S, Labels: { map: S }, Cmd: 'strslice', Entrypoint: 'strslice' } },
    Image: S,
    // A null State is a nil *State in dockerd: nothing can use the container.
    State: {
      nonNull: {
        obj: { Running: B, Paused: B, Restarting: B, OOMKilled: B, RemovalInProgress: B, Dead: B, Pid: N, ExitCode: N, Error: S, StartedAt: S, FinishedAt: S },
      },
    },
    NetworkSettings: {
      obj: {
        Networks: { map: { obj: {} } },
        Ports: { map: { arr: { nonNull: { obj: { HostIp: S, HostPort: S } } } } },
        Bridge: S,
        SandboxID: S,
        HairpinMode: B,
        LinkLocalIPv6Address: S,
        LinkLocalIPv6PrefixLen: N,
        SandboxKey: S,
      },
    },
    LogPath: S,
    Name: S,
    Driver: S,
    OS: S,
    Platform: S,
    MountLabel: S,
    ProcessLabel: S,
    RestartCount: N,
    HasBeenStartedBefore: B,
    MountPoints: {
      map: { nonNull: { obj: { Source: S, Destination: S, RW: B, Name: S, Driver: S, Type: S, Relabel: S, Propagation: S, Spec: { obj: {} } } } },
    },
    AppArmorProfile: S,
    HostnamePath: S,
    HostsPath: S,
    ResolvConfPath: S,
  },
};

/** The fields of hostconfig.json dataroot reads. */
const HOSTCONFIG_SHAPE: Shape = { obj: { NetworkMode: S } };

export interface ContainerRecord {
  id: string;
  /** containers/<id>, relative to the root. */
  dir: string;
  config: StoredContainer | undefined;
  hostConfig: Record<string, unknown> | undefined;
  problems: Problem[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function readContainer(fs: Confined, id: string): ContainerRecord {
  const dir = `${L.containersDir}/${id}`;
  const problems: Problem[] = [];
  const o = { max: LIMITS.objectJson };
  const c = readJson(fs, `${dir}/config.v2.json`, o);
  let config: StoredContainer | undefined;
  if (c === undefined) problems.push(problem('CONTAINER_CONFIG_MISSING', 'config.v2.json is missing: dockerd skips this container', `${dir}/config.v2.json`));
  else if (!c.ok)
    problems.push(
      problem(
        'CONTAINER_CONFIG_INVALID',
        `config.v2.json cannot be read (${c.code !== undefined ? `${c.code}: ` : ''}${c.error}): dockerd skips this container`,
        `${dir}/config.v2.json`,
      ),
    );
  else if (!isObject(c.value))
    problems.push(problem('CONTAINER_CONFIG_INVALID', 'config.v2.json is not a JSON object: dockerd skips this container', `${dir}/config.v2.json`));
  else {
    const bad = shapeError(c.value, CONTAINER_SHAPE);
    if (bad !== undefined)
      problems.push(
        problem(
          'CONTAINER_CONFIG_INVALID',
          `config.v2.json does not decode as dockerd's container (${bad}): dockerd skips this container`,
          `${dir}/config.v2.json`,
        ),
      );
    else config = c.value;
  }
  const h = readJson(fs, `${dir}/hostconfig.json`, o);
  let hostConfig: Record<string, unknown> | undefined;
  if (h === undefined) problems.push(problem('CONTAINER_HOSTCONFIG_MISSING', 'hostconfig.json is missing', `${dir}/hostconfig.json`));
  else if (!h.ok)
    problems.push(
      problem(
        'CONTAINER_HOSTCONFIG_INVALID',
        `hostconfig.json cannot be read (${h.code !== undefined ? `${h.code}: ` : ''}${h.error})`,
        `${dir}/hostconfig.json`,
      ),
    );
  else if (!isObject(h.value)) problems.push(problem('CONTAINER_HOSTCONFIG_INVALID', 'hostconfig.json is not a JSON object', `${dir}/hostconfig.json`));
  else {
    const bad = shapeError(h.value, HOSTCONFIG_SHAPE);
    if (bad !== undefined)
      problems.push(problem('CONTAINER_HOSTCONFIG_INVALID', `hostconfig.json does not decode as dockerd's host config (${bad})`, `${dir}/hostconfig.json`));
    else hostConfig = h.value;
  }
  return { id, dir, config, hostConfig, problems };
}

export function readContainers(fs: Confined): ContainerRecord[] {
  return fs
    .names(L.containersDir)
    .filter((n) => HEX64.test(n))
    .map((id) => readContainer(fs, id));
}

/** container.State.StateString() of dockerd. */
export function stateString(s: StoredState | undefined): string {
  if (s === undefined) return 'unknown';
  if (s.Running) {
    if (s.Paused) return 'paused';
    if (s.Restarting) return 'restarting';
    return 'running';
  }
  if (s.RemovalInProgress) return 'removing';
  if (s.Dead) return 'dead';
  if (s.StartedAt === undefined || s.StartedAt.startsWith('0001-01-01')) return 'created';
  return 'exited';
}

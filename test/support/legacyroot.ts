import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * Data-roots as Docker 1.9 (moby v1.9.1) and the 1.10 migration (moby v1.10.3) leave them, laid
 * out by hand: no pre-1.10 engine runs here. Every file is written as the cited source writes it;
 * the expected values of test/legacy.test.ts were worked out by hand from the same sources.
 *
 * Images (v1 IDs are random 64-hex strings in 1.9: stringid.GenerateRandomID, graph.go Create):
 *   BASE ← MID ← TOP ← APP      (a chain; TOP is busybox:latest, busybox:1.24 and busybox@sha256:…;
 *   BASE ← DANGLING                APP is myreg:5000/app:1.0; MID and BASE are intermediate;
 *                                  DANGLING is an untagged head)
 * Containers: WEB (running, links db:dbalias), DB (exited 0), LONELY (created, no linkgraph entry),
 * OTHER (created with another driver: not loaded).
 */

const hex = (c: string): string => c.repeat(Math.ceil(64 / c.length)).slice(0, 64);

export const IDS = {
  BASE: hex('ba5e'),
  MID: hex('a1d0'),
  TOP: hex('70b0'),
  APP: hex('a990'),
  DANGLING: hex('dead'),
  WEB: hex('c0ffee'),
  DB: hex('db00'),
  LONELY: hex('10e1'),
  OTHER: hex('0e1e'),
} as const;

export const DIGEST = `sha256:${hex('d16e57')}`;
/** parent_id of APP's json: the strong ID of its parent as 1.9 recorded it (not TOP's v1 ID). */
export const APP_PARENT_ID = `sha256:${hex('5708')}`;

export const SIZES = { BASE: 1048576, MID: 2500, TOP: 0, DANGLING: 4096, APP: 12345 } as const;

export const CREATED = {
  BASE: '2015-11-01T10:00:00.123456789Z',
  MID: '2015-11-02T10:00:00Z',
  TOP: '2015-11-03T10:00:00.5Z',
  DANGLING: '2015-11-04T10:00:00Z',
  APP: '2015-11-05T10:00:00Z',
  WEB: '2015-11-10T11:00:00.000000001Z',
  DB: '2015-11-10T10:00:00Z',
  LONELY: '2015-11-10T12:00:00Z',
  OTHER: '2015-11-10T13:00:00Z',
} as const;

function put(root: string, rel: string, content: string | Buffer, mode = 0o600): void {
  const p = join(root, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content, { mode });
}

/** A runconfig.Config of 1.9 as json.Marshal writes it (runconfig/config.go field order). */
function runconfig(o: {
  Cmd?: string[] | null;
  Env?: string[] | null;
  Image?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object>;
  Entrypoint?: string[] | null;
  Hostname?: string;
}): Record<string, unknown> {
  return {
    Hostname: o.Hostname ?? '',
    Domainname: '',
    User: '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(o.ExposedPorts !== undefined ? { ExposedPorts: o.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: o.Env ?? null,
    Cmd: o.Cmd ?? null,
    Image: o.Image ?? '',
    Volumes: null,
    WorkingDir: '',
    Entrypoint: o.Entrypoint ?? null,
    OnBuild: null,
    Labels: o.Labels ?? null,
  };
}

interface ImageSpec {
  id: string;
  parent: string;
  created: string;
  size: number;
  cmd: string[];
  comment?: string;
  labels?: Record<string, string>;
  parentId?: string;
}

export const IMAGES: ImageSpec[] = [
  {
    id: IDS.BASE,
    parent: '',
    created: CREATED.BASE,
    size: SIZES.BASE,
    cmd: ['/bin/sh', '-c', '#(nop) ADD file:8cf517d90fe79547c474641cc1e6425850e04abbd8856718f7e4a184ea878538 in /'],
  },
  { id: IDS.MID, parent: IDS.BASE, created: CREATED.MID, size: SIZES.MID, cmd: ['/bin/sh', '-c', '#(nop) CMD ["sh"]'] },
  {
    id: IDS.TOP,
    parent: IDS.MID,
    created: CREATED.TOP,
    size: SIZES.TOP,
    cmd: ['/bin/sh', '-c', '#(nop) LABEL com.example.role=top'],
    labels: { 'com.example.role': 'top' },
  },
  { id: IDS.DANGLING, parent: IDS.BASE, created: CREATED.DANGLING, size: SIZES.DANGLING, cmd: ['/bin/sh', '-c', 'echo old > /v'], comment: 'an old build' },
  { id: IDS.APP, parent: IDS.TOP, created: CREATED.APP, size: SIZES.APP, cmd: ['/bin/sh', '-c', 'echo app > /app'], parentId: APP_PARENT_ID },
];

/**
 * graph/<id>/json as pulled (graph.go:721 storeImage writes the v1 JSON verbatim, 0600; fields of
 * image/image.go:34). Compact, keys in the Image struct's order as a 1.9 `docker build` marshals it.
 */
export function imageJson(s: ImageSpec): string {
  return JSON.stringify({
    id: s.id,
    ...(s.parent !== '' ? { parent: s.parent } : {}),
    ...(s.comment !== undefined ? { comment: s.comment } : {}),
    created: s.created,
    container: hex('c0c0'),
    container_config: runconfig({ Cmd: s.cmd, Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Hostname: 'c0c0c0c0c0c0' }),
    docker_version: '1.9.1',
    config: runconfig({
      Cmd: ['sh'],
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(s.labels !== undefined ? { Labels: s.labels } : {}),
    }),
    architecture: 'amd64',
    os: 'linux',
    ...(s.parentId !== undefined ? { parent_id: s.parentId } : {}),
  });
}

export interface ContainerSpec {
  id: string;
  name: string;
  image: string;
  configImage: string;
  created: string;
  driver: string;
  state: Record<string, unknown>;
  path: string;
  args: string[];
  ports?: Record<string, { HostIp: string; HostPort: string }[] | null>;
  mounts?: Record<string, Record<string, unknown>>;
  volumes?: Record<string, string>;
  volumesRW?: Record<string, boolean>;
  ip: string;
}

const ZERO = '0001-01-01T00:00:00Z';

export function containers(driver: string, root = '/var/lib/docker'): ContainerSpec[] {
  return [
    {
      id: IDS.WEB,
      name: '/web',
      image: IDS.TOP,
      configImage: 'busybox',
      created: CREATED.WEB,
      driver,
      state: {
        Running: true,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: 4242,
        ExitCode: 0,
        Error: '',
        StartedAt: '2015-11-10T11:00:01.5Z',
        FinishedAt: ZERO,
      },
      path: 'sh',
      args: ['-c', 'while true; do sleep 1; done'],
      ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] },
      mounts: { '/data': { Name: '', Destination: '/data', Driver: '', RW: true, Source: '/srv/data', Relabel: '' } },
      volumes: { '/data': '/srv/data' },
      volumesRW: { '/data': true },
      ip: '172.17.0.3',
    },
    {
      id: IDS.DB,
      name: '/db',
      image: IDS.APP,
      configImage: 'myreg:5000/app:1.0',
      created: CREATED.DB,
      driver,
      state: {
        Running: false,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: 0,
        ExitCode: 0,
        Error: '',
        StartedAt: '2015-11-10T10:00:01Z',
        FinishedAt: '2015-11-10T10:30:00Z',
      },
      path: '/app',
      args: [],
      mounts: { '/var/lib/db': { Name: 'f00dvol', Destination: '/var/lib/db', Driver: 'local', RW: true, Source: '', Relabel: '' } },
      volumes: { '/var/lib/db': `${root}/volumes/f00dvol/_data` },
      volumesRW: { '/var/lib/db': true },
      ip: '',
    },
    {
      id: IDS.LONELY,
      name: '/lonely',
      image: IDS.DANGLING,
      configImage: IDS.DANGLING.slice(0, 12),
      created: CREATED.LONELY,
      driver,
      state: {
        Running: false,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: 0,
        ExitCode: 0,
        Error: '',
        StartedAt: ZERO,
        FinishedAt: ZERO,
      },
      path: 'echo',
      args: ['hello world'],
      ip: '',
    },
    {
      id: IDS.OTHER,
      name: '/other',
      image: IDS.BASE,
      configImage: 'busybox',
      created: CREATED.OTHER,
      driver: driver === 'devicemapper' ? 'aufs' : 'devicemapper',
      state: {
        Running: false,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: 0,
        ExitCode: 0,
        Error: '',
        StartedAt: ZERO,
        FinishedAt: ZERO,
      },
      path: 'true',
      args: [],
      ip: '',
    },
  ];
}

/**
 * containers/<id>/config.json as 1.9 writes it: json.Marshal of daemon.Container (container.go:52
 * CommonContainer + container_unix.go:49 Container; `ImageID` is `json:"Image"`, the embedded *State
 * is `json:"State"`). Field order is the struct's.
 */
export function containerJson(c: ContainerSpec, root: string): string {
  const dir = `${root}/containers/${c.id}`;
  return JSON.stringify({
    State: c.state,
    ID: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    Config: {
      ...runconfig({
        Cmd: [c.path, ...c.args],
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Image: c.configImage,
        Hostname: c.id.slice(0, 12),
        ...(c.ports !== undefined ? { ExposedPorts: { '80/tcp': {} } } : {}),
      }),
    },
    Image: c.image,
    NetworkSettings: {
      Bridge: '',
      SandboxID: c.ip === '' ? '' : hex('5a0d'),
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Networks:
        c.ip === ''
          ? null
          : {
              bridge: {
                EndpointID: hex('e0e0'),
                Gateway: '172.17.0.1',
                IPAddress: c.ip,
                IPPrefixLen: 16,
                IPv6Gateway: '',
                GlobalIPv6Address: '',
                GlobalIPv6PrefixLen: 0,
                MacAddress: '02:42:ac:11:00:03',
              },
            },
      Ports: c.ports ?? null,
      SandboxKey: c.ip === '' ? '' : `/var/run/docker/netns/${hex('5a0d').slice(0, 12)}`,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      IsAnonymousEndpoint: false,
    },
    LogPath: `${dir}/${c.id}-json.log`,
    Name: c.name,
    Driver: c.driver,
    ExecDriver: 'native-0.2',
    MountLabel: '',
    ProcessLabel: '',
    RestartCount: 0,
    HasBeenStartedBefore: c.state['StartedAt'] !== ZERO,
    HasBeenManuallyStopped: false,
    AppArmorProfile: '',
    HostnamePath: `${dir}/hostname`,
    HostsPath: `${dir}/hosts`,
    ShmPath: `${dir}/shm`,
    MqueuePath: `${dir}/mqueue`,
    MountPoints: c.mounts ?? {},
    ResolvConfPath: `${dir}/resolv.conf`,
    Volumes: c.volumes ?? {},
    VolumesRW: c.volumesRW ?? {},
  });
}

/**
 * hostconfig.json as 1.9 writes it (runconfig/hostconfig.go HostConfig, json.Marshal). Links is
 * null: registerLinks (daemon_unix.go) records the links in linkgraph.db, then sets Links to nil and
 * writes the host config again.
 */
export function hostConfigJson(c: ContainerSpec): string {
  return JSON.stringify({
    Binds: c.ports !== undefined ? ['/srv/data:/data'] : null,
    ContainerIDFile: '',
    LxcConf: [],
    Memory: 0,
    MemoryReservation: 0,
    MemorySwap: 0,
    KernelMemory: 0,
    CpuShares: 0,
    CpuPeriod: 0,
    CpusetCpus: '',
    CpusetMems: '',
    CpuQuota: 0,
    BlkioWeight: 0,
    OomKillDisable: false,
    MemorySwappiness: -1,
    Privileged: false,
    PortBindings: c.ports !== undefined ? { '80/tcp': [{ HostIp: '', HostPort: '8080' }] } : {},
    Links: null,
    PublishAllPorts: false,
    Dns: [],
    DnsOptions: [],
    DnsSearch: [],
    ExtraHosts: null,
    VolumesFrom: null,
    Devices: [],
    NetworkMode: 'default',
    IpcMode: '',
    PidMode: '',
    UTSMode: '',
    CapAdd: null,
    CapDrop: null,
    GroupAdd: null,
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    SecurityOpt: null,
    ReadonlyRootfs: false,
    Ulimits: null,
    LogConfig: { Type: 'json-file', Config: {} },
    CgroupParent: '',
    ConsoleSize: [0, 0],
    VolumeDriver: '',
  });
}

/** The schema of pkg/graphdb/graphdb.go:10-26 (v1.9.1), verbatim. */
const GRAPHDB_SCHEMA = `
    CREATE TABLE IF NOT EXISTS entity (
        id text NOT NULL PRIMARY KEY
    );
    CREATE TABLE IF NOT EXISTS edge (
        "entity_id" text NOT NULL,
        "parent_id" text NULL,
        "name" text NOT NULL,
        CONSTRAINT "parent_fk" FOREIGN KEY ("parent_id") REFERENCES "entity" ("id"),
        CONSTRAINT "entity_fk" FOREIGN KEY ("entity_id") REFERENCES "entity" ("id")
        );
    CREATE UNIQUE INDEX IF NOT EXISTS "name_parent_ix" ON "edge" (parent_id, name);
`;

function sqlQuote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Runs SQL on a database file with Debian's sqlite3 CLI. */
export function sqlite3(file: string, sql: string): string {
  const r = spawnSync('sqlite3', ['-batch', file], { input: sql, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * linkgraph.db as 1.9 fills it: NewDatabase (graphdb.go) inserts the root entity "0" and its edge
 * (entity_id "0", name "/"); daemon.reserveName → graph.Set("/<name>", id) inserts the entity and
 * the edge (parent "0", name); `--link db:dbalias` from web → registerLink → Set("/web/dbalias", db)
 * inserts the edge (parent web, name "dbalias", entity db). web is named before db, so the rowid
 * order of the edges is not their name order.
 */
export function writeLinkGraph(file: string, named: { id: string; name: string }[], links: { parent: string; alias: string; child: string }[]): void {
  let sql = GRAPHDB_SCHEMA;
  sql += `BEGIN; DELETE FROM entity where id = '0'; INSERT INTO entity (id) VALUES ('0'); DELETE FROM edge where entity_id='0' and name='/'; INSERT INTO edge (entity_id, name) VALUES('0', '/'); COMMIT;\n`;
  for (const n of named)
    sql += `INSERT INTO entity (id) VALUES(${sqlQuote(n.id)}); INSERT INTO edge (parent_id, name, entity_id) VALUES ('0', ${sqlQuote(n.name)}, ${sqlQuote(n.id)});\n`;
  for (const l of links) sql += `INSERT INTO edge (parent_id, name, entity_id) VALUES (${sqlQuote(l.parent)}, ${sqlQuote(l.alias)}, ${sqlQuote(l.child)});\n`;
  sqlite3(file, sql);
}

/** The repositories-<driver> JSON of graph/tags.go TagStore.save: json.Marshal(store), compact, 0600. */
export function repositoriesJson(): string {
  // Go marshals map keys sorted.
  return JSON.stringify({
    Repositories: {
      busybox: { '1.24': IDS.TOP, latest: IDS.TOP, [DIGEST]: IDS.TOP },
      'myreg:5000/app': { '1.0': IDS.APP },
    },
  });
}

export type LegacyDriver = 'aufs' | 'overlay' | 'devicemapper';

/** The driver's layer for an image or a container (and its -init) as 1.9's driver Create makes it. */
function driverLayer(root: string, driver: LegacyDriver, id: string, parentChain: string[], isImage: boolean, deviceId: number): void {
  switch (driver) {
    case 'aufs':
      // aufs.go Create: mnt/<id> and diff/<id> (0755), layers/<id> lists the parent and its parents.
      mkdirSync(join(root, 'aufs/mnt', id), { recursive: true });
      mkdirSync(join(root, 'aufs/diff', id), { recursive: true });
      put(root, `aufs/layers/${id}`, parentChain.map((p) => `${p}\n`).join(''), 0o644);
      if (isImage) put(root, `aufs/diff/${id}/${id.slice(0, 4)}`, `${id}\n`, 0o644);
      break;
    case 'overlay':
      // overlay.go Create/ApplyDiff: an image layer is a full root/ tree; a container (whose parent
      // has root/) gets upper/, work/, merged/ and lower-id naming the image.
      if (isImage) {
        mkdirSync(join(root, 'overlay', id, 'root/bin'), { recursive: true });
        put(root, `overlay/${id}/root/${id.slice(0, 4)}`, `${id}\n`, 0o644);
      } else {
        for (const d of ['upper', 'work', 'merged']) mkdirSync(join(root, 'overlay', id, d), { recursive: true });
        put(root, `overlay/${id}/lower-id`, parentChain[parentChain.length - 1] === undefined ? '' : lowerImage(parentChain), 0o666);
      }
      break;
    case 'devicemapper':
      // deviceset.go saveMetadata: metadata/<hash> is json of devInfo (device_id, size, transaction_id, initialized, deleted).
      put(
        root,
        `devicemapper/metadata/${id}`,
        JSON.stringify({ device_id: deviceId, size: 10737418240, transaction_id: deviceId, initialized: false, deleted: false }),
      );
      break;
  }
}

/** overlay: the image a container's lower-id names (its nearest ancestor that is an image). */
function lowerImage(chain: string[]): string {
  return chain.find((p) => !p.endsWith('-init'))!;
}

/** Builds a pre-1.10 root at `root` for a driver, as 1.9 leaves it after a clean stop (web still recorded as running). */
export function writeLegacyRoot(root: string, driver: LegacyDriver, shownRoot = '/var/lib/docker'): void {
  mkdirSync(join(root, 'graph/_tmp'), { recursive: true, mode: 0o700 });
  let dev = 1;
  const byId = new Map(IMAGES.map((i) => [i.id, i]));
  const ancestors = (id: string): string[] => {
    const out: string[] = [];
    for (let p = byId.get(id)?.parent ?? ''; p !== ''; p = byId.get(p)?.parent ?? '') out.push(p);
    return out;
  };
  for (const img of IMAGES) {
    put(root, `graph/${img.id}/json`, imageJson(img));
    put(root, `graph/${img.id}/layersize`, String(img.size));
    // storeImage writes `parent` when parent_id is a digest whose hex is not the v1 parent (graph.go:744-748).
    if (img.parentId !== undefined) put(root, `graph/${img.id}/parent`, img.parent);
    if (img.id === IDS.TOP) put(root, `graph/${img.id}/checksum`, DIGEST);
    driverLayer(root, driver, img.id, ancestors(img.id), true, dev++);
  }
  if (driver === 'devicemapper')
    put(root, 'devicemapper/metadata/base', JSON.stringify({ device_id: 0, size: 10737418240, transaction_id: 0, initialized: true, deleted: false }));
  put(root, `repositories-${driver}`, repositoriesJson());
  const cs = containers(driver, shownRoot);
  for (const c of cs) {
    put(root, `containers/${c.id}/config.json`, containerJson(c, shownRoot));
    put(root, `containers/${c.id}/hostconfig.json`, hostConfigJson(c));
    for (const f of ['hostname', 'hosts', 'resolv.conf']) put(root, `containers/${c.id}/${f}`, `${f}\n`, 0o644);
    put(root, `containers/${c.id}/${c.id}-json.log`, '');
    if (c.driver === driver) {
      const chain = [c.image, ...ancestors(c.image)];
      driverLayer(root, driver, `${c.id}-init`, chain, false, dev++);
      driverLayer(root, driver, c.id, [`${c.id}-init`, ...chain], false, dev++);
    }
  }
  mkdirSync(join(root, 'volumes/f00dvol/_data'), { recursive: true });
  writeLinkGraph(
    join(root, 'linkgraph.db'),
    [
      { id: IDS.WEB, name: 'web' },
      { id: IDS.DB, name: 'db' },
      { id: IDS.OTHER, name: 'other' },
    ],
    [{ parent: IDS.WEB, alias: 'dbalias', child: IDS.DB }],
  );
}

export function sha256hex(b: string | Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The chainID of a list of diffIDs (layer/layer.go CreateChainID): sha256 of "<parent chain> <diffID>". */
export function chainIdsOf(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : `sha256:${sha256hex(`${out[out.length - 1]} ${d}`)}`);
  return out;
}

/**
 * The same root after Docker 1.10 migrated it (v1.10.3 migrate/v1/migratev1.go) under the overlay
 * driver, and before anything else touched it: graph/, repositories-overlay, linkgraph.db and every
 * config.json stay; each graph/<id> gains .migration-diffid/-size/-tardata; each image becomes a
 * config under image/overlay/imagedb (MakeConfigFromV1Config: the v1 JSON without id, parent, Size,
 * parent_id, layer_id, plus rootfs and history, keys sorted) with its parent recorded in metadata;
 * each layer a layerdb entry whose cache-id is the v1 ID (RegisterByGraphID); each container a
 * config.v2.json (config.json with only Image replaced, keys sorted) and a mount whose mount-id is
 * the container ID (CreateRWLayerByGraphID(id, id, …)).
 */
export function writeMigratedRoot(root: string, shownRoot = '/var/lib/docker'): { imageIds: Record<string, string>; chainIds: Record<string, string> } {
  writeLegacyRoot(root, 'overlay', shownRoot);
  const byId = new Map(IMAGES.map((i) => [i.id, i]));
  const mapping: Record<string, string> = {};
  const chainOf: Record<string, string> = {};
  const diffOf = (id: string): string => `sha256:${sha256hex(`layer ${id}`)}`;
  const order = [IDS.BASE, IDS.MID, IDS.TOP, IDS.DANGLING, IDS.APP];
  const sortKeys = (o: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    );
  for (const id of order) {
    const img = byId.get(id)!;
    const chain: string[] = [];
    for (let p: string = id; p !== ''; p = byId.get(p)!.parent) chain.unshift(p);
    const diffIds = chain.map(diffOf);
    const chainIds = chainIdsOf(diffIds);
    const chainId = chainIds[chainIds.length - 1]!;
    chainOf[id] = chainId;
    put(root, `graph/${id}/.migration-diffid`, diffOf(id));
    put(root, `graph/${id}/.migration-size`, String(img.size));
    put(root, `graph/${id}/.migration-tardata`, '');
    const hexChain = chainId.slice(7);
    put(root, `image/overlay/layerdb/sha256/${hexChain}/diff`, diffOf(id));
    put(root, `image/overlay/layerdb/sha256/${hexChain}/size`, String(img.size));
    put(root, `image/overlay/layerdb/sha256/${hexChain}/cache-id`, id);
    if (chainIds.length > 1) put(root, `image/overlay/layerdb/sha256/${hexChain}/parent`, chainIds[chainIds.length - 2]!);
    // The tar-split the migration generated (.migration-tardata, renamed into the layer): here the
    // stream of an empty tar, one segment of 1024 zero bytes (the diffIDs above are synthetic).
    put(
      root,
      `image/overlay/layerdb/sha256/${hexChain}/tar-split.json.gz`,
      gzipSync(`${JSON.stringify({ type: 2, payload: Buffer.alloc(1024).toString('base64'), position: 0 })}\n`),
    );
    const v1 = JSON.parse(imageJson(img)) as Record<string, unknown>;
    for (const k of ['id', 'parent', 'Size', 'parent_id', 'layer_id', 'throwaway']) delete v1[k];
    v1['rootfs'] = { type: 'layers', diff_ids: diffIds };
    v1['history'] = chain.map((c) => {
      const s = byId.get(c)!;
      return { created: s.created, created_by: s.cmd.join(' '), ...(s.comment !== undefined ? { comment: s.comment } : {}) };
    });
    const config = JSON.stringify(sortKeys(v1));
    const imageId = sha256hex(config);
    mapping[id] = `sha256:${imageId}`;
    put(root, `image/overlay/imagedb/content/sha256/${imageId}`, config);
    if (img.parent !== '') put(root, `image/overlay/imagedb/metadata/sha256/${imageId}/parent`, mapping[img.parent]!);
  }
  // migrateRefs: tags and digests replayed into the reference store (reference/store.go: repositories.json, familiar names normalized).
  put(
    root,
    'image/overlay/repositories.json',
    JSON.stringify({
      Repositories: {
        busybox: { 'busybox:1.24': mapping[IDS.TOP], 'busybox:latest': mapping[IDS.TOP], [`busybox@${DIGEST}`]: mapping[IDS.TOP] },
        'myreg:5000/app': { 'myreg:5000/app:1.0': mapping[IDS.APP] },
      },
    }),
  );
  put(root, '.migration-v1-images.json', JSON.stringify(sortKeys(mapping)));
  put(root, '.migration-v1-tags', '');
  for (const c of containers('overlay', shownRoot)) {
    // Every container whose image was migrated gets config.v2.json, whatever its driver.
    const legacy = JSON.parse(containerJson(c, shownRoot)) as Record<string, unknown>;
    legacy['Image'] = mapping[c.image];
    put(root, `containers/${c.id}/config.v2.json`, JSON.stringify(sortKeys(legacy)));
    // CreateRWLayerByGraphID fails (logged) when the driver has no such layer: no mount then.
    if (c.driver !== 'overlay') continue;
    put(root, `image/overlay/layerdb/mounts/${c.id}/mount-id`, c.id);
    put(root, `image/overlay/layerdb/mounts/${c.id}/init-id`, `${c.id}-init`);
    put(root, `image/overlay/layerdb/mounts/${c.id}/parent`, chainOf[c.image]!);
  }
  return { imageIds: mapping, chainIds: chainOf };
}

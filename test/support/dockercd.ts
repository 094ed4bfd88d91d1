import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Containerd } from './containerd.js';

/**
 * A Docker data-root that uses the containerd image store, assembled because no dockerd new
 * enough (24+) runs here: a real containerd root whose `moby` namespace holds the images and the
 * container layers (made by ctr as moby's daemon/containerd/image_snapshot.go makes them: an
 * `<id>-init` snapshot committed over the image's chainID with the files dockerd's init layer
 * writes, then the read-write snapshot `<id>` over it, and a lease named after the container),
 * copied to `<root>/containerd/daemon`; and `containers/<id>/config.v2.json` and
 * `hostconfig.json` written with the fields moby's Container struct serializes for this store
 * (`Driver: "overlayfs"`, `Image` = the image's target digest, `ImageManifest`, `ImagePlatform`).
 */
export interface DockerCdContainer {
  id: string;
  name: string;
  /** The image reference the user gave (Config.Image). */
  image: string;
  /** The image record's target digest and the platform manifest's descriptor. */
  target: string;
  manifest: { mediaType: string; digest: string; size: number };
  chainId: string;
  cmd: string[];
  /** Shell run inside the mounted rw snapshot (cwd = its root) to change files. */
  changes?: string;
  exitCode?: number;
}

/** dockerd's init layer (daemon/initlayer): the files it creates in `<id>-init`. */
const INIT_DIRS = ['dev/pts', 'dev/shm', 'proc', 'sys', 'etc'];
const INIT_FILES = ['.dockerenv', 'etc/hostname', 'etc/hosts', 'etc/resolv.conf', 'dev/console', 'etc/mtab'];

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

/** Mounts a snapshot as ctr snapshots mounts prints it, runs `fn` on the mount point, unmounts. */
export function withMountedSnapshot(d: Containerd, ns: string, key: string, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'dataroot-mnt-'));
  try {
    const cmd = d.ctr(['snapshots', 'mounts', dir, key], { ns }).stdout.trim();
    sh(cmd);
    try {
      fn(dir);
    } finally {
      spawnSync('umount', [dir]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The container layers of `c` in namespace moby, as dockerd makes them (with a lease named after the container). */
export function makeDockerLayers(d: Containerd, c: DockerCdContainer): void {
  d.ctr(['snapshots', 'prepare', `${c.id}-init-key`, c.chainId], { ns: 'moby' });
  withMountedSnapshot(d, 'moby', `${c.id}-init-key`, (root) => {
    for (const x of INIT_DIRS) mkdirSync(join(root, x), { recursive: true });
    for (const f of INIT_FILES) writeFileSync(join(root, f), '');
  });
  d.ctr(['snapshots', 'commit', `${c.id}-init`, `${c.id}-init-key`], { ns: 'moby' });
  d.ctr(['snapshots', 'prepare', c.id, `${c.id}-init`], { ns: 'moby' });
  // dockerd holds the layers by a lease of the container's ID; ctr 1.6 cannot add resources to a
  // lease, so the gc.root labels ctr puts on what it prepares and commits keep them instead.
  d.ctr(['leases', 'create', '--id', c.id], { ns: 'moby' });
  if (c.changes !== undefined) withMountedSnapshot(d, 'moby', c.id, (root) => sh(`cd '${root}' && ${c.changes}`));
}

/** config.v2.json and hostconfig.json of a stopped container, as dockerd 29 writes them for the containerd store. */
export function writeDockerContainer(dockerRoot: string, c: DockerCdContainer, shownRoot = '/var/lib/docker'): void {
  const dir = join(dockerRoot, 'containers', c.id);
  mkdirSync(dir, { recursive: true });
  const created = '2026-11-30T10:00:00.123456789Z';
  const started = '2026-11-30T10:00:01.5Z';
  const finished = '2026-11-30T10:00:02.25Z';
  const path = (f: string): string => `${shownRoot}/containers/${c.id}/${f}`;
  const config = {
    StreamConfig: {},
    State: {
      Running: false,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      RemovalInProgress: false,
      Dead: false,
      Pid: 0,
      ExitCode: c.exitCode ?? 0,
      Error: '',
      StartedAt: started,
      FinishedAt: finished,
      Health: null,
    },
    ID: c.id,
    Created: created,
    Managed: false,
    Path: c.cmd[0],
    Args: c.cmd.slice(1),
    Config: {
      Hostname: c.id.slice(0, 12),
      Domainname: '',
      User: '',
      AttachStdin: false,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: c.cmd,
      Image: c.image,
      Volumes: null,
      WorkingDir: '',
      Entrypoint: null,
      OnBuild: null,
      Labels: {},
    },
    Image: c.target,
    ImageManifest: { ...c.manifest, platform: { architecture: 'amd64', os: 'linux' } },
    NetworkSettings: {
      Bridge: '',
      SandboxID: '',
      SandboxKey: '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Networks: {},
      Service: null,
      Ports: null,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      IsAnonymousEndpoint: false,
      HasSwarmEndpoint: false,
    },
    LogPath: path(`${c.id}-json.log`),
    Name: `/${c.name}`,
    Driver: 'overlayfs',
    OS: 'linux',
    ImagePlatform: { architecture: 'amd64', os: 'linux' },
    RestartCount: 0,
    HasBeenStartedBefore: true,
    HasBeenManuallyStopped: false,
    MountPoints: {},
    SecretReferences: null,
    ConfigReferences: null,
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    SeccompProfile: '',
    NoNewPrivileges: false,
    HostnamePath: path('hostname'),
    HostsPath: path('hosts'),
    ShmPath: '',
    ResolvConfPath: path('resolv.conf'),
    LocalLogCacheMeta: { HaveNotifyEnabled: false },
  };
  writeFileSync(join(dir, 'config.v2.json'), JSON.stringify(config));
  writeFileSync(
    join(dir, 'hostconfig.json'),
    JSON.stringify({
      Binds: null,
      ContainerIDFile: '',
      LogConfig: { Type: 'json-file', Config: {} },
      NetworkMode: 'bridge',
      PortBindings: {},
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      VolumeDriver: '',
      VolumesFrom: null,
    }),
  );
  for (const f of ['hostname', 'hosts', 'resolv.conf', `${c.id}-json.log`]) writeFileSync(join(dir, f), '');
}

/** Copies a stopped containerd's root to `<dockerRoot>/containerd/daemon` (devices, xattrs and owners kept). */
export function placeContainerdRoot(containerdRoot: string, dockerRoot: string): void {
  const dest = join(dockerRoot, 'containerd', 'daemon');
  mkdirSync(dest, { recursive: true });
  sh(`cp -a '${containerdRoot}/.' '${dest}/'`);
}

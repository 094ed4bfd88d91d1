/**
 * Every path of a data-root in one place (see shared/reference/docker-dataroot-format.md §0), each
 * relative to the root: they are read and written through the root's confined access layer
 * (`io/confined.ts`), never joined to a base by hand.
 */

/** Drivers whose layer contents dataroot reads, by the adapter that reads them. */
export const KNOWN_DRIVERS = ['overlay2', 'fuse-overlayfs', 'overlay', 'aufs', 'btrfs', 'zfs', 'vfs', 'devicemapper', 'windowsfilter'] as const;
export type DriverName = (typeof KNOWN_DRIVERS)[number];

/**
 * dockerd 20.10's priority list (daemon/graphdriver/driver_linux.go): the first "prior" driver in
 * this order is used. 23.0 moved overlay2 first; 24 and 25 dropped aufs, overlay, devicemapper.
 */
export const DRIVER_PRIORITY = ['btrfs', 'zfs', 'overlay2', 'fuse-overlayfs', 'aufs', 'overlay', 'devicemapper', 'vfs'] as const;

/** Top-level names a dockerd root holds after its first start. */
export const ROOT_ENTRIES = [
  'image',
  'containers',
  'volumes',
  'network',
  'buildkit',
  'plugins',
  'runtimes',
  'swarm',
  'tmp',
  'trust',
  'containerd',
  'graph',
  ...KNOWN_DRIVERS,
];

export function isKnownDriver(d: string): d is DriverName {
  return (KNOWN_DRIVERS as readonly string[]).includes(d);
}

export class Layout {
  imageRoot(driver: string): string {
    return `image/${driver}`;
  }
  repositories(driver: string): string {
    return `image/${driver}/repositories.json`;
  }
  imageContentDir(driver: string): string {
    return `image/${driver}/imagedb/content/sha256`;
  }
  imageMetadataDir(driver: string): string {
    return `image/${driver}/imagedb/metadata/sha256`;
  }
  layerDbDir(driver: string): string {
    return `image/${driver}/layerdb/sha256`;
  }
  layerDbTmp(driver: string): string {
    return `image/${driver}/layerdb/tmp`;
  }
  mountsDir(driver: string): string {
    return `image/${driver}/layerdb/mounts`;
  }
  driverHome(driver: string): string {
    return driver;
  }
  get containersDir(): string {
    return 'containers';
  }
  get volumesDir(): string {
    return 'volumes';
  }
  /** dockerd holds an exclusive flock on this file while it runs. */
  get volumesDb(): string {
    return 'volumes/metadata.db';
  }
  get networkDb(): string {
    return 'network/files/local-kv.db';
  }
}

export const LAYOUT = new Layout();

export const HEX64 = /^[a-f0-9]{64}$/;

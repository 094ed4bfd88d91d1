import { join } from 'node:path';

/** Every path of a data-root in one place (see shared/reference/docker-dataroot-format.md §0). */
export const SUPPORTED_DRIVERS = ['overlay2', 'vfs'] as const;
export const KNOWN_DRIVERS = ['overlay2', 'vfs', 'aufs', 'btrfs', 'zfs', 'devicemapper', 'fuse-overlayfs', 'overlay', 'windowsfilter'] as const;

/** Top-level names a dockerd root holds after its first start. */
export const ROOT_ENTRIES = ['image', 'containers', 'volumes', 'network', 'buildkit', 'plugins', 'runtimes', 'swarm', 'tmp', 'trust', 'containerd', ...KNOWN_DRIVERS];

export class Layout {
  constructor(readonly root: string) {}
  imageRoot(driver: string): string {
    return join(this.root, 'image', driver);
  }
  repositories(driver: string): string {
    return join(this.imageRoot(driver), 'repositories.json');
  }
  imageContentDir(driver: string): string {
    return join(this.imageRoot(driver), 'imagedb', 'content', 'sha256');
  }
  imageMetadataDir(driver: string): string {
    return join(this.imageRoot(driver), 'imagedb', 'metadata', 'sha256');
  }
  layerDbDir(driver: string): string {
    return join(this.imageRoot(driver), 'layerdb', 'sha256');
  }
  mountsDir(driver: string): string {
    return join(this.imageRoot(driver), 'layerdb', 'mounts');
  }
  driverHome(driver: string): string {
    return join(this.root, driver);
  }
  get containersDir(): string {
    return join(this.root, 'containers');
  }
  get volumesDir(): string {
    return join(this.root, 'volumes');
  }
  /** dockerd holds an exclusive flock on this file while it runs. */
  get volumesDb(): string {
    return join(this.root, 'volumes', 'metadata.db');
  }
  get networkDb(): string {
    return join(this.root, 'network', 'files', 'local-kv.db');
  }
}

export const HEX64 = /^[a-f0-9]{64}$/;

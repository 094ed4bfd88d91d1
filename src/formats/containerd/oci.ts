/**
 * The image formats containerd stores (pure): media types, descriptors, indexes, manifests and
 * configs, read from JSON already bounded by the caller, and platform matching as containerd's
 * `platforms` package does it for `platforms.Default()` on linux/amd64.
 */

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeign: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export function isManifestType(mt: string): boolean {
  return mt === MT.dockerManifest || mt === MT.ociManifest;
}

export function isIndexType(mt: string): boolean {
  return mt === MT.dockerList || mt === MT.ociIndex;
}

export function isConfigType(mt: string): boolean {
  return mt === MT.dockerConfig || mt === MT.ociConfig;
}

/** images.IsLayerType: OCI and Docker layer types (any compression). */
export function isLayerType(mt: string): boolean {
  if (mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.')) return true;
  return false;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => x !== null && typeof x === 'object' && !Array.isArray(x);

/** A descriptor from JSON, or undefined when it lacks a string digest and media type. */
export function descriptorOf(x: unknown): Descriptor | undefined {
  if (!isObj(x)) return undefined;
  const { mediaType, digest, size } = x;
  if (typeof digest !== 'string' || typeof mediaType !== 'string') return undefined;
  const d: Descriptor = { mediaType, digest, size: typeof size === 'number' && Number.isSafeInteger(size) ? size : -1 };
  if (isObj(x['platform'])) {
    const p = x['platform'];
    d.platform = { os: typeof p['os'] === 'string' ? p['os'] : '', architecture: typeof p['architecture'] === 'string' ? p['architecture'] : '' };
    if (typeof p['variant'] === 'string' && p['variant'] !== '') d.platform.variant = p['variant'];
    if (typeof p['os.version'] === 'string' && p['os.version'] !== '') d.platform['os.version'] = p['os.version'];
  }
  if (isObj(x['annotations'])) {
    const a: Record<string, string> = {};
    for (const [k, v] of Object.entries(x['annotations'])) if (typeof v === 'string') a[k] = v;
    d.annotations = a;
  }
  return d;
}

export interface Manifest {
  config: Descriptor | undefined;
  layers: Descriptor[];
}

export function parseManifest(j: unknown): Manifest | undefined {
  if (!isObj(j)) return undefined;
  const layers = Array.isArray(j['layers']) ? j['layers'].map(descriptorOf).filter((d): d is Descriptor => d !== undefined) : [];
  return { config: descriptorOf(j['config']), layers };
}

export function parseIndex(j: unknown): Descriptor[] | undefined {
  if (!isObj(j) || !Array.isArray(j['manifests'])) return undefined;
  return j['manifests'].map(descriptorOf).filter((d): d is Descriptor => d !== undefined);
}

/** images.Children: what a manifest or index points to (config first, then layers). */
export function childrenOf(mediaType: string, j: unknown): Descriptor[] {
  if (isManifestType(mediaType)) {
    const m = parseManifest(j);
    if (m === undefined) return [];
    return [...(m.config !== undefined ? [m.config] : []), ...m.layers];
  }
  if (isIndexType(mediaType)) return parseIndex(j) ?? [];
  return [];
}

export interface ImageConfigView {
  os: string;
  architecture: string;
  variant?: string;
  diffIds: string[];
  created?: string;
  raw: Obj;
}

export function parseConfig(j: unknown): ImageConfigView | undefined {
  if (!isObj(j)) return undefined;
  const rootfs = isObj(j['rootfs']) ? j['rootfs'] : {};
  const diffIds = Array.isArray(rootfs['diff_ids']) ? rootfs['diff_ids'].filter((d): d is string => typeof d === 'string') : [];
  const out: ImageConfigView = {
    os: typeof j['os'] === 'string' ? j['os'] : '',
    architecture: typeof j['architecture'] === 'string' ? j['architecture'] : '',
    diffIds,
    raw: j,
  };
  if (typeof j['variant'] === 'string' && j['variant'] !== '') out.variant = j['variant'];
  if (typeof j['created'] === 'string') out.created = j['created'];
  return out;
}

/** platforms.Normalize for the names that matter on Linux hosts. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let arch = p.architecture.toLowerCase();
  let variant = p.variant;
  switch (arch) {
    case 'i386':
      arch = '386';
      variant = undefined;
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      arch = 'amd64';
      if (variant === 'v1') variant = undefined;
      break;
    case 'aarch64':
    case 'arm64':
      arch = 'arm64';
      if (variant === '8' || variant === 'v8') variant = undefined;
      break;
    case 'armhf':
      arch = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      arch = 'arm';
      variant = 'v6';
      break;
    default:
      break;
  }
  const out: Platform = { os, architecture: arch };
  if (variant !== undefined && variant !== '') out.variant = variant;
  return out;
}

/** platforms.Format: os/arch[/variant]. */
export function formatPlatform(p: Platform): string {
  return [p.os === '' ? 'unknown' : p.os, p.architecture === '' ? 'unknown' : p.architecture, ...(p.variant !== undefined ? [p.variant] : [])].join('/');
}

/** The platform containerd's platforms.DefaultSpec() reports for a host architecture named as Node names it (x64, arm64). */
export function hostPlatform(arch: string): Platform {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: map[arch] ?? arch };
}

/** platforms.Only(host).Match on a normalized platform (amd64 hosts: amd64 only; arm64 also runs arm v8/v7/v6). */
export function matchesHost(p: Platform, host: Platform): boolean {
  const n = normalizePlatform(p);
  if (n.os !== host.os) return false;
  if (n.architecture === host.architecture) return true;
  if (host.architecture === 'arm64' && n.architecture === 'arm' && (n.variant === undefined || ['v8', 'v7', 'v6', 'v5'].includes(n.variant))) return true;
  return false;
}

/** platforms' Less: the host's own architecture before compatible ones. */
export function hostRank(p: Platform, host: Platform): number {
  const n = normalizePlatform(p);
  if (n.architecture === host.architecture) return 0;
  return 1;
}

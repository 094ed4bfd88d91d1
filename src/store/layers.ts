import { join } from 'node:path';
import { DIGEST_RE, sha256Digest } from '../formats/digest/digest.js';
import { encodeUtf8 } from '../formats/bytes.js';
import { HEX64, type Layout } from './layout.js';
import { problem, type Problem } from './problems.js';
import { exists, isDir, listDir, readText } from './fsread.js';

export interface LayerRecord {
  /** `sha256:<chainID hex>` (the directory name) */
  chainId: string;
  dir: string;
  diffId: string | undefined;
  /** From `size` (dockerd parses it untrimmed: "5\n" is an error). */
  size: number | undefined;
  cacheId: string | undefined;
  parent: string | undefined;
  tarSplit: boolean;
  /** The driver directory of the cache-id (overlay2/<id>, vfs/dir/<id>). */
  driverDir: string | undefined;
  driverDirExists: boolean;
  problems: Problem[];
}

export function driverDirOf(L: Layout, driver: string, cacheId: string): string {
  return driver === 'vfs' ? join(L.driverHome('vfs'), 'dir', cacheId) : join(L.driverHome(driver), cacheId);
}

export function readLayer(L: Layout, driver: string, hex: string): LayerRecord {
  const dir = join(L.layerDbDir(driver), hex);
  const problems: Problem[] = [];
  const diffRaw = readText(join(dir, 'diff'));
  const diffId = diffRaw?.trim();
  if (diffRaw === undefined) problems.push(problem('LAYER_METADATA_INVALID', 'diff is missing: dockerd skips this layer and every layer and image above it', join(dir, 'diff')));
  else if (!DIGEST_RE.test(diffId!)) problems.push(problem('LAYER_METADATA_INVALID', `diff is not a sha256 digest: ${JSON.stringify(diffRaw)}`, join(dir, 'diff')));
  const sizeRaw = readText(join(dir, 'size'));
  let size: number | undefined;
  if (sizeRaw === undefined) problems.push(problem('LAYER_METADATA_INVALID', 'size is missing: dockerd skips this layer', join(dir, 'size')));
  else if (!/^-?\d+$/.test(sizeRaw)) problems.push(problem('LAYER_METADATA_INVALID', `size ${JSON.stringify(sizeRaw)} is not a plain decimal (dockerd does not trim it): the layer is skipped`, join(dir, 'size')));
  else size = Number(sizeRaw);
  const cacheRaw = readText(join(dir, 'cache-id'));
  const cacheId = cacheRaw?.trim();
  if (cacheRaw === undefined || cacheId === '') problems.push(problem('LAYER_METADATA_INVALID', 'cache-id is missing or empty: dockerd skips this layer', join(dir, 'cache-id')));
  const parentRaw = readText(join(dir, 'parent'));
  const parent = parentRaw?.trim();
  if (parentRaw !== undefined && !DIGEST_RE.test(parent!)) problems.push(problem('LAYER_METADATA_INVALID', `parent is not a sha256 digest: ${JSON.stringify(parentRaw)}`, join(dir, 'parent')));
  const driverDir = cacheId ? driverDirOf(L, driver, cacheId) : undefined;
  return {
    chainId: `sha256:${hex}`,
    dir,
    diffId: diffId !== undefined && DIGEST_RE.test(diffId) ? diffId : undefined,
    size,
    cacheId: cacheId || undefined,
    parent: parent !== undefined && DIGEST_RE.test(parent) ? parent : undefined,
    tarSplit: exists(join(dir, 'tar-split.json.gz')),
    driverDir,
    driverDirExists: driverDir !== undefined && isDir(driverDir),
    problems,
  };
}

/** Layers dockerd would try to load (64-hex directory names); other names are staging leftovers. */
export function readLayers(L: Layout, driver: string): { layers: LayerRecord[]; other: string[] } {
  const names = listDir(L.layerDbDir(driver));
  return { layers: names.filter((n) => HEX64.test(n)).map((h) => readLayer(L, driver, h)), other: names.filter((n) => !HEX64.test(n)) };
}

/** The chainID a layer's own metadata implies: sha256(parent + " " + diff), or diff for a base layer. */
export function expectedChainId(l: LayerRecord): string | undefined {
  if (l.diffId === undefined) return undefined;
  return l.parent === undefined ? l.diffId : sha256Digest(encodeUtf8(`${l.parent} ${l.diffId}`));
}

export interface MountRecord {
  containerId: string;
  mountId: string | undefined;
  initId: string | undefined;
  /** chainID of the image's top layer. */
  parent: string | undefined;
  problems: Problem[];
}

export function readMounts(L: Layout, driver: string): MountRecord[] {
  return listDir(L.mountsDir(driver)).map((cid) => {
    const dir = join(L.mountsDir(driver), cid);
    const problems: Problem[] = [];
    const mountId = readText(join(dir, 'mount-id'))?.trim();
    if (mountId === undefined || !/^[a-f0-9]{64}(-init)?$/.test(mountId)) problems.push(problem('MOUNT_INVALID', 'mount-id is missing or not 64 hex', join(dir, 'mount-id')));
    return {
      containerId: cid,
      mountId,
      initId: readText(join(dir, 'init-id'))?.trim(),
      parent: readText(join(dir, 'parent'))?.trim(),
      problems,
    };
  });
}

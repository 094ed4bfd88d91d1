import { DIGEST_RE, sha256Digest } from '../formats/digest/digest.js';
import { encodeUtf8 } from '../formats/bytes.js';
import { LIMITS, type Confined } from '../io/confined.js';
import type { DriverAdapter } from './drivers.js';
import { MOUNT_ID } from './ids.js';
import { HEX64, LAYOUT as L } from './layout.js';
import { problem, type Problem } from './problems.js';
import { metaText } from './fsread.js';

export interface LayerRecord {
  /** `sha256:<chainID hex>` (the directory name) */
  chainId: string;
  /** layerdb/sha256/<hex>, relative to the root. */
  dir: string;
  diffId: string | undefined;
  /** From `size` (dockerd parses it untrimmed: "5\n" is an error). */
  size: number | undefined;
  /** The cache-id, only when it is a valid id (else a problem says what it was). */
  cacheId: string | undefined;
  parent: string | undefined;
  tarSplit: boolean;
  /** The driver directory of the cache-id (overlay2/<id>, vfs/dir/<id>), relative to the root. */
  driverDir: string | undefined;
  driverDirExists: boolean;
  problems: Problem[];
}

export function readLayer(fs: Confined, driver: string, adapter: DriverAdapter, hex: string): LayerRecord {
  const dir = `${L.layerDbDir(driver)}/${hex}`;
  const problems: Problem[] = [];
  const text = (name: string): string | undefined => metaText(fs, `${dir}/${name}`, LIMITS.meta, problems);
  const diffRaw = text('diff');
  const diffId = diffRaw?.trim();
  if (diffRaw === undefined)
    problems.push(problem('LAYER_METADATA_INVALID', 'diff is missing: dockerd skips this layer and every layer and image above it', `${dir}/diff`));
  else if (!DIGEST_RE.test(diffId!))
    problems.push(problem('LAYER_METADATA_INVALID', `diff is not a sha256 digest: ${JSON.stringify(diffRaw.slice(0, 100))}`, `${dir}/diff`));
  const sizeRaw = text('size');
  let size: number | undefined;
  if (sizeRaw === undefined) problems.push(problem('LAYER_METADATA_INVALID', 'size is missing: dockerd skips this layer', `${dir}/size`));
  else if (!/^-?\d{1,18}$/.test(sizeRaw))
    problems.push(
      problem(
        'LAYER_METADATA_INVALID',
        `size ${JSON.stringify(sizeRaw.slice(0, 100))} is not a plain decimal (dockerd does not trim it): the layer is skipped`,
        `${dir}/size`,
      ),
    );
  else size = Number(sizeRaw);
  const cacheRaw = text('cache-id');
  const cacheTrim = cacheRaw?.trim();
  let cacheId: string | undefined;
  if (cacheRaw === undefined || cacheTrim === '')
    problems.push(problem('LAYER_METADATA_INVALID', 'cache-id is missing or empty: dockerd skips this layer', `${dir}/cache-id`));
  else if (!MOUNT_ID.test(cacheTrim!)) {
    problems.push(
      problem('ID_INVALID', `cache-id ${JSON.stringify(cacheTrim!.slice(0, 100))} is not a layer id (64 hex): it is never used as a path`, `${dir}/cache-id`),
    );
  } else cacheId = cacheTrim;
  const parentRaw = text('parent');
  const parent = parentRaw?.trim();
  if (parentRaw !== undefined && !DIGEST_RE.test(parent!))
    problems.push(problem('LAYER_METADATA_INVALID', `parent is not a sha256 digest: ${JSON.stringify(parentRaw.slice(0, 100))}`, `${dir}/parent`));
  const driverDir = cacheId !== undefined ? adapter.layerDir(cacheId) : undefined;
  const tsKind = fs.kind(`${dir}/tar-split.json.gz`);
  if (tsKind !== 'missing' && tsKind !== 'file')
    problems.push(
      problem(tsKind === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'FILE_NOT_REGULAR', `tar-split.json.gz is a ${tsKind}, not a file`, `${dir}/tar-split.json.gz`),
    );
  let driverDirExists = false;
  if (driverDir !== undefined) {
    const k = fs.kind(driverDir);
    driverDirExists = k === adapter.layerDirKind;
    if (k !== adapter.layerDirKind && k !== 'missing')
      problems.push(
        problem(
          k === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'PATH_NOT_A_DIRECTORY',
          `the driver's entry ${driverDir} is a ${k}, not a ${adapter.layerDirKind === 'dir' ? 'directory' : 'file'}: it is not followed`,
          driverDir,
        ),
      );
  }
  return {
    chainId: `sha256:${hex}`,
    dir,
    diffId: diffId !== undefined && DIGEST_RE.test(diffId) ? diffId : undefined,
    size,
    cacheId,
    parent: parent !== undefined && DIGEST_RE.test(parent) ? parent : undefined,
    tarSplit: tsKind === 'file',
    driverDir,
    driverDirExists,
    problems,
  };
}

/** Layers dockerd would try to load (64-hex directory names); other names are staging leftovers. */
export function readLayers(fs: Confined, driver: string, adapter: DriverAdapter): { layers: LayerRecord[]; other: string[] } {
  const names = fs.names(L.layerDbDir(driver));
  return { layers: names.filter((n) => HEX64.test(n)).map((h) => readLayer(fs, driver, adapter, h)), other: names.filter((n) => !HEX64.test(n)) };
}

/** The chainID a layer's own metadata implies: sha256(parent + " " + diff), or diff for a base layer. */
export function expectedChainId(l: LayerRecord): string | undefined {
  if (l.diffId === undefined) return undefined;
  return l.parent === undefined ? l.diffId : sha256Digest(encodeUtf8(`${l.parent} ${l.diffId}`));
}

export interface MountRecord {
  containerId: string;
  /** Valid ids only (a problem names what an invalid file held). */
  mountId: string | undefined;
  initId: string | undefined;
  /** chainID of the image's top layer. */
  parent: string | undefined;
  problems: Problem[];
}

export function readMounts(fs: Confined, driver: string): MountRecord[] {
  return fs.names(L.mountsDir(driver)).map((cid) => {
    const dir = `${L.mountsDir(driver)}/${cid}`;
    const problems: Problem[] = [];
    const text = (name: string): string | undefined => metaText(fs, `${dir}/${name}`, LIMITS.meta, problems)?.trim();
    const rawMount = text('mount-id');
    let mountId: string | undefined;
    if (rawMount === undefined) problems.push(problem('MOUNT_INVALID', 'mount-id is missing', `${dir}/mount-id`));
    else if (!MOUNT_ID.test(rawMount))
      problems.push(
        problem('ID_INVALID', `mount-id ${JSON.stringify(rawMount.slice(0, 100))} is not a layer id (64 hex): it is never used as a path`, `${dir}/mount-id`),
      );
    else mountId = rawMount;
    const rawInit = text('init-id');
    let initId: string | undefined;
    if (rawInit !== undefined) {
      if (MOUNT_ID.test(rawInit)) initId = rawInit;
      else
        problems.push(
          problem('ID_INVALID', `init-id ${JSON.stringify(rawInit.slice(0, 100))} is not a layer id: it is never used as a path`, `${dir}/init-id`),
        );
    }
    const parentRaw = text('parent');
    return {
      containerId: cid,
      mountId,
      initId,
      parent: parentRaw !== undefined && DIGEST_RE.test(parentRaw) ? parentRaw : undefined,
      problems,
    };
  });
}

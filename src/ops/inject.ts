import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chainIds, sha256Digest, DIGEST_RE } from '../formats/digest/digest.js';
import { DatarootError } from '../formats/errors.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { TarReader } from '../formats/tar/reader.js';
import { disassemble } from '../formats/tarsplit/stream.js';
import { LayerExtractor } from '../io/extract.js';
import { HashingStream } from '../io/streams.js';
import { removeOnExit, trackStaging } from '../io/cleanup.js';
import { filesSource, openImageArchive, openLayer, type ArchiveImage, type ArchiveLayer, type ArchiveSource } from '../store/archive.js';
import type { ImageConfig } from '../store/images.js';
import type { Store } from '../store/model.js';
import { layerWriter, type LayerWriter, type ParentLayer } from '../store/layerwrite.js';
import {
  commitLayer,
  DirTimes,
  familiarTag,
  mergeTags,
  newCacheId,
  newLinkId,
  readRepositoriesForWrite,
  removeStaging,
  validateTarget,
  writeImageConfig,
  writeLastUpdated,
} from '../store/write.js';

/** The steps of the recipe, in order; a test hook can stop the process at any of them. */
/** overlay2 layers extracted at once. */
const PARALLEL_LAYERS = 3;

export const INJECT_STEPS = [
  'layer-extracted',
  'layer-dir',
  'layer-linked',
  'layerdb-staged',
  'layerdb-committed',
  'config-written',
  'metadata-written',
  'repositories-written',
] as const;
export type InjectStep = (typeof INJECT_STEPS)[number];

export interface InjectOptions {
  sources: string[];
  /** Hand-made image: a config file (its exact bytes) and layer tars in order. */
  config?: string;
  layers?: string[];
  tags: string[];
  platform?: string;
  /** Read an archive that is both an OCI layout and a docker save as OCI (containerd's importer does). */
  preferOci?: boolean;
  dryRun: boolean;
  /** Decompression bounds per layer (decompression bombs). */
  maxRatio: number;
  maxBytes: number;
  onProgress?: (p: { layer: number; layers: number; bytes: number; totalBytes: number }) => void;
  /** Called at each step of the recipe (tests stop the process there). */
  onStep?: (step: InjectStep) => void | Promise<void>;
}

export interface InjectedLayer {
  diffId: string;
  chainId: string;
  action: 'write' | 'reuse';
  cacheId?: string;
  size?: number;
}

export interface InjectedImage {
  id: string;
  source: string;
  tags: string[];
  layers: InjectedLayer[];
  configWritten: boolean;
  warnings: string[];
}

export interface InjectResult {
  root: string;
  driver: string;
  dryRun: boolean;
  images: InjectedImage[];
  layersWritten: number;
  layersReused: number;
  bytesRead: number;
  tagsChanged: string[];
}

export interface Planned {
  img: ArchiveImage;
  source: ArchiveSource;
  sourceName: string;
  tags: string[];
  warnings: string[];
}

interface LayerJob {
  chainId: string;
  diffId: string;
  parent: string | undefined;
  layer: ArchiveLayer;
  source: ArchiveSource;
  cacheId: string;
  link: string;
  staging: string;
  size: number;
  tarSplit: Uint8Array;
}

/** Reads the images of every source: archives, OCI layouts, or a hand-made config with layer tars. */
async function loadSources(o: InjectOptions, work: string): Promise<Planned[]> {
  const planned: Planned[] = [];
  for (const [i, source] of o.sources.entries()) {
    const dir = join(work, `src-${i}`);
    mkdirSync(dir);
    const { path: src, ref } = splitSource(source);
    const a = await openImageArchive(src, {
      workDir: dir,
      ...(o.platform !== undefined ? { platform: o.platform } : {}),
      ...(o.preferOci === true ? { preferOci: true } : {}),
    });
    if (ref !== undefined) {
      a.images = a.images.filter((img) => img.repoTags.some((t) => t === ref || t === `:${ref}` || sameTag(t, ref)));
      if (a.images.length === 0) throw new DatarootError('ARCHIVE_IMAGE_NOT_FOUND', `${src} has no image named ${ref}`, { file: src });
    }
    const refusals = a.problems.filter((p) => p.code !== 'ARCHIVE_PLATFORM_MISSING');
    if (refusals.length > 0) throw new DatarootError(refusals[0]!.code, `${src}: ${refusals[0]!.message}`, { file: src });
    if (a.images.length === 0)
      throw new DatarootError('ARCHIVE_NO_IMAGES', `${src} holds no image${a.problems[0] !== undefined ? ` (${a.problems[0].message})` : ''}`, { file: src });
    for (const img of a.images) planned.push({ img, source: a.source, sourceName: src, tags: [], warnings: [] });
  }
  if (o.config !== undefined) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(o.config);
    } catch (e) {
      throw new DatarootError('USAGE_CONFIG_UNREADABLE', `cannot read ${o.config}: ${(e as Error).message}`, { file: o.config });
    }
    let config: ImageConfig;
    try {
      config = parseJsonBounded(bytes.toString('utf8')) as ImageConfig;
      if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error('not an object');
    } catch (e) {
      throw new DatarootError('ARCHIVE_CONFIG_INVALID', `${o.config} is not a JSON object (${(e as Error).message})`, { file: o.config });
    }
    if (config.rootfs === undefined || config.rootfs === null)
      throw new DatarootError('ARCHIVE_CONFIG_INVALID', `${o.config} has no rootfs: dockerd would reject it`, { file: o.config });
    const diffIds = (config.rootfs.diff_ids ?? []) as unknown;
    if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && DIGEST_RE.test(d)))
      throw new DatarootError('ARCHIVE_CONFIG_INVALID', `${o.config}: rootfs.diff_ids is not a list of sha256 digests`, { file: o.config });
    const files = new Map<string, string>();
    const layers = (o.layers ?? []).map((p, i) => {
      files.set(`layer-${i}`, p);
      return { member: `layer-${i}` };
    });
    for (const p of o.layers ?? []) if (!existsSync(p)) throw new DatarootError('USAGE_LAYER_MISSING', `layer ${p} does not exist`, { file: p });
    if (diffIds.length !== layers.length) {
      throw new DatarootError('ARCHIVE_LAYER_COUNT_MISMATCH', `${o.config} lists ${diffIds.length} diff_ids but ${layers.length} --layer files were given`, {
        file: o.config,
      });
    }
    const id = sha256Digest(bytes);
    planned.push({
      img: { label: id, configMember: o.config, configBytes: bytes, id, config, diffIds: diffIds as string[], repoTags: [], layers, problems: [] },
      source: filesSource(files),
      sourceName: o.config,
      tags: [],
      warnings: [],
    });
  }
  return planned;
}

/**
 * `PATH[:REF]`, as skopeo names an image inside a layout or archive: the longest prefix that
 * exists on disk is the path, the rest names the image (a tag or an OCI ref.name).
 */
export function splitSource(source: string): { path: string; ref?: string } {
  if (existsSync(source)) return { path: source };
  for (let i = source.indexOf(':'); i > 0; i = source.indexOf(':', i + 1)) {
    if (existsSync(source.slice(0, i))) return { path: source.slice(0, i), ref: source.slice(i + 1) };
  }
  return { path: source };
}

function sameTag(a: string, b: string): boolean {
  try {
    return familiarTag(a).key === familiarTag(b).key;
  } catch {
    return false;
  }
}

/**
 * The images of every source with their tags (loadSources, assignTags), refused before anything is
 * written when one has a problem or is not a Linux image (`notLinux` says what the daemon would do
 * with it).
 */
export async function loadInjectable(o: InjectOptions, work: string, notLinux: string): Promise<Planned[]> {
  const planned = await loadSources(o, work);
  assignTags(planned, o.tags);
  for (const p of planned) {
    const i = p.img;
    if (i.problems.length > 0) throw new DatarootError(i.problems[0]!.code, `${p.sourceName} (${i.label}): ${i.problems[0]!.message}`, { file: p.sourceName });
    const os = i.config?.os;
    if (os !== undefined && os !== '' && os !== 'linux') throw new DatarootError('ARCHIVE_OS_UNSUPPORTED', `${i.label} is a ${os} image: ${notLinux}`);
  }
  return planned;
}

/** Tags of each image: its own (familiar form) plus --tag (which needs exactly one image). */
function assignTags(planned: Planned[], extra: string[]): void {
  if (extra.length > 0 && planned.length !== 1)
    throw new DatarootError('USAGE_TAG_AMBIGUOUS', `--tag needs exactly one image, the sources hold ${planned.length}`);
  for (const p of planned) {
    for (const t of p.img.repoTags) {
      if (t.startsWith(':')) {
        if (extra.length === 0) p.warnings.push(`the layout names it only by the tag "${t.slice(1)}": injected untagged (give --tag name:tag)`);
        continue;
      }
      p.tags.push(familiarTag(t).key);
    }
    for (const t of extra) p.tags.push(familiarTag(t).key);
    p.tags = [...new Set(p.tags)];
  }
}

/**
 * `dataroot inject`: writes images, layers included, into a stopped daemon's store as dockerd
 * itself would (reference: "Injection recipe"). Every layer is extracted into a staging directory
 * while its tar-split stream is generated and its sha256 checked against the config's diffID; only
 * when every layer of every image checked out is anything renamed into place: driver directories,
 * links, layerdb entries, configs, metadata, and last repositories.json.
 */
export async function inject(store: Store, o: InjectOptions): Promise<InjectResult> {
  const fs = store.fs;
  const d = store.driver;
  const writer = layerWriter(d);
  // Every check of the target before the first write: store directories, the reference store.
  validateTarget(fs, d);
  readRepositoriesForWrite(fs, d);
  const work = mkdtempSync(join(tmpdir(), 'dataroot-inject-'));
  const dropWork = removeOnExit(work);
  try {
    const planned = await loadInjectable(o, work, 'dockerd on Linux would skip it');
    const { jobs, images } = planLayers(store, writer, planned);
    const result: InjectResult = {
      root: store.root.source,
      driver: d,
      dryRun: o.dryRun,
      images,
      layersWritten: jobs.size,
      layersReused: new Set(images.flatMap((i) => i.layers.filter((l) => l.action === 'reuse').map((l) => l.chainId))).size,
      bytesRead: 0,
      tagsChanged: [],
    };
    if (o.dryRun) {
      result.tagsChanged = planned.flatMap((p) => p.tags);
      for (const img of images) img.configWritten = !fs.exists(`${store.L.imageContentDir(d)}/${img.id.slice(7)}`);
      return result;
    }
    const times = rememberTimes(store, writer);
    const staging = await extractAll(store, writer, jobs, o, result, times);
    await commitAll(store, writer, jobs, o, staging, times);
    await writeImages(store, images, planned, o, result);
    return result;
  } finally {
    dropWork();
  }
}

/** Which layers exist (reused, checked loadable) and which must be written, each chain once. */
function planLayers(store: Store, writer: LayerWriter, planned: Planned[]): { jobs: Map<string, LayerJob>; images: InjectedImage[] } {
  const jobs = new Map<string, LayerJob>();
  const images: InjectedImage[] = [];
  for (const p of planned) {
    const chains = chainIds(p.img.diffIds);
    const layers: InjectedLayer[] = chains.map((chainId, k) => {
      const diffId = p.img.diffIds[k]!;
      const existing = store.layers.get(chainId);
      if (existing !== undefined) {
        if (!store.isLoadable(chainId) || !existing.driverDirExists || existing.cacheId === undefined) {
          throw new DatarootError(
            'STORE_LAYER_BROKEN',
            `layer ${chainId} is in the store but broken (${store.loadable.get(chainId) ?? 'its driver directory is missing'}): run dataroot verify, then dataroot gc`,
          );
        }
        return { diffId, chainId, action: 'reuse' as const, ...(existing.cacheId !== undefined ? { cacheId: existing.cacheId } : {}) };
      }
      if (!jobs.has(chainId)) {
        const cacheId = newCacheId();
        jobs.set(chainId, {
          chainId,
          diffId,
          parent: k === 0 ? undefined : chains[k - 1],
          layer: p.img.layers[k]!,
          source: p.source,
          cacheId,
          link: newLinkId(),
          staging: writer.staging(cacheId),
          size: 0,
          tarSplit: new Uint8Array(),
        });
      }
      return { diffId, chainId, action: 'write' as const, cacheId: jobs.get(chainId)!.cacheId };
    });
    images.push({ id: p.img.id, source: p.sourceName, tags: p.tags, layers, configWritten: false, warnings: p.warnings });
  }
  return { jobs, images };
}

/** The times of the directories a run adds entries to, put back when it fails. */
function rememberTimes(store: Store, writer: LayerWriter): DirTimes {
  const { L, driver: d } = store;
  const times = new DirTimes(store.fs);
  times.remember(
    dirOf(writer.final('x')),
    L.layerDbTmp(d),
    L.layerDbDir(d),
    `${L.driverHome(d)}/l`,
    `${L.driverHome(d)}/layers`,
    `${L.driverHome(d)}/mnt`,
    L.imageContentDir(d),
    L.imageMetadataDir(d),
    L.imageRoot(d),
  );
  return times;
}

/** Staging directories of a run, and how to stop their removal on a signal once they are committed. */
interface Staging {
  staged: string[];
  unregister: (() => void)[];
}

/**
 * Phase 1: every new layer extracted into its staging directory; nothing outside staging is
 * written. overlay2 layers are independent directories: several are extracted at once, so file
 * creation (the slow part, serialised per directory by the kernel) proceeds in several directory
 * trees together. vfs layers start from their parent's copy: one at a time. On a failure the
 * staging directories go and the directory times are put back.
 */
async function extractAll(
  store: Store,
  writer: LayerWriter,
  jobs: Map<string, LayerJob>,
  o: InjectOptions,
  result: InjectResult,
  times: DirTimes,
): Promise<Staging> {
  const fs = store.fs;
  const staging: Staging = { staged: [], unregister: [] };
  const totalBytes = [...jobs.values()].reduce((a, j) => a + (j.source.size(j.layer.member) ?? 0), 0);
  let n = 0;
  const queue = [...jobs.values()];
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      staging.staged.push(job.staging);
      // A signal mid-extraction removes the staging dir (the exit handler), not the root's content.
      const tracked = trackStaging(fs.abs(job.staging));
      staging.unregister.push(() => tracked.done());
      await extractLayer(store, writer, job, jobs, o, (bytes) => {
        result.bytesRead += bytes;
        o.onProgress?.({ layer: n, layers: jobs.size, bytes: result.bytesRead, totalBytes });
      });
      n++;
      await o.onStep?.('layer-extracted');
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: writer.parallel ? PARALLEL_LAYERS : 1 }, () => worker()));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    queue.length = 0;
    removeStaging(fs, staging.staged);
    times.restore();
    for (const u of staging.unregister) u();
    throw failed.reason;
  }
  // The files of each layer directory besides its tree (overlay2: link, lower of its parents' links, work).
  for (const job of jobs.values()) writer.finish(fs, job.staging, job.link, job.parent === undefined ? undefined : parentOf(store, writer, jobs, job.parent));
  return staging;
}

/**
 * Phase 2: each layer renamed into place, in the order of the recipe: its directory, its links,
 * its layerdb entry. On a failure what was staged or committed goes and the times are put back.
 */
async function commitAll(store: Store, writer: LayerWriter, jobs: Map<string, LayerJob>, o: InjectOptions, staging: Staging, times: DirTimes): Promise<void> {
  const { fs, L, driver: d } = store;
  const home = dirOf(writer.final('x'));
  const committed: string[] = [];
  try {
    for (const job of jobs.values()) {
      const final = writer.final(job.cacheId);
      fs.rename(job.staging, final);
      committed.push(final);
      fs.fsyncDir(home);
      await o.onStep?.('layer-dir');
      committed.push(...writer.attach(fs, job.cacheId, job.link, job.parent === undefined ? undefined : parentOf(store, writer, jobs, job.parent)));
      await o.onStep?.('layer-linked');
      commitLayer(
        fs,
        d,
        { chainId: job.chainId, diffId: job.diffId, size: job.size, cacheId: job.cacheId, parent: job.parent, tarSplit: job.tarSplit },
        { staged: () => void o.onStep?.('layerdb-staged') },
      );
      committed.push(`${L.layerDbDir(d)}/${job.chainId.slice(7)}`);
      await o.onStep?.('layerdb-committed');
    }
  } catch (e) {
    removeStaging(fs, [...staging.staged, ...committed]);
    times.restore();
    throw e;
  } finally {
    for (const u of staging.unregister) u();
  }
}

/** The images' configs, their lastUpdated metadata where a tag moves to them, then repositories.json. */
async function writeImages(store: Store, images: InjectedImage[], planned: Planned[], o: InjectOptions, result: InjectResult): Promise<void> {
  const { fs, driver: d } = store;
  for (const [k, img] of images.entries()) {
    img.configWritten = writeImageConfig(fs, d, img.id, planned[k]!.img.configBytes);
    await o.onStep?.('config-written');
  }
  const tags = images.flatMap((img) => img.tags.map((ref) => ({ ref, id: img.id })));
  const current = new Map(store.repositories.refs.map((r) => [r.familiar, r.id]));
  for (const img of images) {
    if (img.tags.some((t) => current.get(t) !== img.id)) writeLastUpdated(fs, d, img.id);
  }
  await o.onStep?.('metadata-written');
  result.tagsChanged = mergeTags(fs, d, tags);
  await o.onStep?.('repositories-written');
}

/** The cache-id of a chain: a layer of this run, or one already in the store. */
function cacheIdOf(store: Store, jobs: Map<string, LayerJob>, chainId: string): string {
  const j = jobs.get(chainId);
  if (j !== undefined) return j.cacheId;
  const c = store.layers.get(chainId)?.cacheId;
  if (c === undefined) throw new DatarootError('STORE_LAYER_BROKEN', `layer ${chainId} has no cache-id`);
  return c;
}

/** A parent layer: one of this run (in staging, or renamed into place) or one already in the store. */
function parentOf(store: Store, writer: LayerWriter, jobs: Map<string, LayerJob>, chainId: string): ParentLayer {
  const j = jobs.get(chainId);
  if (j !== undefined) {
    const top = store.fs.exists(j.staging) ? j.staging : writer.final(j.cacheId);
    const grand = j.parent === undefined ? undefined : parentOf(store, writer, jobs, j.parent);
    const lower = grand === undefined ? '' : grand.lower === '' ? `l/${grand.link}` : `l/${grand.link}:${grand.lower}`;
    return {
      cacheId: j.cacheId,
      content: writer.contentOf(top),
      link: j.link,
      lower,
      ancestors: grand === undefined ? [] : [grand.cacheId, ...grand.ancestors],
    };
  }
  return writer.parentOf(store.fs, cacheIdOf(store, jobs, chainId), chainId);
}

/** The directory part of a relative path. */
function dirOf(rel: string): string {
  return rel.slice(0, rel.lastIndexOf('/'));
}

/**
 * One layer into its staging directory: decompressed (bounded), hashed, its tar-split stream
 * generated and every entry applied (overlay2: into diff/ with whiteouts converted; vfs: over a
 * copy of the parent with whiteouts executed). The sha256 must be the config's diffID.
 */
async function extractLayer(
  store: Store,
  writer: LayerWriter,
  job: LayerJob,
  jobs: Map<string, LayerJob>,
  o: InjectOptions,
  read: (bytes: number) => void,
): Promise<void> {
  const parent = job.parent === undefined || writer.parallel ? undefined : parentOf(store, writer, jobs, job.parent);
  const { target, existing } = writer.prepare(store.fs, job.staging, parent);
  const { stream } = await openLayer(job.source, job.layer, { maxRatio: o.maxRatio, maxBytes: o.maxBytes, tap: (c) => read(c.length) });
  const hashing = new HashingStream(stream);
  const extractor = new LayerExtractor(target, writer.whiteouts, existing);
  const lines: string[] = [];
  try {
    await disassemble(
      new TarReader(hashing),
      (l) => lines.push(l),
      (e, data) => extractor.apply(e, data),
    );
    await extractor.finish();
  } catch (e) {
    await extractor.abort();
    if (e instanceof DatarootError) {
      const code = e.code.startsWith('TAR_') ? (e.code === 'TAR_DUPLICATE_PATH' ? 'ARCHIVE_DUPLICATE_ENTRY' : 'ARCHIVE_LAYER_INVALID') : e.code;
      throw new DatarootError(code, `layer ${job.layer.member} (${job.diffId}): ${e.message}`, e.details);
    }
    throw e;
  }
  const got = hashing.digest();
  if (got !== job.diffId)
    throw new DatarootError(
      'ARCHIVE_DIFFID_MISMATCH',
      `layer ${job.layer.member} has sha256 ${got}, but the config says ${job.diffId}: refused (docker load refuses it too)`,
    );
  job.tarSplit = gzipSync(Buffer.from(lines.join('')));
  job.size = writer.size(extractor);
}

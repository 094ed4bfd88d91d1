import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { buildConfig, configBytes, diffIdsOf, parseConfigFile, rfc3339, type ConfigSpec } from '../formats/docker/imageconfig.js';
import { DatarootError } from '../formats/errors.js';
import { copyLayerTar, writeLayerTar, type LayerSource } from '../io/layertar.js';
import { fileChunks } from '../io/streams.js';
import { gzipFile } from '../io/tarout.js';
import { MT, writeImageArchive, type OutLayer, type WrittenArchive } from './archivewrite.js';
import { removeTree } from '../io/confined.js';

/**
 * `dataroot pack`: image archives from files, directories and layer tars, without a daemon.
 * Every layer is built into a private directory beside the output, deduplicated by diffID (two
 * images built on the same base store it once), then the archive is written and renamed into
 * place; on any error nothing is left behind.
 */

export type LayerSpec = { kind: 'files'; sources: LayerSource[] } | { kind: 'tar'; path: string };

/** The image-config flags (everything but the layers, times and history). */
export type ConfigFlags = Omit<ConfigSpec, 'diffIds' | 'history' | 'created'>;

export interface PackImage {
  layers: LayerSpec[];
  tags: string[];
  /** A config given verbatim (its bytes are the image ID); excludes the config flags. */
  configFile?: string;
  config: ConfigFlags;
  /** `--history` values: created_by of layer 1, 2, … */
  history: string[];
}

export interface PackOptions {
  out: string;
  format: 'docker' | 'oci';
  gzip: boolean;
  /** Seconds since the epoch for every file and for the config's created time. */
  mtime: number;
  keepOwner: boolean;
  images: PackImage[];
  maxBytes: number;
  maxRatio: number;
}

export interface PackResult extends WrittenArchive {
  warnings: string[];
}

interface BuiltLayer extends OutLayer {
  path: string;
}

/** A layer's default history line: what went where, without host paths (they would vary). */
function createdBy(spec: LayerSpec): string {
  if (spec.kind === 'tar') return `dataroot pack --layer-tar ${basename(spec.path)}`;
  return `dataroot pack --layer ${spec.sources.map((s) => s.dest).join(' ')}`;
}

export async function pack(o: PackOptions): Promise<PackResult> {
  if (o.images.length === 0) throw new DatarootError('USAGE_NO_IMAGE', 'nothing to pack: give --layer, --layer-tar or --config-file');
  const work = mkdtempSync(join(dirname(o.out), '.dataroot-pack-'));
  const warnings: string[] = [];
  try {
    const byDiffId = new Map<string, BuiltLayer>();
    let n = 0;
    const build = async (spec: LayerSpec): Promise<BuiltLayer> => {
      const tar = join(work, `layer-${n++}.tar`);
      let diffId: string;
      let size: number;
      if (spec.kind === 'files') {
        const r = await writeLayerTar(spec.sources, tar, { mtime: o.mtime, keepOwner: o.keepOwner });
        warnings.push(...r.warnings);
        diffId = r.diffId;
        size = r.size;
      } else {
        const r = await copyLayerTar(spec.path, tar, { maxBytes: o.maxBytes, maxRatio: o.maxRatio });
        diffId = r.diffId;
        size = r.size;
      }
      const known = byDiffId.get(diffId);
      if (known !== undefined) {
        rmSync(tar, { force: true });
        return known;
      }
      let layer: BuiltLayer;
      if (o.gzip) {
        const gz = `${tar}.gz`;
        const g = await gzipFile(tar, gz);
        rmSync(tar, { force: true });
        layer = { diffId, digest: g.digest, size: g.size, mediaType: MT.layerGzip, path: gz, open: () => fileChunks(gz) };
      } else layer = { diffId, digest: diffId, size, mediaType: MT.layer, path: tar, open: () => fileChunks(tar) };
      byDiffId.set(diffId, layer);
      return layer;
    };
    const images = [];
    for (const [i, img] of o.images.entries()) {
      const what = o.images.length > 1 ? `image ${i + 1}: ` : '';
      if (img.history.length > img.layers.length)
        throw new DatarootError('USAGE_TOO_MANY_HISTORY', `${what}${img.history.length} --history values for ${img.layers.length} layers`);
      const layers: BuiltLayer[] = [];
      for (const spec of img.layers) layers.push(await build(spec));
      const diffIds = layers.map((l) => l.diffId);
      let config: Buffer;
      if (img.configFile !== undefined) {
        try {
          config = readFileSync(img.configFile);
        } catch {
          throw new DatarootError('PACK_SOURCE_MISSING', `${what}--config-file ${img.configFile}: no such file`, { file: img.configFile });
        }
        const doc = parseConfigFile(config, img.configFile);
        const want = diffIdsOf(doc);
        if (want.length !== diffIds.length || want.some((d, k) => d !== diffIds[k])) {
          throw new DatarootError(
            'PACK_CONFIG_MISMATCH',
            `${what}${img.configFile} lists diff_ids [${want.join(', ')}] but the layers given are [${diffIds.join(', ')}]: docker load would refuse the image`,
            { file: img.configFile },
          );
        }
      } else {
        const history = img.layers.map((spec, k) => img.history[k] ?? createdBy(spec));
        config = Buffer.from(configBytes(buildConfig({ ...img.config, created: rfc3339(o.mtime), history, diffIds })));
      }
      images.push({ config, layers, tags: img.tags });
    }
    const r = await writeImageArchive(o.out, images, o.format, o.mtime);
    return { ...r, warnings };
  } finally {
    removeTree(work);
  }
}

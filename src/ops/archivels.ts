import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TarReader } from '../formats/tar/reader.js';
import { DatarootError } from '../formats/errors.js';
import { openImageArchive, openLayer } from '../store/archive.js';
import type { Problem } from '../store/problems.js';
import { removeTree } from '../io/confined.js';

/**
 * `dataroot inspect-archive` (`archive ls`): what an image archive holds: its layout (docker
 * save, OCI, or both), and per image the ID, tags, config summary, and each layer's diffID, blob,
 * sizes and number of entries; each layer is read once, and its sha256 checked against the
 * config's diffID.
 */

export interface ArchiveLayerInfo {
  diffId: string | undefined;
  member: string;
  mediaType?: string;
  compression: string;
  /** Bytes of the blob in the archive. */
  blobSize: number | undefined;
  /** Bytes of the uncompressed tar. */
  size: number | undefined;
  entries: number | undefined;
  /** The sha256 of the uncompressed tar equals the diffID. */
  verified: boolean;
  error?: string;
}

export interface ArchiveImageInfo {
  id: string;
  tags: string[];
  manifestDigest?: string;
  platform?: string;
  created?: string;
  architecture?: string;
  os?: string;
  config: Record<string, unknown>;
  history: number;
  layers: ArchiveLayerInfo[];
  problems: Problem[];
}

export interface ArchiveInfo {
  path: string;
  layouts: string[];
  images: ArchiveImageInfo[];
  problems: Problem[];
}

const SUMMARY = ['Entrypoint', 'Cmd', 'Env', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'StopSignal'];

export async function inspectArchive(path: string, o: { maxBytes: number; maxRatio: number; layers: boolean }): Promise<ArchiveInfo> {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-archive-'));
  try {
    const a = await openImageArchive(path, { workDir: work });
    const layouts = [a.source.has('manifest.json') ? 'docker-save' : undefined, a.source.has('index.json') ? 'oci' : undefined].filter(
      (x): x is string => x !== undefined,
    );
    const images: ArchiveImageInfo[] = [];
    for (const img of a.images) {
      const c = img.config?.config ?? {};
      const layers: ArchiveLayerInfo[] = [];
      for (const [k, l] of img.layers.entries()) {
        const info: ArchiveLayerInfo = {
          diffId: img.diffIds[k],
          member: l.member,
          compression: 'none',
          blobSize: a.source.size(l.member),
          size: undefined,
          entries: undefined,
          verified: false,
        };
        if (l.mediaType !== undefined) info.mediaType = l.mediaType;
        if (o.layers && a.source.has(l.member)) {
          try {
            const { compression, stream } = await openLayer(a.source, l, { maxBytes: o.maxBytes, maxRatio: o.maxRatio });
            info.compression = compression;
            const h = createHash('sha256');
            let size = 0;
            const tee = (async function* () {
              for await (const ch of stream) {
                h.update(ch);
                size += ch.length;
                yield ch;
              }
            })();
            const tr = new TarReader(tee);
            let entries = 0;
            for (let e = await tr.next(); e !== undefined; e = await tr.next()) {
              entries++;
              for await (const _ of tr.data()) {
                /* hashed by the tee */
              }
            }
            for await (const _ of tee) {
              /* trailing bytes */
            }
            info.size = size;
            info.entries = entries;
            const got = `sha256:${h.digest('hex')}`;
            info.verified = got === info.diffId;
            if (!info.verified) info.error = `the uncompressed layer's sha256 is ${got}, not the config's diffID`;
          } catch (e) {
            if (!(e instanceof DatarootError)) throw e;
            info.error = e.message;
          }
        }
        layers.push(info);
      }
      const ii: ArchiveImageInfo = {
        id: img.id,
        tags: img.repoTags,
        config: Object.fromEntries(SUMMARY.filter((k) => c[k] !== undefined && c[k] !== null).map((k) => [k, c[k]])),
        history: Array.isArray(img.config?.history) ? img.config.history.length : 0,
        layers,
        problems: img.problems,
      };
      if (img.manifestDigest !== undefined) ii.manifestDigest = img.manifestDigest;
      if (img.platform !== undefined) ii.platform = img.platform;
      if (img.config?.created !== undefined) ii.created = img.config.created;
      if (img.config?.architecture !== undefined) ii.architecture = img.config.architecture;
      if (img.config?.os !== undefined) ii.os = img.config.os;
      images.push(ii);
    }
    return { path, layouts, images, problems: a.problems };
  } finally {
    removeTree(work);
  }
}

import { renameSync, rmSync } from 'node:fs';
import { sha256Digest } from '../formats/digest/digest.js';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { TYPE } from '../formats/tar/header.js';
import { TarFileWriter } from '../io/tarout.js';

/**
 * Writes image archives, reproducibly: the members sorted by name, each with mode 0644 (0755 for
 * directories), owner 0:0 and one mtime; JSON documents in a fixed key order.
 *
 *   docker  the `docker save` layout of Docker before 25: <config hex>.json, <blob hex>/layer.tar,
 *           manifest.json (Config, RepoTags, Layers)
 *   oci     an OCI image layout: oci-layout, index.json (one descriptor per tag, named as
 *           containerd and docker save name them), blobs/sha256/<hex>; plus a manifest.json
 *           pointing at the blobs, so that Docker (20.10 and 25+) loads it with its tags
 */

export const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface OutLayer {
  diffId: string;
  /** sha256 and size of the stored blob (the same as the diffID for an uncompressed layer). */
  digest: string;
  size: number;
  mediaType: string;
  /** The blob's bytes. */
  open(): AsyncIterable<Uint8Array>;
}

export interface OutImage {
  /** Exact config bytes (the image ID is their sha256). */
  config: Buffer;
  layers: OutLayer[];
  /** Familiar references (`name:tag`). */
  tags: string[];
}

export interface WrittenImage {
  id: string;
  tags: string[];
  manifestDigest?: string;
  layers: { diffId: string; digest: string; size: number; mediaType: string }[];
}

export interface WrittenArchive {
  path: string;
  format: 'docker' | 'oci';
  digest: string;
  size: number;
  images: WrittenImage[];
}

/** Go's json.Marshal escapes <, > and & (and U+2028/2029) in strings; dockerd's JSON does too. */
export function goJson(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const te = new TextEncoder();

interface Member {
  name: string;
  dir?: boolean;
  bytes?: Uint8Array;
  layer?: OutLayer;
}

function hex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** A tag as index.json names it: `docker.io/library/hello:1`, and its ref.name: `1`. */
function ociNames(tag: string): { full: string; ref: string } {
  const r = parseReference(tag);
  if (r === undefined || r.digest !== undefined) throw new DatarootError('USAGE_BAD_TAG', `${JSON.stringify(tag)} is not a name:tag reference`);
  return { full: r.normalized.includes(':') && r.tag !== undefined ? r.normalized : `${r.normalized}:latest`, ref: r.tag ?? 'latest' };
}

function familiar(tag: string): string {
  const r = parseReference(tag);
  if (r === undefined || r.digest !== undefined) throw new DatarootError('USAGE_BAD_TAG', `${JSON.stringify(tag)} is not a name:tag reference`);
  return `${r.name}:${r.tag ?? 'latest'}`;
}

/**
 * Writes the archive to `out` through a temporary file beside it (renamed at the end; removed on
 * failure, so a failed write leaves nothing behind).
 */
export async function writeImageArchive(out: string, images: OutImage[], format: 'docker' | 'oci', mtime: number): Promise<WrittenArchive> {
  const members = new Map<string, Member>();
  const put = (m: Member): void => {
    if (!members.has(m.name)) members.set(m.name, m);
  };
  const written: WrittenImage[] = [];
  const manifestJson: unknown[] = [];
  const indexManifests: unknown[] = [];
  for (const img of images) {
    const id = sha256Digest(img.config);
    const tags = img.tags.map(familiar);
    const w: WrittenImage = { id, tags, layers: img.layers.map((l) => ({ diffId: l.diffId, digest: l.digest, size: l.size, mediaType: l.mediaType })) };
    if (format === 'docker') {
      put({ name: `${hex(id)}.json`, bytes: img.config });
      for (const l of img.layers) {
        put({ name: `${hex(l.digest)}/`, dir: true });
        put({ name: `${hex(l.digest)}/layer.tar`, layer: l });
      }
      manifestJson.push({ Config: `${hex(id)}.json`, RepoTags: tags.length > 0 ? tags : null, Layers: img.layers.map((l) => `${hex(l.digest)}/layer.tar`) });
    } else {
      put({ name: 'blobs/', dir: true });
      put({ name: 'blobs/sha256/', dir: true });
      put({ name: `blobs/sha256/${hex(id)}`, bytes: img.config });
      for (const l of img.layers) put({ name: `blobs/sha256/${hex(l.digest)}`, layer: l });
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT.manifest,
          config: { mediaType: MT.config, digest: id, size: img.config.length },
          layers: img.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
        }),
      );
      const md = sha256Digest(manifest);
      w.manifestDigest = md;
      put({ name: `blobs/sha256/${hex(md)}`, bytes: manifest });
      const desc = { mediaType: MT.manifest, digest: md, size: manifest.length };
      if (tags.length === 0) indexManifests.push(desc);
      for (const t of tags) {
        const n = ociNames(t);
        indexManifests.push({ ...desc, annotations: { 'io.containerd.image.name': n.full, 'org.opencontainers.image.ref.name': n.ref } });
      }
      manifestJson.push({
        Config: `blobs/sha256/${hex(id)}`,
        RepoTags: tags.length > 0 ? tags : null,
        Layers: img.layers.map((l) => `blobs/sha256/${hex(l.digest)}`),
      });
    }
    written.push(w);
  }
  put({ name: 'manifest.json', bytes: Buffer.from(goJson(manifestJson)) });
  if (format === 'oci') {
    put({ name: 'oci-layout', bytes: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) });
    put({ name: 'index.json', bytes: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: indexManifests })) });
  }
  const tmp = `${out}.dataroot-tmp-${process.pid}`;
  const w = new TarFileWriter(tmp);
  try {
    for (const name of [...members.keys()].sort()) {
      const m = members.get(name)!;
      const base = { name: te.encode(name), uid: 0, gid: 0, mtime };
      if (m.dir === true) await w.add({ ...base, mode: 0o755, size: 0, type: TYPE.DIR });
      else if (m.bytes !== undefined) await w.add({ ...base, mode: 0o644, size: m.bytes.length, type: TYPE.REG }, m.bytes);
      else await w.add({ ...base, mode: 0o644, size: m.layer!.size, type: TYPE.REG }, m.layer!.open());
    }
    const r = w.finish();
    renameSync(tmp, out);
    return { path: out, format, digest: r.digest, size: r.size, images: written };
  } catch (e) {
    w.abort();
    rmSync(tmp, { force: true });
    if (e instanceof DatarootError) throw e;
    throw new DatarootError('ARCHIVE_WRITE_FAILED', `writing ${out} failed: ${(e as Error).message}`, { file: out });
  }
}

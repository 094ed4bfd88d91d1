/**
 * containerd's meta.db records as BoltDB edits (pure): what containerd's metadata package writes
 * for a content blob (content.go: `v1/<ns>/content/blob/<digest>/{createdat, updatedat, size,
 * labels/}`) and for an image (images.go: `v1/<ns>/images/<name>/{createdat, updatedat,
 * target/{digest, mediatype, size}, annotations/, labels/}`). Labels and annotations buckets are
 * written only when not empty, as boltutil.WriteLabels/WriteAnnotations do.
 */
import type { BoltEdit } from '../bolt/edit.js';
import { encodeBinaryTime, encodeVarint, s, type UtcTime } from './encode.js';

export const V1 = 'v1';

export function contentBlobPath(ns: string): Uint8Array[] {
  return [s(V1), s(ns), s('content'), s('blob')];
}

export function imagesPath(ns: string): Uint8Array[] {
  return [s(V1), s(ns), s('images')];
}

function mapBucket(path: Uint8Array[], name: string, m: Record<string, string>): BoltEdit[] {
  const keys = Object.keys(m);
  if (keys.length === 0) return [];
  const inner = [...path, s(name)];
  return [{ op: 'bucket', path, key: s(name) }, ...keys.map((k): BoltEdit => ({ op: 'put', path: inner, key: s(k), value: s(m[k]!) }))];
}

export interface BlobRecord {
  digest: string;
  size: number;
  labels: Record<string, string>;
  created: UtcTime;
  updated: UtcTime;
}

/** Creates `content/blob/<digest>` in a namespace (the blob bucket must exist or be created). */
export function blobRecordEdits(ns: string, r: BlobRecord): BoltEdit[] {
  const parent = contentBlobPath(ns);
  const p = [...parent, s(r.digest)];
  return [
    { op: 'bucket', path: parent, key: s(r.digest) },
    { op: 'put', path: p, key: s('createdat'), value: encodeBinaryTime(r.created) },
    { op: 'put', path: p, key: s('updatedat'), value: encodeBinaryTime(r.updated) },
    { op: 'put', path: p, key: s('size'), value: encodeVarint(r.size) },
    ...mapBucket(p, 'labels', r.labels),
  ];
}

export interface ImageTarget {
  digest: string;
  mediaType: string;
  size: number;
  annotations: Record<string, string>;
}

export interface ImageRecord {
  name: string;
  target: ImageTarget;
  labels: Record<string, string>;
  created: UtcTime;
  updated: UtcTime;
}

/** Creates `images/<name>` in a namespace (the images bucket must exist or be created). */
export function imageRecordEdits(ns: string, r: ImageRecord): BoltEdit[] {
  const parent = imagesPath(ns);
  const p = [...parent, s(r.name)];
  const t = [...p, s('target')];
  return [
    { op: 'bucket', path: parent, key: s(r.name) },
    { op: 'put', path: p, key: s('createdat'), value: encodeBinaryTime(r.created) },
    { op: 'put', path: p, key: s('updatedat'), value: encodeBinaryTime(r.updated) },
    { op: 'bucket', path: p, key: s('target') },
    { op: 'put', path: t, key: s('digest'), value: s(r.target.digest) },
    { op: 'put', path: t, key: s('mediatype'), value: s(r.target.mediaType) },
    { op: 'put', path: t, key: s('size'), value: encodeVarint(r.target.size) },
    ...mapBucket(p, 'annotations', r.target.annotations),
    ...mapBucket(p, 'labels', r.labels),
  ];
}

/** containerd's GC reference labels of a manifest's children (images.ChildGCLabels, 1.6). */
export function manifestGcLabels(config: string, layers: readonly string[]): Record<string, string> {
  const l: Record<string, string> = { 'containerd.io/gc.ref.content.config': config };
  layers.forEach((d, i) => {
    l[`containerd.io/gc.ref.content.l.${i}`] = d;
  });
  return l;
}

/**
 * The Docker schema2 manifest containerd's importer synthesizes for a `docker save` image
 * (images/archive/importer.go: Go's json.Marshal of schemaVersion, mediaType, config, layers;
 * each descriptor mediaType, digest, size): the same bytes, so the same digest as `ctr import`.
 */
export function dockerSchema2Manifest(
  config: { digest: string; size: number },
  layers: readonly { mediaType: string; digest: string; size: number }[],
): string {
  const desc = (mediaType: string, d: { digest: string; size: number }): string =>
    `{"mediaType":${goString(mediaType)},"digest":${goString(d.digest)},"size":${d.size}}`;
  return `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":${desc('application/vnd.docker.container.image.v1+json', config)},"layers":[${layers.map((l) => desc(l.mediaType, l)).join(',')}]}`;
}

/** A string as Go's encoding/json writes it (HTML-escaped <, >, &, U+2028, U+2029). */
export function goString(x: string): string {
  return JSON.stringify(x).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

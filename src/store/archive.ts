import { createReadStream, createWriteStream, lstatSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { sha256Digest, DIGEST_RE } from '../formats/digest/digest.js';
import { DatarootError } from '../formats/errors.js';
import { compressionOf, decompress, fileChunks, headOf } from '../io/streams.js';
import { TarIndex } from '../io/tarfile.js';
import type { ImageConfig } from './images.js';
import { problem, type Problem } from './problems.js';
import { parseJsonBounded } from '../formats/json/bounded.js';

/** Where an archive's files are read from: an indexed tar, or a directory (an unpacked layout). */
export interface ArchiveSource {
  readonly path: string;
  has(name: string): boolean;
  size(name: string): number | undefined;
  open(name: string): AsyncIterable<Uint8Array>;
  readAll(name: string, max?: number): Promise<Buffer>;
  /** Names that occur more than once in a tar (a hostile or broken archive). */
  readonly duplicates: string[];
}

class DirSource implements ArchiveSource {
  readonly duplicates: string[] = [];
  constructor(readonly path: string) {}
  private abs(name: string): string | undefined {
    if (name.split('/').includes('..') || name.startsWith('/')) return undefined;
    return join(this.path, name);
  }
  has(name: string): boolean {
    const p = this.abs(name);
    try {
      return p !== undefined && statSync(p).isFile();
    } catch {
      return false;
    }
  }
  size(name: string): number | undefined {
    const p = this.abs(name);
    try {
      return p === undefined ? undefined : statSync(p).size;
    } catch {
      return undefined;
    }
  }
  open(name: string): AsyncIterable<Uint8Array> {
    const p = this.abs(name);
    if (p === undefined || !this.has(name)) throw new DatarootError('ARCHIVE_MEMBER_MISSING', `the layout has no file ${name}`, { file: this.path });
    return fileChunks(p);
  }
  async readAll(name: string, max = 64 << 20): Promise<Buffer> {
    const s = this.size(name);
    if (s === undefined) throw new DatarootError('ARCHIVE_MEMBER_MISSING', `the layout has no file ${name}`, { file: this.path });
    if (s > max) throw new DatarootError('ARCHIVE_MEMBER_TOO_LARGE', `${name} has ${s} bytes (more than ${max})`, { file: this.path });
    return readFileSync(this.abs(name)!);
  }
}

class TarSource implements ArchiveSource {
  constructor(
    private readonly idx: TarIndex,
    readonly path: string,
  ) {}
  get duplicates(): string[] {
    return this.idx.duplicates;
  }
  has(name: string): boolean {
    return this.idx.has(name);
  }
  size(name: string): number | undefined {
    return this.idx.resolve(name)?.size;
  }
  open(name: string): AsyncIterable<Uint8Array> {
    return this.idx.open(name);
  }
  readAll(name: string, max?: number): Promise<Buffer> {
    return this.idx.readAll(name, max);
  }
}

export interface ArchiveLayer {
  /** File of the layer in the archive. */
  member: string;
  /** OCI descriptor fields, when the layout declares them. */
  mediaType?: string;
  digest?: string;
  size?: number;
}

export interface ArchiveImage {
  /** How to name the image in messages: its first tag or its config digest. */
  label: string;
  configMember: string;
  configBytes: Buffer;
  /** sha256 of the config bytes: the image ID. */
  id: string;
  config: ImageConfig | undefined;
  diffIds: string[];
  repoTags: string[];
  layers: ArchiveLayer[];
  /** For an OCI layout: the manifest's digest and the platform chosen. */
  manifestDigest?: string;
  platform?: string;
  problems: Problem[];
}

export interface ImageArchive {
  kind: 'docker-save' | 'oci';
  path: string;
  source: ArchiveSource;
  images: ArchiveImage[];
  problems: Problem[];
}

export interface OpenArchiveOptions {
  /** A private directory for the decompressed copy of a compressed archive. */
  workDir: string;
  /** os/arch[/variant] to choose from an OCI index (default linux/amd64). */
  platform?: string;
  /** Largest decompressed archive accepted (decompression bombs). */
  maxBytes?: number;
  /**
   * An archive that is both (an OCI layout with a manifest.json, as docker save 25+ writes) is
   * read as OCI, as containerd's importer reads it (it follows oci-layout), rather than as
   * docker load reads it (manifest.json).
   */
  preferOci?: boolean;
}

/** Opens a `docker save` archive or an OCI layout (a tar, compressed or not, or a directory). */
export async function openImageArchive(path: string, o: OpenArchiveOptions): Promise<ImageArchive> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    throw new DatarootError('ARCHIVE_NOT_FOUND', `${path} does not exist`, { file: path });
  }
  let source: ArchiveSource;
  if (st.isDirectory()) source = new DirSource(path);
  else if (st.isFile()) {
    let tarPath = path;
    const kind = compressionOf(headOf(path, 8));
    if (kind !== 'none') {
      tarPath = join(o.workDir, 'archive.tar');
      await pipeline(
        Readable.from(decompress(kind, createReadStream(path), { what: path, maxBytes: o.maxBytes ?? 64 << 30, maxRatio: 1000, inputBytes: st.size })),
        createWriteStream(tarPath),
      );
    }
    source = new TarSource(await TarIndex.build(tarPath), path);
  } else throw new DatarootError('ARCHIVE_NOT_FOUND', `${path} is neither a file nor a directory`, { file: path });
  const problems: Problem[] = source.duplicates.map((d) => problem('ARCHIVE_DUPLICATE_ENTRY', `the archive holds ${d} more than once`));
  if (o.preferOci === true && source.has('oci-layout') && source.has('index.json'))
    return { kind: 'oci', path, source, images: await ociImages(source, problems, o.platform ?? 'linux/amd64'), problems };
  if (source.has('manifest.json')) return { kind: 'docker-save', path, source, images: await dockerImages(source), problems };
  if (source.has('index.json')) return { kind: 'oci', path, source, images: await ociImages(source, problems, o.platform ?? 'linux/amd64'), problems };
  throw new DatarootError('ARCHIVE_NOT_AN_IMAGE', `${path} has neither manifest.json (docker save) nor index.json (OCI layout)`, { file: path });
}

function parseJson(b: Buffer, what: string): unknown {
  try {
    return parseJsonBounded(b.toString('utf8'));
  } catch (e) {
    throw new DatarootError('ARCHIVE_MANIFEST_INVALID', `${what} is not JSON (${(e as Error).message})`);
  }
}

async function readConfig(
  source: ArchiveSource,
  member: string,
  problems: Problem[],
): Promise<{ bytes: Buffer; config: ImageConfig | undefined; diffIds: string[] } | undefined> {
  if (!source.has(member)) {
    problems.push(problem('ARCHIVE_CONFIG_MISSING', `the image config ${member} is not in the archive`));
    return undefined;
  }
  const bytes = await source.readAll(member, 16 << 20);
  let config: ImageConfig | undefined;
  let diffIds: string[] = [];
  try {
    const c = parseJsonBounded(bytes.toString('utf8'));
    if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new Error('not an object');
    config = c;
    const d = config.rootfs?.diff_ids;
    if (config.rootfs === undefined || config.rootfs === null)
      problems.push(problem('ARCHIVE_CONFIG_INVALID', `${member} has no rootfs: docker load refuses it`));
    else if (d !== undefined && d !== null && !(Array.isArray(d) && d.every((x) => typeof x === 'string' && DIGEST_RE.test(x)))) {
      problems.push(problem('ARCHIVE_CONFIG_INVALID', `${member}: rootfs.diff_ids is not a list of sha256 digests`));
    } else diffIds = (d as string[] | null | undefined) ?? [];
  } catch (e) {
    problems.push(problem('ARCHIVE_CONFIG_INVALID', `${member} is not a JSON object (${(e as Error).message})`));
  }
  return { bytes, config, diffIds };
}

interface DockerManifestEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
  Parent?: unknown;
}

async function dockerImages(source: ArchiveSource): Promise<ArchiveImage[]> {
  const doc = parseJson(await source.readAll('manifest.json', 16 << 20), 'manifest.json');
  if (!Array.isArray(doc)) throw new DatarootError('ARCHIVE_MANIFEST_INVALID', 'manifest.json is not a list of images');
  const out: ArchiveImage[] = [];
  for (const [i, raw] of (doc as DockerManifestEntry[]).entries()) {
    const ip: Problem[] = [];
    if (
      raw === null ||
      typeof raw !== 'object' ||
      typeof raw.Config !== 'string' ||
      !Array.isArray(raw.Layers) ||
      !raw.Layers.every((l) => typeof l === 'string')
    ) {
      throw new DatarootError('ARCHIVE_MANIFEST_INVALID', `manifest.json entry ${i} needs "Config" (a path) and "Layers" (a list of paths)`);
    }
    const tags = raw.RepoTags === null || raw.RepoTags === undefined ? [] : raw.RepoTags;
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))
      throw new DatarootError('ARCHIVE_MANIFEST_INVALID', `manifest.json entry ${i}: RepoTags is not a list of strings`);
    const cfg = await readConfig(source, raw.Config, ip);
    const layers = raw.Layers.map((member) => ({ member }));
    for (const l of layers) if (!source.has(l.member)) ip.push(problem('ARCHIVE_LAYER_MISSING', `layer ${l.member} is not in the archive`));
    if (cfg !== undefined && cfg.config !== undefined && cfg.diffIds.length !== layers.length) {
      ip.push(
        problem(
          'ARCHIVE_LAYER_COUNT_MISMATCH',
          `${raw.Config} lists ${cfg.diffIds.length} diff_ids but the manifest has ${layers.length} layers: docker load refuses it`,
        ),
      );
    }
    const id = cfg === undefined ? '' : sha256Digest(cfg.bytes);
    out.push({
      label: tags[0] ?? (id || raw.Config),
      configMember: raw.Config,
      configBytes: cfg?.bytes ?? Buffer.alloc(0),
      id,
      config: cfg?.config,
      diffIds: cfg?.diffIds ?? [],
      repoTags: tags,
      layers,
      problems: ip,
    });
  }
  return out;
}

const MT_INDEX = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
const MT_MANIFEST = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'];

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

function blobName(digest: string): string | undefined {
  const m = /^([a-z0-9]+):([a-f0-9]{32,128})$/.exec(digest);
  return m === null ? undefined : `blobs/${m[1]}/${m[2]}`;
}

async function readBlob(source: ArchiveSource, d: Descriptor, what: string, problems: Problem[]): Promise<Buffer | undefined> {
  const name = d.digest === undefined ? undefined : blobName(d.digest);
  if (name === undefined || !source.has(name)) {
    problems.push(problem('ARCHIVE_BLOB_MISSING', `${what} ${d.digest ?? '(no digest)'} is not in the layout`));
    return undefined;
  }
  const b = await source.readAll(name, 16 << 20);
  if (sha256Digest(b) !== d.digest)
    problems.push(problem('ARCHIVE_BLOB_DIGEST_MISMATCH', `${what} ${name}: its sha256 is ${sha256Digest(b)}, not ${d.digest}`));
  return b;
}

function platformOf(d: Descriptor): string {
  const p = d.platform;
  if (p === undefined) return '';
  return [p.os ?? '', p.architecture ?? '', ...(p.variant ? [p.variant] : [])].join('/');
}

/** The images of an OCI layout: each manifest named by index.json (an index is resolved to one platform). */
async function ociImages(source: ArchiveSource, problems: Problem[], platform: string): Promise<ArchiveImage[]> {
  const index = parseJson(await source.readAll('index.json', 16 << 20), 'index.json') as { manifests?: Descriptor[] };
  if (index === null || typeof index !== 'object' || !Array.isArray(index.manifests))
    throw new DatarootError('ARCHIVE_MANIFEST_INVALID', 'index.json has no "manifests" list');
  const out: ArchiveImage[] = [];
  const visit = async (d: Descriptor, names: string[], depth: number): Promise<void> => {
    if (depth > 4) throw new DatarootError('ARCHIVE_MANIFEST_INVALID', 'image indexes nested too deep');
    const ip: Problem[] = [];
    if (d.mediaType !== undefined && MT_INDEX.includes(d.mediaType)) {
      const b = await readBlob(source, d, 'image index', problems);
      if (b === undefined) return;
      const idx = parseJson(b, `index ${d.digest}`) as { manifests?: Descriptor[] };
      const cands = (idx.manifests ?? []).filter((m) => platformOf(m) === platform || (platformOf(m) === '' && idx.manifests!.length === 1));
      if (cands.length === 0) {
        problems.push(
          problem(
            'ARCHIVE_PLATFORM_MISSING',
            `index ${d.digest} has no manifest for ${platform} (it has ${(idx.manifests ?? []).map(platformOf).join(', ') || 'none'})`,
          ),
        );
        return;
      }
      await visit(cands[0]!, names, depth + 1);
      return;
    }
    if (d.mediaType !== undefined && !MT_MANIFEST.includes(d.mediaType)) {
      problems.push(problem('ARCHIVE_MEDIA_TYPE_UNKNOWN', `index.json names ${d.digest} of media type ${d.mediaType}`));
      return;
    }
    const mb = await readBlob(source, d, 'manifest', ip);
    if (mb === undefined) {
      problems.push(...ip);
      return;
    }
    const man = parseJson(mb, `manifest ${d.digest}`) as { config?: Descriptor; layers?: Descriptor[] };
    if (man.config === undefined || !Array.isArray(man.layers))
      throw new DatarootError('ARCHIVE_MANIFEST_INVALID', `manifest ${d.digest} has no config or layers`);
    const cfgName = man.config.digest === undefined ? undefined : blobName(man.config.digest);
    const cfg = cfgName === undefined ? undefined : await readConfig(source, cfgName, ip);
    if (cfg !== undefined && sha256Digest(cfg.bytes) !== man.config.digest)
      ip.push(problem('ARCHIVE_CONFIG_DIGEST_MISMATCH', `config ${cfgName}: its sha256 is ${sha256Digest(cfg.bytes)}, not ${man.config.digest}`));
    const layers: ArchiveLayer[] = man.layers.map((l) => {
      const member = l.digest === undefined ? '' : (blobName(l.digest) ?? '');
      if (member === '' || !source.has(member)) ip.push(problem('ARCHIVE_LAYER_MISSING', `layer blob ${l.digest ?? '(no digest)'} is not in the layout`));
      const layer: ArchiveLayer = { member };
      if (l.mediaType !== undefined) layer.mediaType = l.mediaType;
      if (l.digest !== undefined) layer.digest = l.digest;
      if (typeof l.size === 'number') layer.size = l.size;
      return layer;
    });
    if (cfg !== undefined && cfg.config !== undefined && cfg.diffIds.length !== layers.length) {
      ip.push(problem('ARCHIVE_LAYER_COUNT_MISMATCH', `config lists ${cfg.diffIds.length} diff_ids but the manifest has ${layers.length} layers`));
    }
    const id = cfg === undefined ? '' : sha256Digest(cfg.bytes);
    out.push({
      label: names[0] ?? d.digest ?? id,
      configMember: cfgName ?? '',
      configBytes: cfg?.bytes ?? Buffer.alloc(0),
      id,
      config: cfg?.config,
      diffIds: cfg?.diffIds ?? [],
      repoTags: names,
      layers,
      ...(d.digest !== undefined ? { manifestDigest: d.digest } : {}),
      platform: platformOf(d) || platform,
      problems: ip,
    });
  };
  for (const d of index.manifests) {
    const a = d.annotations ?? {};
    const names: string[] = [];
    const full = a['io.containerd.image.name'];
    const refName = a['org.opencontainers.image.ref.name'];
    if (full !== undefined) names.push(full);
    else if (refName !== undefined && /[:/@]/.test(refName)) names.push(refName);
    else if (refName !== undefined) names.push(`:${refName}`); // a bare tag: the caller supplies the repository
    await visit(d, names, 0);
  }
  return out;
}

/** The layer file of an archive, decompressed by its magic (gzip, zstd, bzip2, xz or plain). */
export async function openLayer(
  source: ArchiveSource,
  layer: ArchiveLayer,
  o: { maxBytes?: number; maxRatio?: number; /** sees the stored (compressed) bytes, e.g. to hash the blob */ tap?: (c: Uint8Array) => void } = {},
): Promise<{ compression: string; stream: AsyncIterable<Uint8Array> }> {
  // The first bytes tell the compression; read them and put them back in front.
  const it = source.open(layer.member)[Symbol.asyncIterator]();
  const first = await it.next();
  const head = first.done === true ? new Uint8Array() : first.value;
  const kind = compressionOf(head);
  const tap = o.tap;
  const raw: AsyncIterable<Uint8Array> = {
    async *[Symbol.asyncIterator]() {
      if (head.length > 0) {
        tap?.(head);
        yield head;
      }
      for (let r = await it.next(); r.done !== true; r = await it.next()) {
        tap?.(r.value);
        yield r.value;
      }
    },
  };
  const inputBytes = source.size(layer.member) ?? 0;
  const bounds: { maxBytes?: number; maxRatio?: number } = {};
  if (o.maxBytes !== undefined) bounds.maxBytes = o.maxBytes;
  if (o.maxRatio !== undefined) bounds.maxRatio = o.maxRatio;
  return { compression: kind, stream: decompress(kind, raw, { what: layer.member, inputBytes, ...bounds }) };
}

/** Named files on disk as an archive source (the layers of `inject --config … --layer …`). */
export function filesSource(files: Map<string, string>): ArchiveSource {
  const get = (name: string): string => {
    const p = files.get(name);
    if (p === undefined) throw new DatarootError('ARCHIVE_MEMBER_MISSING', `no file ${name}`);
    return p;
  };
  return {
    path: [...files.values()].join(', '),
    duplicates: [],
    has: (name) => {
      const p = files.get(name);
      try {
        return p !== undefined && statSync(p).isFile();
      } catch {
        return false;
      }
    },
    size: (name) => {
      try {
        return statSync(get(name)).size;
      } catch {
        return undefined;
      }
    },
    open: (name) => fileChunks(get(name)),
    readAll: async (name, max = 64 << 20) => {
      const p = get(name);
      if (statSync(p).size > max) throw new DatarootError('ARCHIVE_MEMBER_TOO_LARGE', `${p} is larger than ${max} bytes`, { file: p });
      return readFileSync(p);
    },
  };
}

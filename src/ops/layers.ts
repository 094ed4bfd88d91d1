import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { DatarootError } from '../formats/errors.js';
import { decodeEntries } from '../formats/tarsplit/entries.js';
import { assemble, cleanPath, type FileSource } from '../formats/tarsplit/stream.js';
import type { Confined } from '../io/confined.js';
import { fdChunksReused } from '../io/streams.js';
import type { LayerRecord } from '../store/layers.js';
import type { Store } from '../store/model.js';
import type { Problem } from '../store/problems.js';

export interface LayerRow {
  chainId: string;
  diffId: string | null;
  parent: string | null;
  cacheId: string | null;
  size: number | null;
  dir: string | null;
  dirExists: boolean;
  tarSplit: boolean;
  loadable: boolean;
  /** Image IDs whose chain includes this layer. */
  images: string[];
  /** Container IDs whose read-write layer sits on it (directly). */
  containers: string[];
  /** Not part of any image's chain and no container's parent: dockerd keeps it but nothing uses it. */
  orphan: boolean;
  problems: Problem[];
}

export interface LayersResult {
  layers: LayerRow[];
  problems: Problem[];
}

/** Which images (any prefix of their chain) and containers use each layer. */
export function layerUsage(store: Store): { images: Map<string, Set<string>>; containers: Map<string, Set<string>> } {
  const images = new Map<string, Set<string>>();
  for (const img of store.images.values()) {
    for (const c of store.chainOf(img)) {
      const s = images.get(c) ?? new Set<string>();
      s.add(img.id);
      images.set(c, s);
    }
  }
  const containers = new Map<string, Set<string>>();
  for (const m of store.mounts) {
    if (m.parent === undefined) continue;
    const s = containers.get(m.parent) ?? new Set<string>();
    s.add(m.containerId);
    containers.set(m.parent, s);
  }
  return { images, containers };
}

export function listLayers(store: Store): LayersResult {
  const use = layerUsage(store);
  // A layer that is the parent of a used layer is used too.
  const used = new Set<string>([...use.images.keys(), ...use.containers.keys()]);
  for (const id of [...used]) {
    let p = store.layers.get(id)?.parent;
    for (let i = 0; p !== undefined && i < 200 && !used.has(p); i++) {
      used.add(p);
      p = store.layers.get(p)?.parent;
    }
  }
  const layers: LayerRow[] = [...store.layers.values()].map((l) => ({
    chainId: l.chainId,
    diffId: l.diffId ?? null,
    parent: l.parent ?? null,
    cacheId: l.cacheId ?? null,
    size: l.size ?? null,
    dir: l.driverDir !== undefined ? store.shown(l.driverDir) : null,
    dirExists: l.driverDirExists,
    tarSplit: l.tarSplit,
    loadable: store.isLoadable(l.chainId),
    images: [...(use.images.get(l.chainId) ?? [])].sort(),
    containers: [...(use.containers.get(l.chainId) ?? [])].sort(),
    orphan: !used.has(l.chainId),
    problems: l.problems,
  }));
  // Bottom layers first, then by chain.
  const depth = (id: string): number => {
    let d = 0;
    for (let p = store.layers.get(id)?.parent; p !== undefined && d < 200; p = store.layers.get(p)?.parent) d++;
    return d;
  };
  layers.sort((a, b) => depth(a.chainId) - depth(b.chainId) || (a.chainId < b.chainId ? -1 : 1));
  return { layers, problems: layers.flatMap((l) => l.problems) };
}

/**
 * Where a layer's files are read from (relative to the root): overlay2 its diff dir, vfs its full
 * directory, and so on per driver. A driver whose contents cannot be read offline is a coded error.
 */
export function layerContentDir(store: Store, cacheId: string): string {
  const dir = store.adapter.contentDir(store.fs, cacheId);
  if (dir === undefined) {
    throw new DatarootError('STORE_DRIVER_CONTENT_UNSUPPORTED', `the ${store.driver} driver keeps layer ${cacheId}'s files where they cannot be read offline`, {
      driver: store.driver,
    });
  }
  return dir;
}

/** A tar-split name as a path inside the layer, or undefined when it escapes it. */
export function layerPath(name: Uint8Array): string | undefined {
  const c = cleanPath(new TextDecoder().decode(name)).replace(/^\/+/, '');
  if (c === '..' || c.startsWith('../')) return undefined;
  return c === '.' ? '' : c;
}

/**
 * The files of a layer as tar-split's assembler asks for them (a name that escapes is an error),
 * read through the root's confined layer: a name that goes through a symlink, or names a FIFO or
 * device, is not read. Chunks are reused buffers: the assembler's consumers hash or write each one
 * before the next.
 */
export function layerFileSource(fs: Confined, base: string): FileSource {
  return {
    async open(name) {
      const rel = layerPath(name);
      if (rel === undefined) throw new DatarootError('TARSPLIT_PATH_ESCAPE', `${new TextDecoder().decode(name)} escapes the layer`);
      let f;
      try {
        f = fs.openFile(rel === '' ? base : `${base}/${rel}`);
      } catch (e) {
        if (e instanceof DatarootError) return undefined;
        throw e;
      }
      if (f === undefined) return undefined;
      return fdChunksReused(f.fd, f.close);
    },
  };
}

/**
 * A layer's tar-split stream, gunzipped, through the confined layer; with `maxBytes`, a stream that
 * decompresses to more is TARSPLIT_TOO_LARGE (a gzip bomb where a tar-split belongs).
 */
export function tarSplitStream(fs: Confined, l: LayerRecord, maxBytes = Infinity): AsyncIterable<Uint8Array> {
  const f = fs.openFile(`${l.dir}/tar-split.json.gz`, 'tar-split');
  if (f === undefined) throw new DatarootError('TARSPLIT_MISSING', `layer ${l.chainId} has no tar-split.json.gz`, { file: l.dir });
  const gz = createGunzip();
  void (async () => {
    try {
      for await (const c of fdChunksReused(f.fd, f.close)) if (!gz.write(Buffer.from(c))) await new Promise((r) => gz.once('drain', r));
      gz.end();
    } catch (e) {
      gz.destroy(e as Error);
    }
  })();
  if (maxBytes === Infinity) return gz as AsyncIterable<Uint8Array>;
  return (async function* () {
    let n = 0;
    for await (const c of gz as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > maxBytes) {
        gz.destroy();
        throw new DatarootError('TARSPLIT_TOO_LARGE', `the tar-split stream of ${l.chainId} decompresses to more than ${maxBytes} bytes`, {
          file: `${l.dir}/tar-split.json.gz`,
        });
      }
      yield c;
    }
  })();
}

/** A layer by chainID or diffID (full, with or without `sha256:`, or a unique prefix of either). */
export function findLayer(store: Store, q: string): LayerRecord {
  const hex = q.replace(/^sha256:/, '');
  if (!/^[a-f0-9]{1,64}$/.test(hex)) throw new DatarootError('USAGE_BAD_LAYER_ID', `${q} is not a layer chainID or diffID`);
  const byChain = [...store.layers.values()].filter((l) => l.chainId.slice(7).startsWith(hex));
  if (byChain.length === 1) return byChain[0]!;
  const byDiff = [...store.layers.values()].filter((l) => l.diffId?.slice(7).startsWith(hex));
  // The same diffID can sit on several chains; any of them rebuilds the same tar.
  if (byChain.length === 0 && byDiff.length > 0 && new Set(byDiff.map((l) => l.diffId)).size === 1) return byDiff[0]!;
  if (byChain.length + byDiff.length === 0) throw new DatarootError('LAYER_NOT_FOUND', `No such layer: ${q}`);
  throw new DatarootError('LAYER_AMBIGUOUS', `${q} matches several layers`);
}

/**
 * The layer's tar rebuilt from its tar-split stream and driver directory, exactly as `docker save`
 * exports it: CRC-64 of every file checked, and the sha256 of the whole compared with the diffID
 * at the end (a coded error then, as dockerd fails "could not verify layer data").
 */
export async function* layerTar(store: Store, l: LayerRecord): AsyncGenerator<Uint8Array> {
  if (l.cacheId === undefined || l.diffId === undefined)
    throw new DatarootError('LAYER_METADATA_INVALID', `layer ${l.chainId} has invalid metadata`, { file: l.dir });
  if (!l.tarSplit) throw new DatarootError('TARSPLIT_MISSING', `layer ${l.chainId} has no tar-split.json.gz: it cannot be rebuilt`, { file: l.dir });
  if (!l.driverDirExists)
    throw new DatarootError('LAYER_DIR_MISSING', `the driver directory of layer ${l.chainId} does not exist`, { file: l.driverDir ?? l.dir });
  const base = layerContentDir(store, l.cacheId);
  const gz = tarSplitStream(store.fs, l);
  const files = layerFileSource(store.fs, base);
  const h = createHash('sha256');
  try {
    for await (const c of assemble(decodeEntries(gz), files)) {
      h.update(c);
      yield c;
    }
  } catch (e) {
    if (e instanceof DatarootError) throw e;
    throw new DatarootError('TARSPLIT_INVALID', `tar-split.json.gz of ${l.chainId} cannot be read: ${(e as Error).message}`, { file: l.dir });
  }
  const got = `sha256:${h.digest('hex')}`;
  if (got !== l.diffId)
    throw new DatarootError('LAYER_DIFFID_MISMATCH', `the rebuilt layer has sha256 ${got}, not its diffID ${l.diffId}`, { file: store.shown(base) });
}

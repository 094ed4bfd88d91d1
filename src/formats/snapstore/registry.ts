/**
 * The snapshot store's two JSON files, decoded and checked: the marker (`dataroot-store.json`)
 * and the registry (`registry.json`). Every name that becomes a path (snapshot names, manifest
 * paths, pack ids) is checked against its format here, before any caller joins it to a
 * directory: a store may come from elsewhere, prepared by someone else.
 */
import { DatarootError } from '../errors.js';

export const STORE_FORMAT = 'dataroot-snapshot-store';
/** The store version written; versions 1 (no shared frames) and 2 are read. */
export const STORE_VERSION = 2;
export const STORE_VERSIONS_READ: readonly number[] = [1, 2];

/** A snapshot name: also the file name of its manifest. */
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A pack id (`<time base36>-<8 hex>` as written; any name of this shape is read). */
export const PACK_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const MANIFEST_PATH = /^snapshots\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.manifest$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface ScanOptionsRecord {
  exclude: string[];
  metadataOnly: string[];
  live: boolean;
}

export interface RegisteredSnapshot {
  name: string;
  created: string;
  source: string;
  /** Store-relative path of the manifest: always `snapshots/<name>.manifest`-shaped. */
  manifest: string;
  manifestSha256: string;
  entries: number;
  /** Bytes of file content the snapshot describes. */
  logicalBytes: number;
  /** Bytes of content that were new to the store (stored by this snapshot). */
  newBytes: number;
  /** Bytes those took in the packs (compressed). */
  storedBytes: number;
  packs: string[];
  options: ScanOptionsRecord;
}

export interface Registry {
  format: string;
  version: number;
  snapshots: RegisteredSnapshot[];
}

export interface StoreMarker {
  format: typeof STORE_FORMAT;
  version: number;
  created?: string;
}

function corrupt(file: string, why: string): DatarootError {
  return new DatarootError('SNAPSHOT_STORE_CORRUPT', `${file} ${why}`, { file });
}

/** The manifest path of a snapshot name. */
export function manifestPathOf(name: string): string {
  return `snapshots/${name}.manifest`;
}

export function isSnapshotName(s: unknown): s is string {
  return typeof s === 'string' && SNAPSHOT_NAME.test(s);
}

export function isPackId(s: unknown): s is string {
  return typeof s === 'string' && PACK_ID.test(s);
}

export function isManifestPath(s: unknown): s is string {
  return typeof s === 'string' && MANIFEST_PATH.test(s);
}

function parse(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw corrupt(file, `is not JSON (${(e as Error).message})`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** One registry entry, every field checked (a path-shaped field against its format). */
function snapshotOf(v: unknown, i: number, file: string): RegisteredSnapshot {
  const bad = (field: string, why = 'is invalid'): DatarootError => corrupt(file, `snapshot ${i}: ${field} ${why}`);
  if (!isObj(v)) throw bad('entry', 'is not an object');
  if (!isSnapshotName(v['name'])) throw bad('name', `${JSON.stringify(v['name'])} is not a snapshot name (letters, digits, ".", "_", "-")`);
  if (!isManifestPath(v['manifest'])) throw bad('manifest', `${JSON.stringify(v['manifest'])} is not snapshots/<name>.manifest`);
  if (typeof v['manifestSha256'] !== 'string' || !SHA256_HEX.test(v['manifestSha256'])) throw bad('manifestSha256');
  if (!Array.isArray(v['packs']) || !v['packs'].every(isPackId)) throw bad('packs', `${JSON.stringify(v['packs'])} holds a name that is not a pack id`);
  for (const k of ['entries', 'logicalBytes', 'newBytes', 'storedBytes']) if (!isCount(v[k])) throw bad(k);
  for (const k of ['created', 'source']) if (typeof v[k] !== 'string') throw bad(k);
  const o = v['options'];
  if (!isObj(o) || !isStrings(o['exclude']) || !isStrings(o['metadataOnly']) || typeof o['live'] !== 'boolean') throw bad('options');
  return {
    name: v['name'],
    created: v['created'] as string,
    source: v['source'] as string,
    manifest: v['manifest'],
    manifestSha256: v['manifestSha256'],
    entries: v['entries'] as number,
    logicalBytes: v['logicalBytes'] as number,
    newBytes: v['newBytes'] as number,
    storedBytes: v['storedBytes'] as number,
    packs: v['packs'],
    options: { exclude: o['exclude'], metadataOnly: o['metadataOnly'], live: o['live'] },
  };
}

/** registry.json: `{"format","version","snapshots":[…]}`; names unique. */
export function decodeRegistry(text: string, file = 'registry.json'): Registry {
  const r = parse(text, file);
  if (!isObj(r) || !Array.isArray(r['snapshots'])) throw corrupt(file, 'is not a snapshot registry (no snapshots list)');
  const snapshots = r['snapshots'].map((s, i) => snapshotOf(s, i, file));
  const names = new Set<string>();
  for (const s of snapshots) {
    if (names.has(s.name)) throw corrupt(file, `names snapshot ${s.name} twice`);
    names.add(s.name);
  }
  return { format: typeof r['format'] === 'string' ? r['format'] : STORE_FORMAT, version: typeof r['version'] === 'number' ? r['version'] : 1, snapshots };
}

export function encodeRegistry(r: Registry): string {
  return `${JSON.stringify(r, null, 1)}\n`;
}

export function emptyRegistry(): Registry {
  return { format: STORE_FORMAT, version: 1, snapshots: [] };
}

/** dataroot-store.json; a store of another format or of a version not read is refused plainly. */
export function decodeStoreMarker(text: string, file = 'dataroot-store.json'): StoreMarker {
  let m: unknown;
  try {
    m = JSON.parse(text) as unknown;
  } catch {
    throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${file} is not JSON`, { file });
  }
  if (!isObj(m) || m['format'] !== STORE_FORMAT) throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${file} does not mark a dataroot snapshot store`, { file });
  const version = m['version'];
  if (typeof version !== 'number' || !STORE_VERSIONS_READ.includes(version)) {
    throw new DatarootError(
      'SNAPSHOT_NOT_A_STORE',
      `a version ${String(version)} dataroot snapshot store; this dataroot reads versions ${STORE_VERSIONS_READ.join(' and ')}`,
      { file },
    );
  }
  return { format: STORE_FORMAT, version, ...(typeof m['created'] === 'string' ? { created: m['created'] } : {}) };
}

export function encodeStoreMarker(m: StoreMarker): string {
  return `${JSON.stringify(m)}\n`;
}

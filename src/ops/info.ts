import { DatarootError } from '../formats/errors.js';
import { isBucketEntry } from '../formats/bolt/db.js';
import { utf8 } from '../formats/bytes.js';
import type { Confined } from '../io/confined.js';
import { probeLock, type LockState } from '../io/lock.js';
import { addonState, type AddonState } from '../io/native.js';
import { zstdBackend, zstdCompressBackend } from '../io/zstd.js';
import { openBoltIn } from '../store/bolt.js';
import { chooseDriver, imageStores, type ImageStoreInfo } from '../store/driverchoice.js';
import { HEX64, LAYOUT as L } from '../store/layout.js';
import { readRepositories } from '../store/images.js';
import type { OpenedRoot } from '../store/root.js';
import { legacyLeftovers, type LegacyLeftovers } from '../store/legacy.js';
import type { LegacyInfo } from './legacy.js';

export interface FolderSize {
  name: string;
  bytes: number;
  files: number;
}

export interface InfoResult {
  root: string;
  archive: boolean;
  driver: string | null;
  /** How the driver was chosen (see `dataroot info --json`). */
  driverReason: string | null;
  /** Every image/<driver>/ store, with its counts. */
  imageStores: ImageStoreInfo[];
  images: number;
  tags: number;
  layers: number;
  containers: number;
  volumes: number;
  networks: number;
  inUse: boolean;
  lock: LockState;
  folders: FolderSize[];
  warnings: string[];
  /** A pre-1.10 root read as such (set by the info command). */
  legacy?: LegacyInfo;
  /** What a pre-1.10 engine and the 1.10 migration left in a root read as ≥1.10. */
  legacyLeftovers?: LegacyLeftovers;
  /** This install of dataroot: its native addon and the snapshot store's zstd. */
  install: InstallInfo;
}

export interface InstallInfo {
  /** Whether the native addon loaded, and if not, why and what does not work without it. */
  addon: AddonState;
  /** The snapshot store's zstd here: the decompressor that reads stores, the compressor that writes them (null: none, snapshots cannot be written). */
  zstd: { decompress: 'node:zlib' | 'addon' | 'fzstd'; compress: 'addon' | 'node:zlib' | null };
  node: string;
}

/** The state of this install (not of the root): the addon and the zstd backends. */
export function installInfo(): InstallInfo {
  return { addon: addonState(), zstd: { decompress: zstdBackend(), compress: zstdCompressBackend() }, node: process.versions.node };
}

/** Counts entries of a bbolt bucket (or of keys with a prefix), with a warning when the file is unreadable. */
function countBolt(fs: Confined, rel: string, bucket: string, keyPrefix: string | undefined, warnings: string[]): number {
  try {
    if (fs.kind(rel) === 'file' && fs.lstat(rel)?.size === 0) return 0;
    const b = openBoltIn(fs, rel);
    if (b === undefined) return 0;
    try {
      const ref = b.db.bucketAt([new TextEncoder().encode(bucket)]);
      if (ref === undefined) return 0;
      let n = 0;
      b.db.forEachEntry(ref, b.db.newSeen(), (e) => {
        if (isBucketEntry(e)) return;
        if (keyPrefix === undefined || utf8(e.key).startsWith(keyPrefix)) n++;
      });
      return n;
    } finally {
      b.close();
    }
  } catch (e) {
    warnings.push(e instanceof DatarootError ? e.oneLine() : String(e));
    return 0;
  }
}

/** Bytes and regular files under each top-level folder (never through a symlink). */
function folderSizes(fs: Confined): FolderSize[] {
  const folders: FolderSize[] = [];
  for (const name of fs.names('')) {
    let bytes = 0;
    let files = 0;
    const st = fs.lstat(name);
    if (st?.isFile() === true) {
      bytes = st.size;
      files = 1;
    } else if (st?.isDirectory() === true) {
      for (const e of fs.walk(name)) {
        if (e.stat.isFile()) {
          bytes += e.stat.size;
          files++;
        }
      }
    }
    folders.push({ name, bytes, files });
  }
  return folders;
}

export function info(root: OpenedRoot, driverFlag?: string): InfoResult {
  const fs = root.fs;
  const warnings: string[] = [];
  let driver: string | null = null;
  let driverReason: string | null = null;
  let stores: ImageStoreInfo[];
  try {
    const choice = chooseDriver(root, driverFlag);
    driver = choice.driver;
    driverReason = choice.reason;
    stores = choice.stores;
    warnings.push(...choice.notes);
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    warnings.push(e.oneLine());
    stores = imageStores(root);
  }
  if (root.imageStores.length === 0) driver = null;
  let tags = 0;
  if (driver !== null) {
    const repos = readRepositories(fs, driver);
    tags = repos.refs.length;
    for (const p of repos.problems) warnings.push(`${p.code}: ${p.message}`);
  }
  const lock = root.fromArchive ? 'free' : probeLock(fs.abs(L.volumesDb));
  const store = stores.find((s) => s.driver === driver);
  const leftovers = legacyLeftovers(fs);
  return {
    root: root.source,
    archive: root.fromArchive,
    driver,
    driverReason,
    imageStores: stores,
    images: store?.images ?? 0,
    tags,
    layers: store?.layers ?? 0,
    containers: fs.names(L.containersDir).filter((n) => HEX64.test(n)).length,
    volumes: countBolt(fs, L.volumesDb, 'volumes', undefined, warnings),
    networks: countBolt(fs, L.networkDb, 'libnetwork', 'docker/network/v1.0/network/', warnings),
    inUse: lock === 'held',
    lock,
    folders: folderSizes(fs),
    warnings,
    install: installInfo(),
    ...(leftovers !== undefined ? { legacyLeftovers: leftovers } : {}),
  };
}

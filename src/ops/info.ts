import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { isBucketEntry } from '../formats/bolt/db.js';
import { utf8 } from '../formats/bytes.js';
import { probeLock, type LockState } from '../io/lock.js';
import { walkTree } from '../io/walk.js';
import { openBolt } from '../store/bolt.js';
import { HEX64 } from '../store/layout.js';
import { isSupportedDriver, type OpenedRoot } from '../store/root.js';

export interface FolderSize {
  name: string;
  bytes: number;
  files: number;
}

export interface InfoResult {
  root: string;
  archive: boolean;
  driver: string | null;
  drivers: string[];
  driverSupported: boolean;
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
}

function countDir(dir: string, accept: (name: string) => boolean): number {
  try {
    return readdirSync(dir).filter(accept).length;
  } catch {
    return 0;
  }
}

/** Counts entries of a bbolt bucket (or of keys with a prefix), with a warning when the file is unreadable. */
function countBolt(file: string, bucket: string, keyPrefix: string | undefined, warnings: string[]): number {
  if (!existsSync(file)) return 0;
  try {
    const b = openBolt(file);
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

export function info(root: OpenedRoot): InfoResult {
  const L = root.layout;
  const warnings: string[] = [];
  const driver = root.drivers[0] ?? null;
  if (root.drivers.length > 1) warnings.push(`several image stores: ${root.drivers.join(', ')}; counting ${driver}`);
  if (driver !== null && !isSupportedDriver(driver)) warnings.push(`driver ${driver} is recognised but not supported yet (overlay2 and vfs are)`);
  let tags = 0;
  if (driver !== null && existsSync(L.repositories(driver))) {
    try {
      const repos = JSON.parse(readFileSync(L.repositories(driver), 'utf8')) as { Repositories?: Record<string, Record<string, string>> };
      for (const r of Object.values(repos.Repositories ?? {})) tags += Object.keys(r).length;
    } catch {
      warnings.push(`${L.repositories(driver)} is not valid JSON`);
    }
  }
  const folders: FolderSize[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(root.dir).sort();
  } catch {
    names = [];
  }
  for (const name of names) {
    let bytes = 0;
    let files = 0;
    for (const e of walkTree(root.dir, name)) {
      if (e.stat.isFile()) {
        bytes += e.stat.size;
        files++;
      }
    }
    folders.push({ name, bytes, files });
  }
  const lock = root.fromArchive ? 'free' : probeLock(L.volumesDb);
  return {
    root: root.source,
    archive: root.fromArchive,
    driver,
    drivers: root.drivers,
    driverSupported: driver === null || isSupportedDriver(driver),
    images: driver === null ? 0 : countDir(L.imageContentDir(driver), (n) => HEX64.test(n)),
    tags,
    layers: driver === null ? 0 : countDir(L.layerDbDir(driver), (n) => HEX64.test(n)),
    containers: countDir(L.containersDir, (n) => HEX64.test(n)),
    volumes: countBolt(L.volumesDb, 'volumes', undefined, warnings),
    networks: countBolt(L.networkDb, 'libnetwork', 'docker/network/v1.0/network/', warnings),
    inUse: lock === 'held',
    lock,
    folders,
    warnings,
  };
}

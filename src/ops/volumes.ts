import { DatarootError } from '../formats/errors.js';
import type { Store } from '../store/model.js';
import type { Problem } from '../store/problems.js';
import type { VolumeRecord } from '../store/volumes.js';

type Obj = Record<string, unknown>;

/** Go's time.Format(time.RFC3339) in the local zone (`Z` when the zone is UTC), as the volume service prints CreatedAt. */
export function goRFC3339Local(d: Date): string {
  const off = -d.getTimezoneOffset();
  const local = new Date(d.getTime() + off * 60_000);
  const base = local.toISOString().replace(/\.\d{3}Z$/, '');
  if (off === 0) return `${base}Z`;
  const a = Math.abs(off);
  return `${base}${off < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

export interface VolumeUse {
  container: string;
  name: string;
  destination: string;
  rw: boolean;
}

/** Which containers mount each volume (from their config.v2.json MountPoints). */
function usage(store: Store): Map<string, VolumeUse[]> {
  const m = new Map<string, VolumeUse[]>();
  for (const c of store.containers) {
    const mps = c.config?.MountPoints;
    for (const mp of Object.values(mps !== null && typeof mps === 'object' ? mps : {})) {
      if (mp === null || typeof mp !== 'object' || mp.Type !== 'volume' || typeof mp.Name !== 'string' || mp.Name === '') continue;
      const list = m.get(mp.Name) ?? [];
      list.push({ container: c.id, name: c.config?.Name ?? '', destination: mp.Destination ?? '', rw: mp.RW === true });
      m.set(mp.Name, list);
    }
  }
  return m;
}

/** Bytes on disk under a volume's _data: Lstat sizes of non-directories, hard links counted once. */
function diskSize(store: Store, dir: string): number {
  let total = 0;
  const seen = new Set<string>();
  if (dir === '' || !store.fs.isDir(dir)) return 0;
  for (const e of store.fs.walk(dir)) {
    if (e.stat.isDirectory()) continue;
    if (e.stat.nlink > 1) {
      const k = `${e.stat.dev}:${e.stat.ino}`;
      if (seen.has(k)) continue;
      seen.add(k);
    }
    total += e.stat.size;
  }
  return total;
}

/** types.Volume as `docker volume inspect` prints it, plus a `Dataroot` section. */
export function volumeObject(store: Store, v: VolumeRecord, uses: VolumeUse[], withSize: boolean): Obj {
  const o: Obj = {};
  if (v.createdAt !== undefined) o['CreatedAt'] = goRFC3339Local(v.createdAt);
  o['Driver'] = v.driver;
  o['Labels'] = v.labels;
  o['Mountpoint'] = store.shown(v.dataDir === '' ? `volumes/${v.name}/_data` : v.dataDir);
  o['Name'] = v.name;
  o['Options'] = v.options;
  o['Scope'] = 'local';
  o['Dataroot'] = {
    usedBy: uses,
    ...(withSize ? { sizeOnDisk: diskSize(store, v.dataDir) } : {}),
    inMetadataDb: v.inMetadataDb,
    problems: v.problems,
  };
  return o;
}

export function listVolumes(store: Store, withSize = true): { volumes: Obj[]; problems: Problem[] } {
  const { volumes, problems } = store.volumes;
  const use = usage(store);
  return {
    volumes: volumes.map((v) => volumeObject(store, v, use.get(v.name) ?? [], withSize)),
    problems: [...problems, ...volumes.flatMap((v) => v.problems)],
  };
}

export function inspectVolume(store: Store, name: string): Obj {
  const v = store.volumes.volumes.find((x) => x.name === name);
  if (v === undefined) throw new DatarootError('VOLUME_NOT_FOUND', `No such volume: ${name}`);
  return volumeObject(store, v, usage(store).get(v.name) ?? [], true);
}

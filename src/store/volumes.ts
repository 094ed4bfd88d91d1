import { isBucketEntry } from '../formats/bolt/db.js';
import { utf8 } from '../formats/bytes.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { LIMITS, type Confined } from '../io/confined.js';
import { openBoltIn } from './bolt.js';
import { LAYOUT as L } from './layout.js';
import { problem, problemFrom, type Problem } from './problems.js';
import { readJson } from './fsread.js';

export interface VolumeRecord {
  name: string;
  driver: string;
  labels: Record<string, string> | null;
  options: Record<string, string> | null;
  /** volumes/<name>/_data, relative to the root. */
  dataDir: string;
  /** ctime of _data: what the local driver reports as CreatedAt (an archive cannot keep it). */
  createdAt: Date | undefined;
  inMetadataDb: boolean;
  problems: Problem[];
}

interface VolumeMeta {
  Name?: string;
  Driver?: string;
  Labels?: Record<string, string> | null;
  Options?: Record<string, string> | null;
}

/**
 * Volumes as the local driver and the volume store see them: the entries of the `volumes` bucket
 * of volumes/metadata.db, plus every directory under volumes/ (the local driver lists those even
 * without metadata).
 */
export function readVolumes(fs: Confined): { volumes: VolumeRecord[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const meta = new Map<string, VolumeMeta>();
  {
    try {
      const b = fs.kind(L.volumesDb) === 'file' && fs.lstat(L.volumesDb)?.size === 0 ? undefined : openBoltIn(fs, L.volumesDb);
      if (b !== undefined)
        try {
          const ref = b.db.bucketAt([new TextEncoder().encode('volumes')]);
          if (ref !== undefined) {
            b.db.forEachEntry(ref, b.db.newSeen(), (e) => {
              if (isBucketEntry(e) || e.value.length === 0) return;
              const name = utf8(e.key);
              try {
                const v = parseJsonBounded(utf8(e.value));
                if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
                meta.set(name, v);
              } catch {
                problems.push(problem('VOLUME_METADATA_INVALID', `metadata of volume ${name} is not JSON`, L.volumesDb));
              }
            });
          }
        } finally {
          b.close();
        }
    } catch (e) {
      problems.push(problemFrom(e, 'VOLUME_DB_UNREADABLE', L.volumesDb));
    }
  }
  const names = new Set<string>(meta.keys());
  // The local driver takes every directory under volumes/ as a volume at start.
  for (const n of fs.names(L.volumesDir)) if (fs.isDir(`${L.volumesDir}/${n}`)) names.add(n);
  const volumes = [...names].sort().map((name): VolumeRecord => {
    const m = meta.get(name);
    const vp: Problem[] = [];
    // A name from metadata.db becomes a path only when it is one component.
    const safe = isSafeVolumeName(name);
    if (!safe)
      vp.push(
        problem('ID_INVALID', `volume name ${JSON.stringify(name.slice(0, 100))} is not a valid volume name: its directory is not looked up`, L.volumesDb),
      );
    const dataDir = safe ? `${L.volumesDir}/${name}/_data` : '';
    let createdAt: Date | undefined;
    if (safe) {
      const k = fs.kind(dataDir);
      if (k === 'dir') createdAt = fs.lstat(dataDir)?.ctime;
      else if (k === 'missing') vp.push(problem('VOLUME_DATA_MISSING', `${name}/_data does not exist`, dataDir));
      else
        vp.push(
          problem(k === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'PATH_NOT_A_DIRECTORY', `${name}/_data is a ${k}, not a directory: it is not followed`, dataDir),
        );
    }
    const opts = safe ? readJson(fs, `${L.volumesDir}/${name}/opts.json`, { max: LIMITS.objectJson }) : undefined;
    return {
      name,
      driver: m?.Driver ?? 'local',
      labels: m?.Labels ?? null,
      options: m?.Options ?? (opts?.ok ? (opts.value as Record<string, string>) : null),
      dataDir,
      createdAt,
      inMetadataDb: m !== undefined,
      problems: vp,
    };
  });
  return { volumes, problems };
}

/** dockerd's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (volume/local's validName), also the 64-hex anonymous ones. */
export function isSafeVolumeName(name: string): boolean {
  return /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name) && name.length <= 255 && name !== '..';
}

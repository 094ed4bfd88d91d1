import { join } from 'node:path';
import { statSync } from 'node:fs';
import { isBucketEntry } from '../formats/bolt/db.js';
import { utf8 } from '../formats/bytes.js';
import { DatarootError } from '../formats/errors.js';
import { openBolt } from './bolt.js';
import type { Layout } from './layout.js';
import { problem, type Problem } from './problems.js';
import { exists, isDir, listDir, readJson } from './fsread.js';

export interface VolumeRecord {
  name: string;
  driver: string;
  labels: Record<string, string> | null;
  options: Record<string, string> | null;
  /** <root>/volumes/<name>/_data */
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
export function readVolumes(L: Layout): { volumes: VolumeRecord[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const meta = new Map<string, VolumeMeta>();
  if (exists(L.volumesDb)) {
    try {
      const b = openBolt(L.volumesDb);
      try {
        const ref = b.db.bucketAt([new TextEncoder().encode('volumes')]);
        if (ref !== undefined) {
          b.db.forEachEntry(ref, b.db.newSeen(), (e) => {
            if (isBucketEntry(e) || e.value.length === 0) return;
            const name = utf8(e.key);
            try {
              meta.set(name, JSON.parse(utf8(e.value)) as VolumeMeta);
            } catch {
              problems.push(problem('VOLUME_METADATA_INVALID', `metadata of volume ${name} is not JSON`, L.volumesDb));
            }
          });
        }
      } finally {
        b.close();
      }
    } catch (e) {
      problems.push(problem('VOLUME_DB_UNREADABLE', e instanceof DatarootError ? e.message : String(e), L.volumesDb));
    }
  }
  const names = new Set<string>(meta.keys());
  // The local driver takes every directory under volumes/ as a volume at start.
  for (const n of listDir(L.volumesDir)) if (isDir(join(L.volumesDir, n))) names.add(n);
  const volumes = [...names].sort().map((name): VolumeRecord => {
    const m = meta.get(name);
    const dataDir = join(L.volumesDir, name, '_data');
    let createdAt: Date | undefined;
    const vp: Problem[] = [];
    try {
      createdAt = statSync(dataDir).ctime;
    } catch {
      vp.push(problem('VOLUME_DATA_MISSING', `${name}/_data does not exist`, dataDir));
    }
    const opts = readJson(join(L.volumesDir, name, 'opts.json'));
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

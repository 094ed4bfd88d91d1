import { isBucketEntry } from '../formats/bolt/db.js';
import { utf8 } from '../formats/bytes.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import type { Confined } from '../io/confined.js';
import { openBoltIn } from './bolt.js';
import { LAYOUT as L } from './layout.js';
import { problem, problemFrom, type Problem } from './problems.js';

/** One libnetwork record of local-kv.db: its key parts, dbIndex and JSON. */
export interface KvRecord {
  key: string;
  kind: string;
  ids: string[];
  index: number;
  value: Record<string, unknown>;
}

const PREFIX = 'docker/network/v1.0/';

/** Every `docker/network/v1.0/<kind>/<id…>/` record of the libnetwork bucket, decoded. */
export function readNetworkKv(fs: Confined): { records: KvRecord[]; problems: Problem[] } {
  const records: KvRecord[] = [];
  const problems: Problem[] = [];
  try {
    if (fs.lstat(L.networkDb)?.size === 0) return { records, problems };
    const b = openBoltIn(fs, L.networkDb);
    if (b === undefined) return { records, problems };
    try {
      const ref = b.db.bucketAt([new TextEncoder().encode('libnetwork')]);
      if (ref === undefined) return { records, problems };
      b.db.forEachEntry(ref, b.db.newSeen(), (e) => {
        if (isBucketEntry(e)) return;
        const key = utf8(e.key);
        if (!key.startsWith(PREFIX) || e.value.length <= 8) return;
        const parts = key
          .slice(PREFIX.length)
          .split('/')
          .filter((p) => p !== '');
        const index = Number(new DataView(e.value.buffer, e.value.byteOffset, 8).getBigUint64(0, true));
        try {
          const value = parseJsonBounded(utf8(e.value.subarray(8)));
          if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
          records.push({ key, kind: parts[0] ?? '', ids: parts.slice(1), index, value: value as Record<string, unknown> });
        } catch {
          problems.push(problem('NETWORK_RECORD_INVALID', `${key} does not hold JSON after its 8-byte index`, L.networkDb));
        }
      });
    } finally {
      b.close();
    }
  } catch (e) {
    problems.push(problemFrom(e, 'NETWORK_DB_UNREADABLE', L.networkDb));
  }
  return { records, problems };
}

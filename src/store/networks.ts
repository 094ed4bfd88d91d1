import { isBucketEntry } from '../formats/bolt/db.js';
import { utf8 } from '../formats/bytes.js';
import { DatarootError } from '../formats/errors.js';
import { openBolt } from './bolt.js';
import type { Layout } from './layout.js';
import { problem, type Problem } from './problems.js';
import { exists } from './fsread.js';

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
export function readNetworkKv(L: Layout): { records: KvRecord[]; problems: Problem[] } {
  const records: KvRecord[] = [];
  const problems: Problem[] = [];
  if (!exists(L.networkDb)) return { records, problems };
  try {
    const b = openBolt(L.networkDb);
    try {
      const ref = b.db.bucketAt([new TextEncoder().encode('libnetwork')]);
      if (ref === undefined) return { records, problems };
      b.db.forEachEntry(ref, b.db.newSeen(), (e) => {
        if (isBucketEntry(e)) return;
        const key = utf8(e.key);
        if (!key.startsWith(PREFIX) || e.value.length <= 8) return;
        const parts = key.slice(PREFIX.length).split('/').filter((p) => p !== '');
        const index = Number(new DataView(e.value.buffer, e.value.byteOffset, 8).getBigUint64(0, true));
        try {
          const value = JSON.parse(utf8(e.value.subarray(8))) as Record<string, unknown>;
          records.push({ key, kind: parts[0] ?? '', ids: parts.slice(1), index, value });
        } catch {
          problems.push(problem('NETWORK_RECORD_INVALID', `${key} does not hold JSON after its 8-byte index`, L.networkDb));
        }
      });
    } finally {
      b.close();
    }
  } catch (e) {
    problems.push(problem('NETWORK_DB_UNREADABLE', e instanceof DatarootError ? e.message : String(e), L.networkDb));
  }
  return { records, problems };
}

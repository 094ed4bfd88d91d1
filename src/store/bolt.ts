import { BoltFile } from '../formats/bolt/db.js';
import { FileSource, type FileSourceOptions } from '../io/pagesource.js';
import { isBucketEntry } from '../formats/bolt/db.js';
import { showKey, kindOf, type BoltKind } from './boltdecode.js';

export interface OpenBolt {
  db: BoltFile;
  source: FileSource;
  kind: BoltKind;
  close(): void;
}

/** Opens a bbolt file read-only and unlocked (a file held by a running daemon is read as it is). */
export function openBolt(path: string, opts: FileSourceOptions = {}): OpenBolt {
  const source = FileSource.open(path, opts);
  try {
    const db = BoltFile.open(source, { file: path });
    const top: string[] = [];
    db.forEachEntry(db.rootBucket(), db.newSeen(), (e) => {
      if (isBucketEntry(e)) top.push(showKey(e.key));
    });
    return { db, source, kind: kindOf(top), close: () => source.close() };
  } catch (e) {
    source.close();
    throw e;
  }
}

/** True when the bytes at offset 16 are the bbolt magic (either byte order). */
export function isBoltMagic(head: Uint8Array): boolean {
  if (head.length < 20) return false;
  const m = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(16, true);
  return m === 0xed0cdaed || m === 0xedda0ced;
}

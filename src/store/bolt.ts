import { BoltFile } from '../formats/bolt/db.js';
import type { Confined } from '../io/confined.js';
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
  return boltOver(FileSource.open(path, opts), path);
}

/** A bbolt file of evidence, through the confined layer; undefined when it does not exist. */
export function openBoltIn(fs: Confined, rel: string, opts: FileSourceOptions = {}): OpenBolt | undefined {
  const f = fs.openFile(rel, 'BoltDB file');
  if (f === undefined) return undefined;
  return boltOver(FileSource.fromFd(fs.abs(rel), f.fd, f.size, opts), rel);
}

function boltOver(source: FileSource, path: string): OpenBolt {
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

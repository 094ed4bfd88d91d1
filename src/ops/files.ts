import { parseJsonBounded } from '../formats/json/bounded.js';
import { DatarootError } from '../formats/errors.js';
import { LIMITS, type Confined } from '../io/confined.js';
import { isBoltMagic } from '../store/bolt.js';

export type FileKind = 'bolt' | 'gz' | 'json' | 'text' | 'binary' | 'empty';

export interface FileInfo {
  path: string;
  kind: FileKind;
  size: number;
  mode: string;
  uid: number;
  gid: number;
  mtime: string;
}

/** Classifies a regular file by its bytes: bbolt magic at offset 16, gzip magic, parseable JSON, text. */
export function classify(fs: Confined, rel: string, size: number): FileKind {
  if (size === 0) return 'empty';
  let head: Buffer | undefined;
  try {
    head = fs.readHead(rel, 4096);
  } catch (e) {
    if (e instanceof DatarootError) return 'binary';
    throw e;
  }
  if (head === undefined) return 'empty';
  if (isBoltMagic(head)) return 'bolt';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gz';
  const first = head.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if ((first === 0x7b || first === 0x5b) && size <= LIMITS.sniff) {
    try {
      const text = fs.readText(rel, { max: LIMITS.sniff });
      if (text !== undefined) {
        parseJsonBounded(text);
        return 'json';
      }
    } catch {
      /* not JSON (or too deep: not shown as JSON) */
    }
  }
  for (const b of head) if (b === 0 || b < 0x09 || (b > 0x0d && b < 0x20 && b !== 0x1b)) return 'binary';
  return 'text';
}

export interface FilesOptions {
  type: 'json' | 'bolt' | 'gz' | 'all';
  sort: boolean;
}

/** Regular files under the root, classified, in walk order; `sort` orders by size, largest first. */
export function* iterFiles(fs: Confined, opts: Pick<FilesOptions, 'type'>): Generator<FileInfo> {
  for (const e of fs.walk()) {
    if (!e.stat.isFile()) continue;
    const kind = classify(fs, e.rel, e.stat.size);
    if (opts.type !== 'all' && kind !== opts.type) continue;
    yield {
      path: e.rel,
      kind,
      size: e.stat.size,
      mode: (e.stat.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: e.stat.uid,
      gid: e.stat.gid,
      mtime: e.stat.mtime.toISOString(),
    };
  }
}

export function listFiles(fs: Confined, opts: FilesOptions): FileInfo[] {
  const out = [...iterFiles(fs, opts)];
  if (opts.sort) out.sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
  return out;
}

import { readFileSync } from 'node:fs';
import { readHead, walkTree } from '../io/walk.js';
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

const JSON_SNIFF_LIMIT = 8 << 20;

/** Classifies a file by its bytes: bbolt magic at offset 16, gzip magic, parseable JSON, text. */
export function classify(abs: string, size: number): FileKind {
  if (size === 0) return 'empty';
  const head = readHead(abs, 64);
  if (isBoltMagic(head)) return 'bolt';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gz';
  const first = head.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if ((first === 0x7b || first === 0x5b) && size <= JSON_SNIFF_LIMIT) {
    try {
      JSON.parse(readFileSync(abs, 'utf8'));
      return 'json';
    } catch {
      /* not JSON */
    }
  }
  const sample = size <= 4096 ? readFileSync(abs) : readHead(abs, 4096);
  for (const b of sample) if (b === 0 || (b < 0x09) || (b > 0x0d && b < 0x20 && b !== 0x1b)) return 'binary';
  return 'text';
}

export interface FilesOptions {
  type: 'json' | 'bolt' | 'gz' | 'all';
  sort: boolean;
}

/** Regular files under the root, classified; `sort` orders by size, largest first. */
export function listFiles(root: string, opts: FilesOptions): FileInfo[] {
  const out: FileInfo[] = [];
  for (const e of walkTree(root)) {
    if (!e.stat.isFile()) continue;
    const kind = classify(e.abs, e.stat.size);
    if (opts.type !== 'all' && kind !== opts.type) continue;
    out.push({
      path: e.rel,
      kind,
      size: e.stat.size,
      mode: (e.stat.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: e.stat.uid,
      gid: e.stat.gid,
      mtime: e.stat.mtime.toISOString(),
    });
  }
  if (opts.sort) out.sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
  return out;
}

import { DatarootError } from '../errors.js';
import { resolveLexically } from '../relpath.js';
import { TYPE } from './header.js';
import type { TarEntry } from './reader.js';

/**
 * The rules a layer tar must follow before any of it is written (inject) or called loadable
 * (`verify ARCHIVE`): one definition, so verify refuses exactly what inject refuses.
 *
 * - names are relative, without `..` or NUL (ARCHIVE_LAYER_UNSAFE);
 * - a whiteout names something (`.wh.`, `.wh..`, `.wh...` would hide the directory itself or its
 *   parent: refused);
 * - nothing is written through what is not a directory (a symlink or a file as a parent);
 * - the layer root is never replaced by a non-directory;
 * - a symlink's relative target stays inside the layer;
 * - a hard link points to a file that an earlier entry of the same layer made;
 * - only the types dockerd extracts appear.
 */
const WH = '.wh.';
export const WH_OPQ = '.wh..wh..opq';
const td = new TextDecoder('utf-8', { fatal: true });

/**
 * A tar name as a path relative to the layer root: cleaned, with `./` and the trailing slash
 * dropped. An absolute name or a `..` component is refused.
 */
export function safeRel(name: Uint8Array): string {
  let s: string;
  try {
    s = td.decode(name);
  } catch {
    s = latin1(name);
  }
  if (s.includes('\0')) throw new DatarootError('ARCHIVE_LAYER_UNSAFE', 'the layer has a path with a NUL byte');
  if (s.startsWith('/')) throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `the layer has an absolute path ${JSON.stringify(s)}`);
  const parts = s.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `the layer has a path with "..": ${JSON.stringify(s)}`);
  return parts.join('/');
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/**
 * The name a whiteout entry hides (undefined for other entries and the opaque marker). `.wh.`
 * alone, `.wh..` and `.wh...` are refused: they would hide the directory itself or its parent.
 */
export function whiteoutTarget(rel: string): string | undefined {
  const base = rel.split('/').pop() ?? '';
  if (!base.startsWith(WH) || base === WH_OPQ) return undefined;
  const name = base.slice(WH.length);
  if (name === '' || name === '.' || name === '..' || name.includes('/')) {
    throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `invalid whiteout ${JSON.stringify(rel)}: it names ${name === '' ? 'nothing' : JSON.stringify(name)}`);
  }
  return name;
}

/** Whether a relative symlink target resolves, lexically from the link's directory, inside the layer. */
export function symlinkStaysInside(rel: string, target: string): boolean {
  if (target.startsWith('/')) return true; // resolved inside the container's root
  return resolveLexically(rel.split('/').slice(0, -1), target) !== undefined;
}

const EXTRACTED = new Set<number>([TYPE.DIR, TYPE.REG, TYPE.CONT, TYPE.SYMLINK, TYPE.LINK, TYPE.CHAR, TYPE.BLOCK, TYPE.FIFO]);

export interface CheckedEntry {
  rel: string;
  /** For a whiteout: the path it hides. */
  whiteout?: string;
  /** The opaque marker of the directory `rel`'s parent. */
  opaque?: boolean;
  /** For a hard link: its target. */
  linkTarget?: string;
}

/**
 * Checks the entries of one layer in order, tracking what the layer has made so far (relative
 * path → is a directory). `whiteouts` says whether `.wh.` names are whiteouts (layers) or plain
 * names (evidence unpacked as it is); `symlinks` whether a symlink's target must stay inside.
 */
export class LayerCheck {
  private readonly present: Map<string, boolean>;

  constructor(
    private readonly whiteouts: boolean,
    private readonly symlinks: 'inside' | 'any' = 'inside',
    existing?: Map<string, boolean>,
  ) {
    this.present = existing ?? new Map<string, boolean>();
  }

  entry(e: TarEntry): CheckedEntry | undefined {
    if (e.type === TYPE.PAX_GLOBAL) return undefined;
    const rel = safeRel(e.name);
    const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const base = rel.split('/').pop() ?? '';
    this.parents(rel);
    if (this.whiteouts && base.startsWith(WH)) {
      if (base === WH_OPQ) return { rel, opaque: true };
      const name = whiteoutTarget(rel)!;
      const target = parent === '' ? name : `${parent}/${name}`;
      this.remove(target);
      return { rel, whiteout: target };
    }
    if (!EXTRACTED.has(e.type)) {
      throw new DatarootError(
        'ARCHIVE_LAYER_INVALID',
        `entry ${JSON.stringify(rel)} has tar type ${JSON.stringify(String.fromCharCode(e.type))}, which dockerd does not extract`,
      );
    }
    if (rel === '' && e.type !== TYPE.DIR) throw new DatarootError('ARCHIVE_LAYER_UNSAFE', 'the layer replaces its own root directory with a non-directory');
    if (e.type === TYPE.SYMLINK && this.symlinks === 'inside') {
      const target = new TextDecoder().decode(e.linkname);
      if (!symlinkStaysInside(rel, target))
        throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `symlink ${JSON.stringify(rel)} -> ${JSON.stringify(target)} leads outside the layer`);
    }
    let linkTarget: string | undefined;
    if (e.type === TYPE.LINK) {
      linkTarget = safeRel(e.linkname);
      if (linkTarget === '') throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `hard link ${JSON.stringify(rel)} points at the layer root`);
      const isDir = this.present.get(linkTarget);
      if (isDir === undefined)
        throw new DatarootError('ARCHIVE_LAYER_INVALID', `hard link ${JSON.stringify(rel)} points to ${JSON.stringify(linkTarget)}, which is not in the layer`);
      if (isDir) throw new DatarootError('ARCHIVE_LAYER_UNSAFE', `hard link ${JSON.stringify(rel)} points to a directory`);
    }
    const existing = rel === '' ? true : this.present.get(rel);
    if (existing !== undefined && !(existing && e.type === TYPE.DIR)) this.remove(rel);
    if (rel !== '') this.present.set(rel, e.type === TYPE.DIR);
    return linkTarget !== undefined ? { rel, linkTarget } : { rel };
  }

  /** Every ancestor of rel must be a directory when present (never a symlink or a file); missing ones become directories. */
  private parents(rel: string): void {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === '' ? parts[i]! : `${cur}/${parts[i]!}`;
      const isDir = this.present.get(cur);
      if (isDir === undefined) this.present.set(cur, true);
      else if (!isDir)
        throw new DatarootError(
          'ARCHIVE_LAYER_UNSAFE',
          `${JSON.stringify(rel)} goes through ${JSON.stringify(cur)}, which is not a directory (a symlink would lead outside the layer)`,
        );
    }
  }

  private remove(rel: string): void {
    const under = `${rel}/`;
    if (this.present.get(rel) === true) for (const k of [...this.present.keys()]) if (k.startsWith(under)) this.present.delete(k);
    this.present.delete(rel);
  }
}

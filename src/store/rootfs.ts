import { lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { getXattr } from '../io/native.js';

/**
 * The file tree a container or image layer shows, built from the layer directories on disk the
 * way the kernel's overlay filesystem merges them: the topmost layer wins, a 0/0 character device
 * is a whiteout that hides the name below, and a directory with `trusted.overlay.opaque=y` hides
 * everything below it. A vfs layer is a single full directory (no merging).
 */
export interface FsNode {
  name: string;
  /** The physical path the entry is read from (in the topmost layer that has it). */
  abs: string;
  stat: BigIntStats;
  /** The security.capability xattr (dockerd's change detection compares it). */
  capability: Buffer | undefined;
  children: Map<string, FsNode> | undefined;
}

export function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

function lstatOrUndefined(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

function isOpaque(p: string): boolean {
  const v = getXattr(p, 'trusted.overlay.opaque');
  return v !== undefined && v.length === 1 && v[0] === 0x79;
}

function capabilityOf(p: string, st: BigIntStats): Buffer | undefined {
  if (st.isSymbolicLink()) return undefined;
  return getXattr(p, 'security.capability');
}

function names(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The merged tree of `layers` (topmost first). With `overlay` false, only the first layer is read
 * (vfs layers are complete root filesystems).
 */
export function buildView(layers: readonly string[], overlay: boolean, maxEntries = 5_000_000): FsNode {
  const top = layers[0];
  if (top === undefined) throw new Error('buildView: no layers');
  let count = 0;
  const mergeDir = (dirs: readonly string[], rel: string, node: FsNode): void => {
    const children = new Map<string, FsNode>();
    const hidden = new Set<string>();
    // For each child that is a directory: the layer dirs that contribute to it (topmost first),
    // until one is opaque or a lower layer has something else by that name.
    const subdirs = new Map<string, { dirs: string[]; closed: boolean }>();
    for (const base of dirs) {
      const here = rel === '' ? base : join(base, rel);
      for (const name of names(here)) {
        if (hidden.has(name)) continue;
        const abs = join(here, name);
        const existing = children.get(name);
        if (existing !== undefined) {
          const open = subdirs.get(name);
          if (open !== undefined && !open.closed) {
            if (lstatOrUndefined(abs)?.isDirectory() === true) {
              open.dirs.push(base);
              if (isOpaque(abs)) open.closed = true;
            } else open.closed = true;
          }
          continue;
        }
        const st = lstatOrUndefined(abs);
        if (st === undefined) continue;
        if (overlay && isWhiteout(st)) {
          hidden.add(name);
          continue;
        }
        if (++count > maxEntries) throw new Error(`more than ${maxEntries} entries`);
        children.set(name, { name, abs, stat: st, capability: capabilityOf(abs, st), children: undefined });
        if (st.isDirectory()) subdirs.set(name, { dirs: [base], closed: overlay && isOpaque(abs) });
      }
      if (!overlay) break;
    }
    node.children = children;
    for (const [name, open] of subdirs) mergeDir(open.dirs, rel === '' ? name : join(rel, name), children.get(name)!);
  };
  const st = lstatSync(top, { bigint: true });
  const root: FsNode = { name: '/', abs: top, stat: st, capability: undefined, children: undefined };
  mergeDir(layers, '', root);
  return root;
}

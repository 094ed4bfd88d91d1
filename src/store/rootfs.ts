import type { BigIntStats } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import type { Confined } from '../io/confined.js';
import { getXattr } from '../io/native.js';

/**
 * The file tree a container or image layer shows, built from the layer directories on disk the
 * way the kernel's union filesystem merges them: the topmost layer wins, a whiteout hides the name
 * below, an opaque directory hides everything below it. A full-tree driver's layer is a single
 * directory (no merging). Every path is read through the root's confined layer and never through
 * a symlink; the walk is iterative, so a deep tree cannot overflow the stack.
 */
export interface FsNode {
  name: string;
  /** The entry's path relative to the root, in the topmost layer that has it. */
  rel: string;
  stat: BigIntStats;
  /** The security.capability xattr (dockerd's change detection compares it). */
  capability: Buffer | undefined;
  children: Map<string, FsNode> | undefined;
}

/** How a driver marks whiteouts and opaque directories. */
export interface WhiteoutRules {
  /** overlayfs: a 0/0 character device hides the name. */
  charDevice: boolean;
  /** aufs (and fuse-overlayfs without privileges): a file `.wh.NAME` hides NAME. */
  prefixFiles: boolean;
  /** xattrs whose value `y` makes a directory opaque. */
  opaqueXattrs: string[];
  /** A `.wh..wh..opq` entry makes its directory opaque. */
  opaqueMarker: boolean;
  /** Driver-internal names never shown (aufs `.wh..wh.plnk`, `.wh..wh.aufs`). */
  hidden: string[];
}

export const WHITEOUTS = {
  overlay: { charDevice: true, prefixFiles: false, opaqueXattrs: ['trusted.overlay.opaque'], opaqueMarker: false, hidden: [] },
  fuseOverlayfs: {
    charDevice: true,
    prefixFiles: true,
    opaqueXattrs: ['trusted.overlay.opaque', 'user.fuseoverlayfs.opaque', 'user.overlay.opaque'],
    opaqueMarker: true,
    hidden: [],
  },
  aufs: { charDevice: false, prefixFiles: true, opaqueXattrs: [], opaqueMarker: true, hidden: ['.wh..wh.plnk', '.wh..wh.aufs', '.wh..wh.orph'] },
  none: { charDevice: false, prefixFiles: false, opaqueXattrs: [], opaqueMarker: false, hidden: [] },
} as const satisfies Record<string, WhiteoutRules>;

const WH = '.wh.';
const WH_OPQ = '.wh..wh..opq';

export function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

/** An xattr of the evidence, undefined when it cannot be read; `strict`: without the addon, IO_NATIVE_UNAVAILABLE. */
function xattrOf(fs: Confined, rel: string, name: string, strict = false): Buffer | undefined {
  try {
    return getXattr(fs.abs(rel), name);
  } catch (e) {
    if (e instanceof DatarootError && !(strict && e.code === 'IO_NATIVE_UNAVAILABLE')) return undefined;
    throw e;
  }
}

function isOpaqueDir(fs: Confined, rel: string, rules: WhiteoutRules): boolean {
  // Without the addon opaque directories cannot be seen: a view read so would show what they hide.
  for (const x of rules.opaqueXattrs) {
    const v = xattrOf(fs, rel, x, true);
    if (v !== undefined && v.length === 1 && v[0] === 0x79) return true;
  }
  return rules.opaqueMarker && fs.kind(`${rel}/${WH_OPQ}`) !== 'missing';
}

function capabilityOf(fs: Confined, rel: string, st: BigIntStats): Buffer | undefined {
  if (st.isSymbolicLink()) return undefined;
  return xattrOf(fs, rel, 'security.capability');
}

/**
 * The merged tree of `layers` (directories relative to the root, topmost first). With the 'none'
 * rules only the first layer is read (full-tree layers are complete root filesystems).
 */
export function buildView(fs: Confined, layers: readonly string[], rules: WhiteoutRules, maxEntries = 5_000_000): FsNode {
  const top = layers[0];
  if (top === undefined) throw new DatarootError('INTERNAL', 'buildView: no layers');
  const merge = rules !== WHITEOUTS.none;
  const st = fs.lstatBig(top);
  if (st === undefined || !st.isDirectory()) throw new DatarootError('LAYER_DIR_MISSING', `${top} is not a directory`, { file: fs.abs(top) });
  const root: FsNode = { name: '/', rel: top, stat: st, capability: undefined, children: undefined };
  let count = 0;
  const stack: { dirs: string[]; rel: string; node: FsNode }[] = [{ dirs: merge ? [...layers] : [top], rel: '', node: root }];
  while (stack.length > 0) {
    const { dirs, rel, node } = stack.pop()!;
    const children = new Map<string, FsNode>();
    const hidden = new Set<string>();
    // For each child that is a directory: the layer dirs that contribute to it (topmost first),
    // until one is opaque or a lower layer has something else by that name.
    const subdirs = new Map<string, { dirs: string[]; closed: boolean }>();
    for (const base of dirs) {
      const here = rel === '' ? base : `${base}/${rel}`;
      const names = fs.names(here);
      // Whiteout files of this layer hide names of the layers below (not their own siblings).
      const hideBelow: string[] = [];
      for (const name of names) {
        if (rules.hidden.includes(name)) continue;
        if (rules.opaqueMarker && name === WH_OPQ) continue;
        if (rules.prefixFiles && name.startsWith(WH)) {
          hideBelow.push(name.slice(WH.length));
          continue;
        }
        if (hidden.has(name)) continue;
        const abs = `${here}/${name}`;
        const existing = children.get(name);
        if (existing !== undefined) {
          const open = subdirs.get(name);
          if (open !== undefined && !open.closed) {
            if (fs.lstatBig(abs)?.isDirectory() === true) {
              open.dirs.push(base);
              if (isOpaqueDir(fs, abs, rules)) open.closed = true;
            } else open.closed = true;
          }
          continue;
        }
        const cst = fs.lstatBig(abs);
        if (cst === undefined) continue;
        if (rules.charDevice && isWhiteout(cst)) {
          hidden.add(name);
          continue;
        }
        if (++count > maxEntries) throw new DatarootError('TREE_TOO_LARGE', `the tree has more than ${maxEntries} entries`, { file: fs.abs(top) });
        children.set(name, { name, rel: abs, stat: cst, capability: capabilityOf(fs, abs, cst), children: undefined });
        if (cst.isDirectory()) subdirs.set(name, { dirs: [base], closed: merge && isOpaqueDir(fs, abs, rules) });
      }
      for (const n of hideBelow) hidden.add(n);
      if (!merge) break;
    }
    node.children = children;
    for (const [name, open] of subdirs) stack.push({ dirs: open.dirs, rel: rel === '' ? name : `${rel}/${name}`, node: children.get(name)! });
  }
  return root;
}

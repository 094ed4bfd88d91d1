import { createHash } from 'node:crypto';
import { DatarootError } from '../formats/errors.js';
import { LIMITS } from '../io/confined.js';
import type { MountStep } from '../io/mounter.js';
import { LINK_ID, LINK_TARGET, LOWER_ENTRY, MOUNT_ID } from '../store/ids.js';
import { DiskLayer, isDirStat, resolveInView, VirtualLayer, type ViewLayer, type VirtualNode } from '../store/mergedview.js';
import type { Store } from '../store/model.js';
import type { Problem } from '../store/problems.js';
import { dockerCreateLayer, imageLayers, mountIdOf, stackDirs, topCacheId, type Target, type TargetView, contentUnsupported } from './views.js';

/**
 * `dataroot mount`: a read-only mount of the view `export` writes, for analysts who want their
 * own tools. The plan is data (directories to make, one or two mounts) so that `--print` can show
 * it as a shell script and `mount` can run it:
 *
 * - overlay2: a lower-only (hence read-only) overlay of the layers through the driver's short
 *   `l/` links, run in the driver home as dockerd runs it, so that `lowerdir` stays far below the
 *   kernel's one-page (4,096-byte) limit for mount options; an image whose list still does not fit
 *   (dockerd stops at 128 layers, other tools build more) has its bottom layers merged first into
 *   an inner overlay, which becomes the lowest layer of the outer one (a whiteout or opaque
 *   directory only ever hides layers below it, so merging the bottom group first is exact);
 * - fuse-overlayfs: the same with fuse-overlayfs, which also reads the `.wh.` whiteout files the
 *   kernel's overlay does not know;
 * - overlay (v1): the container's upper over its lower root; an image's layer is a full tree;
 * - vfs, btrfs, zfs: a container's layer is its full tree, mounted with a read-only bind mount;
 * - aufs: refused (the kernel's overlay reads aufs whiteouts as files): use export -o DIR.
 *
 * An image is shown as `docker create` leaves it (as export shows it): the init layer and working
 * directory docker create adds are made in a private directory of dataroot's state dir and
 * mounted as the top layer. Every mount is read-only, nodev, nosuid and noexec.
 */

export type Step = MountStep;

export interface MountPlan {
  target: string;
  /** dataroot's directory for this mount (init layer, inner mount point, state). */
  stateDir: string;
  driver: string;
  kind: 'overlay' | 'fuse-overlayfs' | 'bind';
  layers: number;
  /** Steps in order; the last is the mount of the target. */
  steps: Step[];
  problems: Problem[];
}

/** The kernel copies at most one page of mount options, with its NUL. */
export const MOUNT_DATA_MAX = 4095;
const FLAGS = 'ro,nodev,nosuid,noexec';

/** dataroot's state directory for a mount target (one per target path). */
export function stateDirFor(runDir: string, target: string): string {
  return `${runDir}/mounts/${createHash('sha256').update(target).digest('hex').slice(0, 24)}`;
}

/** The l/ names a mount of an overlay2 id stacks (its own link first), each checked to lead to a real layer directory. */
function overlayLinks(store: Store, id: string): string[] {
  const home = store.driver;
  const fs = store.fs;
  const read = (f: string): string | undefined => fs.readText(`${home}/${id}/${f}`, { max: LIMITS.meta, what: f })?.trim();
  const own = read('link');
  if (own === undefined || !LINK_ID.test(own))
    throw new DatarootError(
      'OVERLAY_LINK_INVALID',
      `${home}/${id}/link is ${own === undefined ? 'missing' : JSON.stringify(own.slice(0, 80))}, not a 26-character l/ name`,
      { file: store.shown(`${home}/${id}/link`) },
    );
  const lower = read('lower');
  const entries = [`l/${own}`, ...(lower === undefined || lower === '' ? [] : lower.split(':'))];
  for (const e of entries) {
    if (!LOWER_ENTRY.test(e))
      throw new DatarootError('OVERLAY_LOWER_INVALID', `${home}/${id}/lower names ${JSON.stringify(e.slice(0, 80))}, not an l/ link`, {
        file: store.shown(`${home}/${id}/lower`),
      });
    const target = fs.readlink(`${home}/${e}`);
    if (target === undefined)
      throw new DatarootError('OVERLAY_LINK_BROKEN', `${home}/${e} is not a symlink: the mount would fail`, { file: store.shown(`${home}/${e}`) });
    const m = LINK_TARGET.exec(target);
    if (m === null || !MOUNT_ID.test(m[1]!))
      throw new DatarootError('SYMLINK_OUT_OF_ROOT', `${home}/${e} points to ${JSON.stringify(target)}, not ../<layer id>/diff: it is not mounted`, {
        file: store.shown(`${home}/${e}`),
        target,
      });
    // The kernel follows the link and then the path: both components must be real directories.
    for (const d of [`${home}/${m[1]}`, `${home}/${m[1]}/diff`]) {
      const k = fs.kind(d);
      if (k === 'symlink') throw fs.symlinkError(d);
      if (k !== 'dir')
        throw new DatarootError('LAYER_DIR_MISSING', `${d} (through ${home}/${e}) is ${k === 'missing' ? 'missing' : `a ${k}`}`, { file: store.shown(d) });
    }
  }
  return entries;
}

/** The lowerdir lists of one or two overlay mounts for `dirs` (topmost first): [outer, inner?]. */
export function splitLowers(dirs: string[], fixed: number, max = MOUNT_DATA_MAX): { outer: string[]; inner?: string[] } {
  const len = (xs: string[]): number => Buffer.byteLength(`lowerdir=${xs.join(':')}`) + fixed;
  if (len(dirs) <= max) return { outer: dirs };
  // The inner mount takes as many bottom layers as fit; the outer the rest, plus the inner's mount point.
  let k = dirs.length;
  while (k > 1 && len(dirs.slice(k - 1)) <= max) k--;
  const inner = dirs.slice(k);
  const outer = dirs.slice(0, k);
  if (inner.length < 2 || len([...outer, 'X'.repeat(200)]) > max) {
    throw new DatarootError('MOUNT_TOO_MANY_LAYERS', `${dirs.length} layers do not fit two overlay mounts of ${max} bytes of options: use export -o DIR`);
  }
  return { outer, inner };
}

function initSteps(layers: readonly ViewLayer[], v: VirtualLayer, dir: string): Step[] {
  const below = layers.slice(1);
  // The top layer's root directory gives the view's root its attributes: those of the image's root.
  const root = below.length > 0 ? resolveInView(below, '').found?.stat : undefined;
  const steps: Step[] = [
    { op: 'mkdir', path: dir, mode: (root?.mode ?? 0o755) & 0o7777, uid: root?.uid ?? 0, gid: root?.gid ?? 0, mtimeMs: root?.mtimeMs ?? 0, opaque: false },
  ];
  const walk = (n: VirtualNode & { children: Map<string, VirtualNode> }, rel: string): void => {
    for (const [name, c] of [...n.children].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const p = rel === '' ? name : `${rel}/${name}`;
      const abs = `${dir}/${Buffer.from(p, 'latin1').toString('utf8')}`;
      if (c.kind === 'keep') {
        // A directory that exists below: the same attributes, so that the view shows them.
        const r = resolveInView(below, p);
        const st = r.found !== undefined && isDirStat(r.found.stat) ? r.found.stat : undefined;
        steps.push({
          op: 'mkdir',
          path: abs,
          mode: (st?.mode ?? 0o755) & 0o7777,
          uid: st?.uid ?? 0,
          gid: st?.gid ?? 0,
          mtimeMs: st?.mtimeMs ?? 0,
          opaque: false,
        });
        walk(c, p);
      } else if (c.kind === 'dir') {
        steps.push({ op: 'mkdir', path: abs, mode: c.stat.mode & 0o7777, uid: 0, gid: 0, mtimeMs: c.stat.mtimeMs, opaque: true });
        walk(c, p);
      } else if (c.kind === 'file') steps.push({ op: 'file', path: abs, mode: c.stat.mode & 0o7777, uid: 0, gid: 0, mtimeMs: c.stat.mtimeMs });
      else steps.push({ op: 'symlink', path: abs, target: Buffer.from(c.target, 'latin1').toString('utf8'), uid: 0, gid: 0 });
    }
  };
  walk(v.root, '');
  return steps;
}

/**
 * Steps that mount the lower directories `all` (topmost first, relative to `cwd` or absolute)
 * read-only at `target`: one overlay, or two when the list does not fit one mount's options (the
 * bottom ones merged first), or a bind mount of `single` when there is one directory (an overlay
 * needs two).
 */
function overlaySteps(steps: Step[], all: string[], cwd: string, single: string, stateDir: string, target: string): 'overlay' | 'bind' {
  if (all.length === 1) {
    steps.push({ op: 'mount', type: 'bind', cwd, source: single, options: `bind,${FLAGS}`, target });
    return 'bind';
  }
  const { outer, inner } = splitLowers(all, Buffer.byteLength(`,${FLAGS}`));
  if (inner !== undefined) {
    const innerDir = `${stateDir}/lower`;
    steps.push({ op: 'mkdir', path: innerDir, mode: 0o700, uid: 0, gid: 0, mtimeMs: 0, opaque: false });
    steps.push({ op: 'mount', type: 'overlay', cwd, source: 'overlay', options: `${FLAGS},lowerdir=${inner.join(':')}`, target: innerDir });
    outer.push(innerDir);
  }
  steps.push({ op: 'mount', type: 'overlay', cwd, source: 'overlay', options: `${FLAGS},lowerdir=${outer.join(':')}`, target });
  return 'overlay';
}

/**
 * The plan to mount a view of snapshot directories (Docker's containerd image store: overlayfs
 * snapshots stacked, a native one a full tree) read-only at `target`. The directories are given
 * relative to their common parent, the mount run there, so that the options stay short.
 */
export function planViewMount(view: TargetView, base: string, snapshotter: string, target: string, runDir: string): MountPlan {
  const stateDir = stateDirFor(runDir, target);
  const steps: Step[] = [];
  let layers = view.layers;
  let init: string | undefined;
  const top = layers[0];
  if (top instanceof VirtualLayer) {
    init = `${stateDir}/init`;
    steps.push(...initSteps(layers, top, init));
    layers = layers.slice(1);
  }
  const dirs = layers.map((l) => {
    if (!(l instanceof DiskLayer)) throw new DatarootError('INTERNAL', `a view layer below the top is not a directory: ${l.label}`);
    return l.dir;
  });
  const prefix = commonParent(dirs);
  const cwd = prefix === '' ? base : `${base}/${prefix}`;
  const rel = dirs.map((d) => (prefix === '' ? d : d.slice(prefix.length + 1)));
  const all = [...(init !== undefined ? [init] : []), ...rel];
  if (all.length === 0) throw new DatarootError('MOUNT_NOTHING', 'the image has no layers');
  const kind = overlaySteps(steps, all, cwd, init ?? `${base}/${dirs[0]!}`, stateDir, target);
  return { target, stateDir, driver: snapshotter, kind, layers: dirs.length, steps, problems: [...view.problems] };
}

/** The longest directory all of `dirs` are below ('' when none is shared). */
function commonParent(dirs: string[]): string {
  if (dirs.length === 0) return '';
  let parts = dirs[0]!.split('/').slice(0, -1);
  for (const d of dirs.slice(1)) {
    const p = d.split('/');
    let i = 0;
    while (i < parts.length && i < p.length - 1 && parts[i] === p[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join('/');
}

/** The plan to mount `t` read-only at `target` (an absolute path). */
export function planMount(store: Store, t: Target, target: string, runDir: string, now = Date.now()): MountPlan {
  const a = store.adapter;
  const driver = store.driver;
  if (a.content === 'none') throw contentUnsupported(store);
  if (driver === 'aufs') {
    throw new DatarootError(
      'MOUNT_AUFS_UNSUPPORTED',
      'an aufs root needs the aufs module to mount, and overlay over aufs layers would show their .wh. whiteout files as files: use dataroot export -o DIR',
    );
  }
  const stateDir = stateDirFor(runDir, target);
  const problems: Problem[] = [];
  const steps: Step[] = [];
  const rootAbs = store.fs.base;
  let init: string | undefined;
  if (t.kind === 'image') {
    const below = imageLayers(store, t.image!);
    const wd = t.image!.config?.config?.['WorkingDir'];
    const v = dockerCreateLayer(below, typeof wd === 'string' ? wd : undefined, now, problems);
    init = `${stateDir}/init`;
    steps.push(...initSteps([v, ...below], v, init));
  }
  const plan = (kind: MountPlan['kind'], layers: number): MountPlan => ({ target, stateDir, driver, kind, layers, steps, problems });

  if (driver === 'overlay2' || driver === 'fuse-overlayfs') {
    const id = t.kind === 'container' ? mountIdOf(store, t.container!).mountId : topCacheId(store, t.image!);
    const home = `${rootAbs}/${driver}`;
    const links = id === undefined ? [] : overlayLinks(store, id);
    // Only links are passed (relative to the driver home); the init layer's absolute dir goes on top.
    const all = [...(init !== undefined ? [init] : []), ...links];
    if (all.length === 0) throw new DatarootError('MOUNT_NOTHING', 'the image has no layers');
    if (driver === 'fuse-overlayfs') {
      steps.push({ op: 'mount', type: 'fuse-overlayfs', cwd: home, source: 'fuse-overlayfs', options: `lowerdir=${all.join(':')},${FLAGS}`, target });
      return plan('fuse-overlayfs', links.length);
    }
    return plan(overlaySteps(steps, all, home, init ?? `${home}/${id}/diff`, stateDir, target), links.length);
  }

  // overlay (v1), vfs, btrfs, zfs: the directories of the view, topmost first.
  let dirs: string[];
  if (t.kind === 'container') dirs = stackDirs(store, mountIdOf(store, t.container!).mountId, 'the container layer').dirs;
  else {
    const top = topCacheId(store, t.image!);
    dirs = top === undefined ? [] : stackDirs(store, top, 'the image layer').dirs;
  }
  const absDirs = [...(init !== undefined ? [init] : []), ...dirs.map((d) => `${rootAbs}/${d}`)];
  if (absDirs.length === 1) {
    steps.push({ op: 'mount', type: 'bind', cwd: rootAbs, source: absDirs[0]!, options: `bind,${FLAGS}`, target });
    return plan('bind', dirs.length);
  }
  // Relative to the root where they are its directories, so that the options stay short.
  const rel = [...(init !== undefined ? [init] : []), ...dirs];
  steps.push({ op: 'mount', type: 'overlay', cwd: rootAbs, source: 'overlay', options: `${FLAGS},lowerdir=${rel.join(':')}`, target });
  if (Buffer.byteLength(rel.join(':')) + 40 > MOUNT_DATA_MAX)
    throw new DatarootError('MOUNT_TOO_MANY_LAYERS', 'the layer list does not fit the mount options: use export -o DIR');
  return plan('overlay', dirs.length);
}

function q(s: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The plan as a shell script (what `--print` shows). */
export function planScript(p: MountPlan): string {
  const out: string[] = [];
  for (const s of p.steps) {
    switch (s.op) {
      case 'mkdir':
        out.push(`mkdir -p -m ${(s.mode & 0o7777).toString(8)} ${q(s.path)}`);
        if (s.uid !== 0 || s.gid !== 0) out.push(`chown ${s.uid}:${s.gid} ${q(s.path)}`);
        if (s.opaque) out.push(`setfattr -n trusted.overlay.opaque -v y ${q(s.path)}`);
        break;
      case 'file':
        out.push(`install -m ${(s.mode & 0o7777).toString(8)} /dev/null ${q(s.path)}`);
        break;
      case 'symlink':
        out.push(`ln -s ${q(s.target)} ${q(s.path)}`);
        break;
      case 'mount':
        if (s.type === 'fuse-overlayfs') out.push(`(cd ${q(s.cwd)} && fuse-overlayfs -o ${q(s.options)} ${q(s.target)})`);
        else if (s.type === 'bind') out.push(`mount -o ${q(s.options)} ${q(s.source)} ${q(s.target)}`);
        else out.push(`(cd ${q(s.cwd)} && mount -t overlay overlay -o ${q(s.options)} ${q(s.target)})`);
        break;
    }
  }
  return `${out.join('\n')}\n`;
}

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  fchownSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  constants,
} from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { setXattr } from './native.js';

/**
 * Runs the steps of a mount plan (directories of the init layer, then the mounts) and undoes
 * them. The plan's paths are all below dataroot's own state directory or the target the user
 * named; nothing here reads evidence. What each mount was is recorded in the state directory,
 * so that `umount` takes down exactly what `mount` made.
 */

export type MountStep =
  | { op: 'mkdir'; path: string; mode: number; uid: number; gid: number; mtimeMs: number; opaque: boolean }
  | { op: 'file'; path: string; mode: number; uid: number; gid: number; mtimeMs: number }
  | { op: 'symlink'; path: string; target: string; uid: number; gid: number }
  | { op: 'mount'; type: 'overlay' | 'bind' | 'fuse-overlayfs'; cwd: string; source: string; options: string; target: string };

interface State {
  target: string;
  /** Mount points, innermost last: unmounted in reverse order of mounting. */
  mounts: string[];
  what: string;
  made: string;
}

/** Whether a path is a mount point (from /proc/self/mountinfo). */
export function isMountPoint(path: string): boolean {
  const esc = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === esc);
}

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.error !== undefined) throw new DatarootError('MOUNT_FAILED', `${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new DatarootError('MOUNT_FAILED', `${cmd} ${args.join(' ').slice(0, 300)}: ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
}

function mountOne(s: MountStep & { op: 'mount' }): void {
  if (s.type === 'fuse-overlayfs') run('fuse-overlayfs', ['-o', s.options, s.target], s.cwd);
  else if (s.type === 'bind') {
    run('mount', ['--bind', s.source, s.target], s.cwd);
    try {
      run('mount', ['-o', `remount,${s.options}`, s.target], s.cwd);
    } catch (e) {
      spawnSync('umount', [s.target]);
      throw e;
    }
  } else run('mount', ['-t', 'overlay', s.source, '-o', s.options, s.target], s.cwd);
}

/** Runs a plan; on failure everything made is taken down again. */
export function runMountPlan(stateDir: string, target: string, what: string, steps: readonly MountStep[]): void {
  if (existsSync(`${stateDir}/state.json`))
    throw new DatarootError('MOUNT_BUSY', `${target} is already mounted by dataroot (dataroot umount ${target})`, { file: target });
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const mounted: string[] = [];
  const times: { path: string; mtimeMs: number }[] = [];
  try {
    for (const s of steps) {
      switch (s.op) {
        case 'mkdir':
          mkdirSync(s.path);
          lchownSync(s.path, s.uid, s.gid);
          chmodSync(s.path, s.mode);
          if (s.opaque) setXattr(s.path, 'trusted.overlay.opaque', Buffer.from('y'));
          times.push({ path: s.path, mtimeMs: s.mtimeMs });
          break;
        case 'file': {
          const fd = openSync(s.path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
          try {
            fchownSync(fd, s.uid, s.gid);
            fchmodSync(fd, s.mode);
          } finally {
            closeSync(fd);
          }
          times.push({ path: s.path, mtimeMs: s.mtimeMs });
          break;
        }
        case 'symlink':
          symlinkSync(s.target, s.path);
          lchownSync(s.path, s.uid, s.gid);
          break;
        case 'mount':
          // Directory times last (children change them), before the layer is mounted.
          for (const t of times.reverse()) utimesSync(t.path, t.mtimeMs / 1000, t.mtimeMs / 1000);
          times.length = 0;
          mountOne(s);
          mounted.push(s.target);
          break;
      }
    }
  } catch (e) {
    for (const m of mounted.reverse()) spawnSync('umount', [m]);
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const state: State = { target, mounts: mounted, what, made: new Date().toISOString() };
  writeFileSync(`${stateDir}/state.json`, JSON.stringify(state, null, 2), { mode: 0o600 });
}

/** Takes down what runMountPlan made for `target` (the target first, then inner mounts), and its state. */
export function runUnmount(stateDir: string, target: string): { unmounted: string[] } {
  let state: State;
  try {
    state = JSON.parse(readFileSync(`${stateDir}/state.json`, 'utf8')) as State;
  } catch {
    throw new DatarootError('UMOUNT_NOT_DATAROOT', `${target} was not mounted by dataroot mount (no record of it): use umount(8)`, { file: target });
  }
  const done: string[] = [];
  for (const m of [...state.mounts].reverse()) {
    if (!isMountPoint(m)) continue;
    const r = spawnSync('umount', [m], { encoding: 'utf8' });
    if (r.status !== 0) throw new DatarootError('UMOUNT_FAILED', `umount ${m}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`, { file: m });
    done.push(m);
  }
  // Only dataroot's own directories are removed: the state dir holds the init layer and the inner mount point.
  for (const n of readdirSync(stateDir)) {
    const p = `${stateDir}/${n}`;
    if (lstatSync(p).isDirectory() && isMountPoint(p)) throw new DatarootError('UMOUNT_FAILED', `${p} is still mounted`, { file: p });
  }
  rmSync(stateDir, { recursive: true, force: true });
  return { unmounted: done };
}

import type { Command } from 'commander';
import { lstatSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { isMountPoint, runMountPlan, runUnmount } from '../io/mounter.js';
import { dockerCdView } from '../ops/cdviews.js';
import { planMount, planScript, planViewMount, stateDirFor, type MountPlan } from '../ops/mount.js';
import { findTarget, type TargetView } from '../ops/views.js';
import { chosenContainerd, noteBothStores, withDockerStores } from './cddocker.js';
import { legacyUnsupported } from './legacy.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson } from './render.js';
import { reportProblems, requireContent } from './storectx.js';

/** dataroot's run directory (mount records and init layers): DATAROOT_RUN_DIR, else /run/dataroot. */
function runDir(ctx: Ctx): string {
  const d = ctx.env['DATAROOT_RUN_DIR'];
  return d !== undefined && d !== '' ? resolve(ctx.cwd, d) : '/run/dataroot';
}

/** The mount target: an existing real directory (its resolved path keys dataroot's record). */
function targetDir(ctx: Ctx, dir: string): string {
  const abs = resolve(ctx.cwd, dir);
  let st;
  try {
    st = lstatSync(abs);
  } catch {
    throw new DatarootError('MOUNT_TARGET_MISSING', `${abs} does not exist: make the directory first`, { file: abs });
  }
  if (st.isSymbolicLink()) throw new DatarootError('MOUNT_TARGET_SYMLINK', `${abs} is a symlink: give the directory itself`, { file: abs });
  if (!st.isDirectory()) throw new DatarootError('MOUNT_TARGET_NOT_A_DIRECTORY', `${abs} is not a directory`, { file: abs });
  return realpathSync(abs);
}

function requireRootLinux(what: string): void {
  if (process.platform !== 'linux') throw new DatarootError('MOUNT_NOT_LINUX', `${what} needs Linux (overlay and bind mounts)`);
  if (process.getuid?.() !== 0)
    throw new DatarootError('MOUNT_NEEDS_ROOT', `${what} needs root (mount(2)); --print shows the commands, or use dataroot export -o DIR without privileges`);
}

export function registerMount(program: Command, ctx: Ctx): void {
  program
    .command('mount')
    .argument('<target>', 'container (ID, name or prefix) or image (reference or ID)')
    .argument('<dir>', 'an existing directory to mount the view on')
    .option('--print', 'only print the commands (a shell script) that make the mount')
    .description('a read-only mount of the merged view export writes (overlay through the l/ links, or a bind mount), for your own tools; root and Linux')
    .action(async (q: string, dir: string, o: { print?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      if (o.print !== true) requireRootLinux('dataroot mount');
      const target = targetDir(ctx, dir);
      if (o.print !== true && isMountPoint(target)) throw new DatarootError('MOUNT_TARGET_BUSY', `${target} is a mount point already`, { file: target });
      await withDockerStores(g, ctx, (st) => {
        if (st.legacy !== undefined) throw legacyUnsupported(st.legacy.root);
        if (st.fromArchive === true && o.print !== true)
          throw new DatarootError(
            'MOUNT_ARCHIVE_ROOT',
            'an archive root is unpacked into a temporary directory removed at exit: unpack it yourself, or use export',
          );
        noteBothStores(ctx, st);
        let plan: MountPlan;
        let t: TargetView['target'];
        const cd = chosenContainerd(st);
        if (cd !== undefined) {
          // Docker's containerd image store: the snapshot directories, stacked as containerd mounts them.
          const view = dockerCdView(cd, q);
          t = view.target;
          plan = planViewMount(view, cd.cd.fs.base, view.snapshotter, target, runDir(ctx));
        } else {
          const s = st.graph!();
          requireContent(s);
          const found = findTarget(s, q);
          t = found;
          plan = planMount(s, found, target, runDir(ctx));
        }
        if (o.print === true) {
          if (g.json) emitJson(ctx, plan);
          else ctx.stdout.write(planScript(plan));
          reportProblems(ctx, plan.problems);
          return;
        }
        runMountPlan(plan.stateDir, target, `${t.kind} ${t.id}`, plan.steps);
        if (g.json) emitJson(ctx, { target, kind: plan.kind, layers: plan.layers, object: { kind: t.kind, id: t.id, name: t.name } });
        else
          ctx.stdout.write(
            `mounted ${t.kind} ${t.name !== '' ? t.name : t.id.slice(0, 12)} read-only on ${target} (${plan.kind}, ${plan.layers} layers${t.kind === 'image' ? ' and the init layer docker create adds' : ''}); dataroot umount ${target}\n`,
          );
        reportProblems(ctx, plan.problems);
      });
    });

  program
    .command('umount')
    .argument('<dir>', 'a directory dataroot mount mounted')
    .description('takes down a mount dataroot mount made (and its inner mount and init layer)')
    .action(async (dir: string, _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      requireRootLinux('dataroot umount');
      const target = targetDir(ctx, dir);
      const r = runUnmount(stateDirFor(runDir(ctx), target), target);
      if (g.json) emitJson(ctx, { target, ...r });
      else ctx.stdout.write(`unmounted ${target}\n`);
    });
}

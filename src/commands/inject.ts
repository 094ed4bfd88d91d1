import { Command, InvalidArgumentError } from 'commander';
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { pauseAsync, pauseAt as pauseHere } from './testhooks.js';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { acquireLock, probeLock } from '../io/lock.js';
import { INJECT_STEPS, inject, type InjectResult, type InjectStep } from '../ops/inject.js';
import { findLeftovers, removeLeftovers } from '../ops/leftovers.js';
import { Confined } from '../io/confined.js';
import type { Store } from '../store/model.js';
import { LAYOUT } from '../store/layout.js';
import { openRoot } from '../store/root.js';
import { DirTimes, ensureLayout, removeStaging, validateTarget } from '../store/write.js';
import { rootOf, type Ctx, type GlobalOpts } from './context.js';
import { shortId, storeOf } from './storectx.js';
import { bytesHuman, emitJson, paint, safeText, warn } from './render.js';
import { Progress } from './progress.js';

import { WRITABLE_DRIVERS } from '../store/layerwrite.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/**
 * Runs a write on a root directory while holding the daemon lock: refuses archives, a root a
 * running daemon holds (STORE_DAEMON_RUNNING), a directory that is not a data-root, and a root
 * whose store directories are symlinks or not directories (STORE_TARGET_UNSAFE), all before the
 * first write. A root that was never started is laid out first when a driver is given.
 */
export async function withWritableStore<T>(g: GlobalOpts, ctx: Ctx, fn: (s: Store) => Promise<T>, opts: { create: boolean; lock: boolean } = { create: false, lock: true }): Promise<T> {
  const { root } = rootOf(g, ctx);
  let st;
  try {
    st = lstatSync(root);
  } catch {
    st = undefined;
  }
  if (st?.isFile() === true) throw new DatarootError('STORE_NOT_WRITABLE', `${root} is an archive: write into a data-root directory`, { file: root });
  if (st !== undefined && !st.isDirectory() && !st.isSymbolicLink()) throw new DatarootError('STORE_NOT_A_DATAROOT', `${root} is not a directory`, { file: root });
  let createdRoot = false;
  if (st === undefined) {
    if (!opts.create) throw new DatarootError('STORE_NOT_FOUND', `data-root ${root} does not exist`, { file: root });
    mkdirSync(root, { recursive: true, mode: 0o710 });
    createdRoot = true;
  }
  const fs = Confined.open(root, 'data-root');
  const empty = fs.names('').length === 0;
  let lock: Awaited<ReturnType<typeof acquireLock>> | undefined;
  let made: string[] = [];
  const times = new DirTimes(fs);
  try {
    if (opts.lock && fs.exists(LAYOUT.volumesDb)) lock = await acquireLock(fs.abs(LAYOUT.volumesDb));
    if (opts.create) {
      const drivers = fs.names('image').filter((x) => (WRITABLE_DRIVERS as readonly string[]).includes(x));
      const drv = g.driver ?? drivers[0];
      if (drv === undefined) {
        throw new DatarootError(empty ? 'USAGE_DRIVER_REQUIRED' : 'STORE_NOT_A_DATAROOT', empty ? `${root} is empty: name the storage driver to lay it out (--driver ${WRITABLE_DRIVERS.join('|')})` : `${root} has no image store: name the storage driver (--driver ${WRITABLE_DRIVERS.join('|')})`, { file: root });
      }
      if (!(WRITABLE_DRIVERS as readonly string[]).includes(drv)) throw new DatarootError('STORE_DRIVER_UNSUPPORTED', `inject writes ${WRITABLE_DRIVERS.join(', ')} stores, not ${drv}`, { file: root });
      if (g.driver !== undefined && drivers.length > 0 && !drivers.includes(g.driver)) {
        throw new DatarootError('STORE_DRIVER_MISMATCH', `${root} holds a ${drivers.join(', ')} image store, not ${g.driver}`, { file: root });
      }
      if (!empty && !fs.exists('image') && !fs.exists(LAYOUT.volumesDb)) {
        throw new DatarootError('STORE_NOT_A_DATAROOT', `${root} is not empty and not a Docker data-root`, { file: root });
      }
      made = ensureLayout(fs, drv, times);
      if (opts.lock && lock === undefined) lock = await acquireLock(fs.abs(LAYOUT.volumesDb));
    }
    const r = await openRoot(root);
    try {
      const store = storeOf(r, g.driver === undefined ? {} : { driver: g.driver });
      validateTarget(store.fs, store.driver);
      return await fn(store);
    } finally {
      r.close();
    }
  } catch (e) {
    // A refused write leaves the root as it was: what was laid out for it goes again.
    removeStaging(fs, made.reverse());
    times.restore();
    if (createdRoot) rmSync(root, { recursive: true, force: true });
    throw e;
  } finally {
    await lock?.release();
  }
}

/**
 * Test-only hooks (environment variables, so they cannot be passed by accident on the command
 * line): DATAROOT_INJECT_CRASH_AT=<step> stops the process dead with SIGKILL at that step of the
 * recipe, as a power cut would; DATAROOT_INJECT_PAUSE_AT=<step> with DATAROOT_INJECT_PAUSE_FILE
 * creates that file at the step and waits, lock held, until it is removed.
 */
let paused = false;

function testHook(step: InjectStep, crashAt: string | undefined, pauseAtStep: string | undefined, pauseFile: string | undefined): void | Promise<void> {
  if (step === crashAt) process.kill(process.pid, 'SIGKILL');
  if (step === pauseAtStep && pauseFile !== undefined && !paused) {
    paused = true; // the first time the step is reached
    // Inside commitLayer the wait is synchronous; elsewhere signals are handled while it waits.
    if (step === 'layerdb-staged') pauseHere(pauseFile, step);
    else return pauseAsync(pauseFile, step);
  }
}

function renderInject(ctx: Ctx, r: InjectResult): void {
  for (const img of r.images) {
    const written = img.layers.filter((l) => l.action === 'write').length;
    ctx.stdout.write(
      `${r.dryRun ? 'would inject' : 'injected'} ${paint(ctx, 'bold', shortId(img.id))} ${img.tags.length > 0 ? img.tags.join(', ') : '<untagged>'}  (${img.layers.length} layers: ${written} ${r.dryRun ? 'to write' : 'written'}, ${img.layers.length - written} reused${img.configWritten ? '' : ', config already present'})\n`,
    );
    for (const l of img.layers) ctx.stdout.write(`  ${l.action === 'write' ? '+' : '='} ${l.diffId}${l.size !== undefined ? ` ${bytesHuman(l.size)}` : ''}\n`);
    for (const w of img.warnings) warn(ctx, `${shortId(img.id)}: ${w}`);
  }
  ctx.stdout.write(`${r.layersWritten} layers ${r.dryRun ? 'to write' : 'written'}, ${r.layersReused} reused, ${bytesHuman(r.bytesRead)} read${r.tagsChanged.length > 0 ? `, tags: ${r.tagsChanged.join(', ')}` : ''}\n`);
}

export function registerInject(program: Command, ctx: Ctx): void {
  program
    .command('inject')
    .argument('[source...]', 'docker save archives or OCI layouts (tar, tar.gz or directory)')
    .option('--config <file>', 'a hand-made image config (its exact bytes: the image ID is their sha256)')
    .option('--layer <tar>', 'a layer tar for --config (repeatable, in order; plain, gzip or zstd)', collect, [])
    .option('-t, --tag <name:tag>', 'tag the image (repeatable; needs exactly one image)', collect, [])
    .option('--platform <os/arch>', 'the manifest to take from an OCI index', 'linux/amd64')
    .option('--dry-run', 'print what would be written, write nothing', false)
    .option('--max-ratio <n>', 'refuse a layer that decompresses to more than n times its size', positiveNumber, 500)
    .option('--max-bytes <n>', 'refuse a layer that decompresses to more than n bytes', positiveNumber, 100 * 2 ** 30)
    .description("put images into a stopped daemon's store, layers included, as dockerd would (docker load without a daemon)")
    .action(async (sources: string[], o: { config?: string; layer: string[]; tag: string[]; platform: string; dryRun: boolean; maxRatio: number; maxBytes: number }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      if (o.layer.length > 0 && o.config === undefined) throw new DatarootError('USAGE_LAYER_WITHOUT_CONFIG', '--layer needs --config');
      if (sources.length === 0 && o.config === undefined) throw new DatarootError('USAGE_NO_SOURCE', 'name an archive or layout to inject, or --config (with --layer files)');
      const crashAt = ctx.env['DATAROOT_INJECT_CRASH_AT'];
      const pauseAt = ctx.env['DATAROOT_INJECT_PAUSE_AT'];
      const pauseFile = ctx.env['DATAROOT_INJECT_PAUSE_FILE'];
      if (crashAt !== undefined && !(INJECT_STEPS as readonly string[]).includes(crashAt)) throw new DatarootError('USAGE_BAD_CRASH_STEP', `DATAROOT_INJECT_CRASH_AT must be one of ${INJECT_STEPS.join(', ')}`);
      if (o.dryRun) {
        const { root } = rootOf(g, ctx);
        if (probeLock(`${root}/${LAYOUT.volumesDb}`) === 'held') throw new DatarootError('STORE_DAEMON_RUNNING', `a running daemon holds ${root}: inject would be refused; stop dockerd first`, { file: root });
      }
      await withWritableStore(
        g,
        ctx,
        async (store) => {
          const progress = ctx.stderrTTY && !g.json ? new Progress(ctx, 'inject') : undefined;
          const r = await inject(store, {
            sources: sources.map((s) => resolve(ctx.cwd, s)),
            ...(o.config !== undefined ? { config: resolve(ctx.cwd, o.config), layers: o.layer.map((l) => resolve(ctx.cwd, l)) } : {}),
            tags: o.tag,
            platform: o.platform,
            dryRun: o.dryRun,
            maxRatio: o.maxRatio,
            maxBytes: o.maxBytes,
            ...(progress !== undefined ? { onProgress: (p) => progress.update(p.bytes, p.totalBytes, `layer ${p.layer}/${p.layers}`) } : {}),
            ...(crashAt !== undefined || pauseAt !== undefined ? { onStep: (s: InjectStep) => testHook(s, crashAt, pauseAt, pauseFile) } : {}),
          });
          progress?.done();
          if (g.json) emitJson(ctx, r);
          else renderInject(ctx, r);
        },
        { create: !o.dryRun, lock: !o.dryRun },
      );
    });

  program
    .command('gc')
    .option('--dry-run', 'list what would be removed', false)
    .description('remove staging leftovers and orphans (layers, driver dirs, metadata, container layers nothing uses)')
    .action(async (o: { dryRun: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withWritableStore(g, ctx, async (store) => {
        const items = findLeftovers(store);
        const removed = o.dryRun ? [...new Set(items.flatMap((i) => i.remove))] : removeLeftovers(store.fs, items);
        if (g.json) {
          emitJson(ctx, {
            dryRun: o.dryRun,
            items: items.map((i) => ({ code: i.code, subject: i.subject, message: i.message, path: store.shown(i.path), remove: i.remove.map((p) => store.shown(p)) })),
            removed: removed.map((p) => store.shown(p)),
          });
        } else {
          // Every path that is (or would be) removed, in full.
          for (const i of items) ctx.stdout.write(`${o.dryRun ? 'would remove' : 'removed'} ${paint(ctx, 'bold', i.code)} ${safeText(i.subject)}\n${i.remove.map((p) => `  ${safeText(store.shown(p))}\n`).join('')}`);
          ctx.stdout.write(`${items.length === 0 ? 'nothing to remove' : `${removed.length} paths ${o.dryRun ? 'to remove' : 'removed'}`}\n`);
        }
      }, { create: false, lock: !o.dryRun });
    });
}

import { Command, InvalidArgumentError, Option } from 'commander';
import { pauseAsync, pauseAt as pauseHere } from './testhooks.js';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { probeLock } from '../io/lock.js';
import { INJECT_STEPS, inject, type InjectResult, type InjectStep } from '../ops/inject.js';
import { findLeftovers, removeLeftovers } from '../ops/leftovers.js';
import { LAYOUT } from '../store/layout.js';
import { withWritableStore } from '../ops/writable.js';
import { CD_INJECT_STEPS, injectContainerd, type CdInjectResult, type CdInjectStep } from '../ops/cdinject.js';
import { Confined } from '../io/confined.js';
import { chooseImageStore } from '../store/containerd/choice.js';
import { DOCKER_CONTAINERD_ROOT } from '../store/containerd/layout.js';
import { hasMetaDb } from '../store/containerd/locate.js';
import { MetaDb } from '../store/containerd/metadb.js';
import { openRoot } from '../store/root.js';
import { rootOf, type Ctx, type GlobalOpts } from './context.js';
import { shortId } from './storectx.js';
import { bytesHuman, emitJson, paint, safeText, warn } from './render.js';
import { Progress } from './progress.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/**
 * Test-only hooks (environment variables, so they cannot be passed by accident on the command
 * line): DATAROOT_INJECT_CRASH_AT=<step> stops the process dead with SIGKILL at that step of the
 * recipe, as a power cut would; DATAROOT_INJECT_PAUSE_AT=<step> with DATAROOT_INJECT_PAUSE_FILE
 * creates that file at the step and waits, lock held, until it is removed.
 */
let paused = false;

function testHook(
  step: InjectStep | CdInjectStep,
  crashAt: string | undefined,
  pauseAtStep: string | undefined,
  pauseFile: string | undefined,
): void | Promise<void> {
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
  ctx.stdout.write(
    `${r.layersWritten} layers ${r.dryRun ? 'to write' : 'written'}, ${r.layersReused} reused, ${bytesHuman(r.bytesRead)} read${r.tagsChanged.length > 0 ? `, tags: ${r.tagsChanged.join(', ')}` : ''}\n`,
  );
}

function renderCdInject(ctx: Ctx, r: CdInjectResult): void {
  for (const img of r.images) {
    const written = img.blobs.filter((b) => b.action === 'write').length;
    ctx.stdout.write(
      `${r.dryRun ? 'would inject' : 'injected'} ${paint(ctx, 'bold', shortId(img.id))} ${img.names.map((n) => safeText(n)).join(', ')}  (namespace ${r.namespace}, ${img.blobs.length} blobs: ${written} ${r.dryRun ? 'to write' : 'written'}, ${img.blobs.length - written} present)\n`,
    );
    for (const b of img.blobs) ctx.stdout.write(`  ${b.action === 'write' ? '+' : '='} ${b.digest} ${bytesHuman(b.size)} ${safeText(b.mediaType)}\n`);
    for (const w of img.warnings) warn(ctx, `${shortId(img.id)}: ${w}`);
  }
  ctx.stdout.write(
    `${r.blobsWritten} blobs ${r.dryRun ? 'to write' : 'written'} (${bytesHuman(r.bytesWritten)}), ${r.blobsReused} present${r.imagesReplaced.length > 0 ? `, names moved: ${r.imagesReplaced.map((n) => safeText(n)).join(', ')}` : ''}\n`,
  );
}

type StoreChoiceFlag = 'auto' | 'graphdriver' | 'containerd';

/**
 * The containerd root an inject writes, when it writes one: --containerd-root; the root itself
 * when it is a containerd root (it holds io.containerd.metadata.v1.bolt/meta.db); or
 * `<root>/containerd/daemon` when dockerd 29 would use the containerd image store there (no prior
 * graphdriver's layers). `--store containerd` requires one; `--store graphdriver` never takes one.
 */
async function containerdTarget(g: GlobalOpts, ctx: Ctx, flag: StoreChoiceFlag): Promise<Confined | undefined> {
  // (A root with both stores: see withDockerStores in cddocker.ts, which the read commands use.)
  if (flag === 'graphdriver') return undefined;
  if (g.containerdRoot !== undefined) {
    const fs = Confined.open(resolve(ctx.cwd, g.containerdRoot), 'containerd root');
    if (!hasMetaDb(fs))
      throw new DatarootError(
        'CONTAINERD_ROOT_NOT_FOUND',
        `--containerd-root ${g.containerdRoot} holds no io.containerd.metadata.v1.bolt/meta.db (start containerd once on it)`,
        { file: g.containerdRoot },
      );
    return fs;
  }
  const { root } = rootOf(g, ctx);
  let fs: Confined;
  try {
    fs = Confined.open(root, 'data-root');
  } catch (e) {
    if (flag === 'containerd') throw e;
    return undefined;
  }
  if (hasMetaDb(fs)) return fs;
  if (hasMetaDb(fs, DOCKER_CONTAINERD_ROOT)) {
    const cd = fs.sub(DOCKER_CONTAINERD_ROOT);
    if (flag === 'auto' && cd !== undefined) {
      const r = await openRoot(root);
      try {
        if (chooseImageStore(r, true).uses !== 'containerd') return undefined;
        // dockerd before 24 runs its own containerd there too (containers only, while they run):
        // with a graphdriver image store, the containerd store counts only when its moby
        // namespace holds images or content (as the read commands decide).
        if (r.imageStores.length > 0) {
          const meta = MetaDb.open(cd);
          try {
            if (meta.images('moby').length === 0 && meta.blobs('moby').length === 0) return undefined;
          } finally {
            meta.close();
          }
        }
      } finally {
        r.close();
      }
    }
    return cd;
  }
  if (flag === 'containerd') {
    throw new DatarootError(
      'CONTAINERD_ROOT_NOT_FOUND',
      `${root} holds no containerd store (neither io.containerd.metadata.v1.bolt/meta.db nor ${DOCKER_CONTAINERD_ROOT}/io.containerd.metadata.v1.bolt/meta.db): start containerd once on it, or name one with --containerd-root`,
      { file: root },
    );
  }
  return undefined;
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
    .addOption(
      new Option(
        '--store <store>',
        "which image store to write: a containerd store (Docker 29's default, or a containerd root) or dockerd's graphdriver store; auto picks as dockerd 29 would",
      )
        .choices(['auto', 'graphdriver', 'containerd'])
        .default('auto'),
    )
    .option('--namespace <ns>', 'containerd namespace to write (--store containerd)', 'moby')
    .option('--unpack', "also unpack the layers into containerd's overlayfs snapshotter (--store containerd)", false)
    .description("put images into a stopped daemon's store, layers included, as dockerd would (docker load without a daemon)")
    .action(
      async (
        sources: string[],
        o: {
          config?: string;
          layer: string[];
          tag: string[];
          platform: string;
          dryRun: boolean;
          maxRatio: number;
          maxBytes: number;
          store: StoreChoiceFlag;
          namespace: string;
          unpack: boolean;
        },
        cmd: Command,
      ) => {
        const g = cmd.optsWithGlobals<GlobalOpts>();
        if (o.layer.length > 0 && o.config === undefined) throw new DatarootError('USAGE_LAYER_WITHOUT_CONFIG', '--layer needs --config');
        if (sources.length === 0 && o.config === undefined)
          throw new DatarootError('USAGE_NO_SOURCE', 'name an archive or layout to inject, or --config (with --layer files)');
        const crashAt = ctx.env['DATAROOT_INJECT_CRASH_AT'];
        const pauseAt = ctx.env['DATAROOT_INJECT_PAUSE_AT'];
        const pauseFile = ctx.env['DATAROOT_INJECT_PAUSE_FILE'];
        const cd = await containerdTarget(g, ctx, o.store);
        const steps: readonly string[] = cd !== undefined ? CD_INJECT_STEPS : INJECT_STEPS;
        if (crashAt !== undefined && !steps.includes(crashAt))
          throw new DatarootError('USAGE_BAD_CRASH_STEP', `DATAROOT_INJECT_CRASH_AT must be one of ${steps.join(', ')}`);
        if (o.unpack && cd === undefined)
          throw new DatarootError(
            'USAGE_UNPACK_NEEDS_CONTAINERD',
            '--unpack writes containerd snapshots: the target is a graphdriver store (dockerd stores layers unpacked already)',
          );
        // What both stores take: the sources, tags, platform and limits.
        const request = {
          sources: sources.map((s) => resolve(ctx.cwd, s)),
          ...(o.config !== undefined ? { config: resolve(ctx.cwd, o.config), layers: o.layer.map((l) => resolve(ctx.cwd, l)) } : {}),
          tags: o.tag,
          platform: o.platform,
          dryRun: o.dryRun,
          maxRatio: o.maxRatio,
          maxBytes: o.maxBytes,
        };
        if (cd !== undefined) {
          const r = await injectContainerd(cd, {
            unpack: o.unpack,
            ...request,
            namespace: o.namespace,
            ...(crashAt !== undefined || pauseAt !== undefined ? { onStep: (s: CdInjectStep) => testHook(s, crashAt, pauseAt, pauseFile) } : {}),
          });
          if (g.json) emitJson(ctx, r);
          else renderCdInject(ctx, r);
          return;
        }
        if (o.dryRun) {
          const { root } = rootOf(g, ctx);
          if (probeLock(`${root}/${LAYOUT.volumesDb}`) === 'held')
            throw new DatarootError('STORE_DAEMON_RUNNING', `a running daemon holds ${root}: inject would be refused; stop dockerd first`, { file: root });
        }
        await withWritableStore(
          { root: rootOf(g, ctx).root, driver: g.driver },
          async (store) => {
            const progress = ctx.stderrTTY && !g.json ? new Progress(ctx, 'inject') : undefined;
            const r = await inject(store, {
              ...request,
              ...(progress !== undefined ? { onProgress: (p) => progress.update(p.bytes, p.totalBytes, `layer ${p.layer}/${p.layers}`) } : {}),
              ...(crashAt !== undefined || pauseAt !== undefined ? { onStep: (s: InjectStep) => testHook(s, crashAt, pauseAt, pauseFile) } : {}),
            });
            progress?.done();
            if (g.json) emitJson(ctx, r);
            else renderInject(ctx, r);
          },
          { create: !o.dryRun, lock: !o.dryRun },
        );
      },
    );

  program
    .command('gc')
    .option('--dry-run', 'list what would be removed', false)
    .description('remove staging leftovers and orphans (layers, driver dirs, metadata, container layers nothing uses)')
    .action(async (o: { dryRun: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withWritableStore(
        { root: rootOf(g, ctx).root, driver: g.driver },
        async (store) => {
          const items = findLeftovers(store);
          const removed = o.dryRun ? [...new Set(items.flatMap((i) => i.remove))] : removeLeftovers(store.fs, items);
          if (g.json) {
            emitJson(ctx, {
              dryRun: o.dryRun,
              items: items.map((i) => ({
                code: i.code,
                subject: i.subject,
                message: i.message,
                path: store.shown(i.path),
                remove: i.remove.map((p) => store.shown(p)),
              })),
              removed: removed.map((p) => store.shown(p)),
            });
          } else {
            // Every path that is (or would be) removed, in full.
            for (const i of items)
              ctx.stdout.write(
                `${o.dryRun ? 'would remove' : 'removed'} ${paint(ctx, 'bold', i.code)} ${safeText(i.subject)}\n${i.remove.map((p) => `  ${safeText(store.shown(p))}\n`).join('')}`,
              );
            ctx.stdout.write(`${items.length === 0 ? 'nothing to remove' : `${removed.length} paths ${o.dryRun ? 'to remove' : 'removed'}`}\n`);
          }
        },
        { create: false, lock: !o.dryRun },
      );
    });
}

import type { Command } from 'commander';
import { info, type InfoResult, type InstallInfo } from '../ops/info.js';
import { withRoot } from '../store/root.js';
import { isLegacyRoot } from '../store/legacy.js';
import { legacyInfoOf } from '../ops/legacy.js';
import { openLegacy } from './legacy.js';
import { rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { bytesHuman, emitJson, paint, safeText, writeTable } from './render.js';

export async function runInfo(g: GlobalOpts, ctx: Ctx): Promise<InfoResult> {
  return withRoot(
    rootOf(g, ctx).root,
    async (r) => {
      const res = info(r, g.driver);
      if (!isLegacyRoot(r)) return res;
      // A pre-1.10 root: counts from graph/, repositories-<driver> and containers/ as 1.9 loads them.
      const ls = await openLegacy(r, g, ctx);
      const li = legacyInfoOf(ls);
      const { legacyLeftovers: _, ...rest } = res;
      return {
        ...rest,
        driver: ls.driver,
        driverReason: 'legacy-repositories',
        images: li.images,
        tags: ls.repositories.refs.length,
        layers: li.graphImages,
        containers: li.containers,
        legacy: li,
        warnings: [...res.warnings, ...li.notes],
      };
    },
    rootOptions(g, ctx),
  );
}

const REASONS: Record<string, string> = {
  flag: '--driver',
  'prior-driver': 'its directory holding content, as dockerd chooses',
  containers: "the containers' Driver fields",
  'store-content': 'the image store that holds images',
  priority: "dockerd's priority list",
  default: 'default',
  'legacy-repositories': 'repositories-<driver> of a pre-1.10 root',
};

/** The install's lines: whether the native addon loaded (why not, and what that costs) and the snapshot store's zstd. */
function installLines(ctx: Ctx, i: InstallInfo): string[] {
  const a = i.addon;
  const addon =
    a.state === 'loaded'
      ? `loaded (${a.path})`
      : `${paint(ctx, 'yellow', `not loaded (${a.state})`)}: ${a.reason ?? ''}; without it: ${a.unavailable.join(', ')}`;
  const write = i.zstd.compress === null ? paint(ctx, 'yellow', 'not written here (needs the addon or Node 22.15+)') : `written with ${i.zstd.compress}`;
  return [
    `${paint(ctx, 'bold', 'Addon:')}       ${addon}`,
    `${paint(ctx, 'bold', 'Snapshots:')}   zstd: stores read with ${i.zstd.decompress}, ${write} (Node ${i.node})`,
  ];
}

export async function renderInfo(ctx: Ctx, r: InfoResult): Promise<void> {
  const lines = [
    `${paint(ctx, 'bold', 'Data-root:')}   ${r.root}${r.archive ? ' (archive, unpacked read-only)' : ''}`,
    `${paint(ctx, 'bold', 'Driver:')}      ${r.driver ?? 'none found under image/'}${r.driverReason !== null && r.driverReason !== 'only-store' ? ` (chosen by ${REASONS[r.driverReason] ?? r.driverReason})` : ''}`,
    ...(r.imageStores.length > 1 || (r.imageStores.length === 1 && r.imageStores[0]!.driver !== r.driver)
      ? [
          `${paint(ctx, 'bold', 'Stores:')}      ${r.imageStores.map((s) => `image/${safeText(s.driver)}/ (${s.images} images, ${s.layers} layers${s.containers > 0 ? `, ${s.containers} containers` : ''})`).join(', ')}`,
        ]
      : []),
    `${paint(ctx, 'bold', 'Images:')}      ${r.images}   tags: ${r.tags}   layers: ${r.layers}`,
    `${paint(ctx, 'bold', 'Containers:')}  ${r.containers}   volumes: ${r.volumes}   networks: ${r.networks}`,
    ...(r.legacy !== undefined
      ? [
          `${paint(ctx, 'bold', 'Legacy:')}      written before Docker 1.10 (graph/, ${safeText(r.legacy.repositories)}${r.legacy.linkgraph ? ', linkgraph.db' : ''}): ${r.legacy.graphImages} graph images, ${r.legacy.registered} of ${r.legacy.containers} containers load with this driver, ${r.legacy.names} names; read-only, as Docker 1.9 lists them`,
        ]
      : []),
    ...(r.legacyLeftovers !== undefined
      ? [
          `${paint(ctx, 'bold', 'Legacy:')}      left by Docker before 1.10${r.legacyLeftovers.migrationFiles.length > 0 ? ' and the 1.10 migration' : ''}: ${[
            r.legacyLeftovers.graphImages > 0 ? `graph/ (${r.legacyLeftovers.graphImages} images)` : '',
            ...r.legacyLeftovers.repositories.map((x) => safeText(x)),
            r.legacyLeftovers.linkgraph ? 'linkgraph.db' : '',
            ...r.legacyLeftovers.migrationFiles,
            r.legacyLeftovers.legacyConfigs > 0 ? `${r.legacyLeftovers.legacyConfigs} containers' config.json` : '',
          ]
            .filter(Boolean)
            .join(', ')} (dockerd no longer reads them)`,
        ]
      : []),
    `${paint(ctx, 'bold', 'Daemon:')}      ${r.inUse ? paint(ctx, 'yellow', 'in use by a running daemon (volumes/metadata.db is locked)') : r.lock === 'absent' ? 'no volumes/metadata.db (never started, or not a full root)' : 'not running (volumes/metadata.db is not locked)'}`,
    ...installLines(ctx, r.install),
    '',
  ];
  ctx.stdout.write(lines.join('\n'));
  await writeTable(
    ctx,
    ['FOLDER', 'FILES', 'SIZE'],
    r.folders.map((f) => [f.name, f.files, bytesHuman(f.bytes)]),
  );
  for (const w of r.warnings) ctx.stderr.write(`dataroot: warning: ${safeText(w)}\n`);
}

export function registerInfo(program: Command, ctx: Ctx): void {
  program
    .command('info')
    .description('driver, counts of images/layers/containers/volumes/networks, folder sizes, whether a daemon holds the root')
    .action(async (_o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runInfo(g, ctx);
      if (g.json) emitJson(ctx, r);
      else await renderInfo(ctx, r);
    });
}

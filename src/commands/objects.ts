import type { Command } from 'commander';
import { resolve } from 'node:path';
import { findLayer, layerTar, listLayers } from '../ops/layers.js';
import { requireOutputDir, writeFileAtomic } from '../io/atomic.js';
import { inspectNetwork, listNetworks } from '../ops/networks.js';
import { inspectVolume, listVolumes } from '../ops/volumes.js';
import type { Ctx, GlobalOpts } from './context.js';
import { bytesHuman, emitJson, paint, writeTable } from './render.js';
import { inspectEach, reportProblems, shortId, withStore } from './storectx.js';

/** `layers`, `volumes`/`volume inspect`, `networks`/`network inspect`. */
export function registerObjects(program: Command, ctx: Ctx): void {
  program
    .command('layers')
    .description('every layer: chainID, diffID, parent, cache-id, size, driver dir, users, orphans')
    .action(async (_o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withStore(g, ctx, async (s) => {
        const r = listLayers(s);
        if (g.json) emitJson(ctx, r.layers);
        else {
          const rows = r.layers.map((l) => [
            shortId(l.chainId),
            l.diffId === null ? '?' : shortId(l.diffId),
            l.cacheId === null ? '?' : l.cacheId.slice(0, 12),
            l.size === null ? '?' : l.size,
            l.images.length,
            l.containers.length,
            [
              l.orphan ? paint(ctx, 'yellow', 'orphan') : '',
              l.loadable ? '' : paint(ctx, 'red', 'not loadable'),
              l.dirExists ? '' : paint(ctx, 'red', 'no driver dir'),
              l.tarSplit ? '' : 'no tar-split',
            ]
              .filter(Boolean)
              .join(', '),
          ]);
          await writeTable(ctx, ['CHAIN ID', 'DIFF ID', 'CACHE ID', 'SIZE', 'IMAGES', 'CONTAINERS', 'NOTES'], rows);
        }
        reportProblems(ctx, r.problems);
      });
    });

  const layer = program.command('layer').description('one layer: tar');
  layer
    .command('tar')
    .argument('<layer>', 'chainID or diffID (or a unique prefix)')
    .option('-o, --output <file>', 'write to this file (renamed into place only when the diffID checks out)')
    .description('the layer tar rebuilt from tar-split and the driver directory, byte for byte as docker save exports it')
    .action(async (q: string, o: { output?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withStore(g, ctx, async (s) => {
        const l = findLayer(s, q);
        if (o.output === undefined) {
          for await (const c of layerTar(s, l)) ctx.stdout.write(c);
          return;
        }
        const out = resolve(ctx.cwd, o.output);
        requireOutputDir(out);
        await writeFileAtomic(out, layerTar(s, l));
      });
    });

  program
    .command('volumes')
    .description('every volume (like docker volume ls), with size on disk and the containers that mount it')
    .action(async (_o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withStore(g, ctx, async (s) => {
        const r = listVolumes(s);
        if (g.json) emitJson(ctx, r.volumes);
        else {
          const rows = r.volumes.map((v) => {
            const d = v['Dataroot'] as { usedBy: { name: string }[]; sizeOnDisk?: number };
            return [String(v['Driver']), String(v['Name']), bytesHuman(d.sizeOnDisk ?? 0), d.usedBy.map((u) => u.name.replace(/^\//, '')).join(',')];
          });
          await writeTable(ctx, ['DRIVER', 'VOLUME NAME', 'SIZE', 'USED BY'], rows);
        }
        reportProblems(ctx, r.problems);
      });
    });

  const volume = program.command('volume').description('one volume: inspect');
  volume
    .command('inspect')
    .argument('<name...>')
    .description('the object docker volume inspect prints, plus users and size on disk')
    .action(async (names: string[], _o: object, cmd: Command) => {
      await inspectEach(cmd.optsWithGlobals<GlobalOpts>(), ctx, names, inspectVolume);
    });

  program
    .command('networks')
    .description('every network, decoded from network/files/local-kv.db (like docker network ls)')
    .action(async (_o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withStore(g, ctx, async (s) => {
        const r = listNetworks(s);
        if (g.json) emitJson(ctx, r.networks);
        else {
          const rows = r.networks.map((n) => {
            const cfg = ((n['IPAM'] as { Config: { Subnet?: string }[] }).Config ?? []).map((c) => c.Subnet ?? '').filter(Boolean);
            return [String(n['Id']).slice(0, 12), String(n['Name']), String(n['Driver']), String(n['Scope']), cfg.join(',')];
          });
          await writeTable(ctx, ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNETS'], rows);
        }
        reportProblems(ctx, r.problems);
      });
    });

  const network = program.command('network').description('one network: inspect');
  network
    .command('inspect')
    .argument('<network...>', 'name, ID or unique ID prefix')
    .description('the object docker network inspect prints')
    .action(async (qs: string[], _o: object, cmd: Command) => {
      await inspectEach(cmd.optsWithGlobals<GlobalOpts>(), ctx, qs, inspectNetwork);
    });
}

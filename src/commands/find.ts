import type { Command } from 'commander';
import { Finder, findHits, GraphScope, parseTime, type FindHit, type FindQuery, type ViewSight } from '../ops/find.js';
import { CdScope } from '../ops/findcd.js';
import { chosenContainerd, noteBothStores, withDockerStores } from './cddocker.js';
import { legacyUnsupported } from './legacy.js';
import type { Ctx, GlobalOpts } from './context.js';
import { bytesHuman, jsonText, paint } from './render.js';
import { reportProblems, shortId } from './storectx.js';

export interface FindOpts {
  name?: string;
  path?: string;
  sha256?: string;
  newer?: string;
}

function sightText(ctx: Ctx, s: ViewSight): string {
  const word =
    s.sees === 'sees'
      ? paint(ctx, 'green', 'sees it')
      : s.sees === 'shadows'
        ? paint(ctx, 'yellow', 'shadows it')
        : s.sees === 'deletes'
          ? paint(ctx, 'red', 'deletes it')
          : paint(ctx, 'dim', 'unknown');
  const by = s.by?.replace(/(?:sha256:)?([0-9a-f]{12})[0-9a-f]{52}/g, '$1');
  return `${word}${s.at !== undefined ? ` at ${s.at}` : ''}${by !== undefined ? ` (${s.sees === 'unknown' ? '' : 'by the '}${by})` : ''}`;
}

function whereText(h: FindHit): string {
  const w = h.where;
  switch (w.kind) {
    case 'image-layer': {
      const tags = (w.images ?? []).flatMap((i) => i.tags);
      return `image layer ${shortId(w.chainId!)}${tags.length > 0 ? ` (${tags.join(', ')})` : ''}`;
    }
    case 'container-layer':
      return `container ${w.container!.name !== '' ? w.container!.name : shortId(w.container!.id)} (read-write layer)`;
    case 'init-layer':
      return `container ${w.container!.name !== '' ? w.container!.name : shortId(w.container!.id)} (init layer)`;
    case 'volume':
      return `volume ${w.volume}`;
  }
}

export function registerFind(program: Command, ctx: Ctx): void {
  program
    .command('find')
    .description(
      'search every image layer, container layer and volume by name, path, content hash or time; each hit says where it lives and whether each container sees, shadows or deletes it (--json: one NDJSON record per hit)',
    )
    .option('--name <glob>', "the entry's name matches (as find -name)")
    .option('--path <glob>', 'the path inside the layer or volume matches, e.g. /etc/*.conf (as find -path)')
    .option('--sha256 <hex>', 'regular files with this content hash (64 hex digits, sha256: allowed)')
    .option('--newer <time>', 'modified after TIME: 2024-05-01, 2024-05-01T10:00:00Z, Unix seconds, or 24h / 7d ago')
    .action(async (o: FindOpts, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const q: FindQuery = {};
      if (o.name !== undefined) q.name = o.name;
      if (o.path !== undefined) q.path = o.path;
      if (o.sha256 !== undefined) q.sha256 = o.sha256;
      if (o.newer !== undefined) q.newer = parseTime(o.newer);
      await withDockerStores(g, ctx, (st) => {
        if (st.legacy !== undefined) throw legacyUnsupported(st.legacy.root);
        noteBothStores(ctx, st);
        const cd = chosenContainerd(st);
        const finder = new Finder(q, (problems) => (cd !== undefined ? new CdScope(cd, problems) : new GraphScope(st.graph!(), problems)));
        let n = 0;
        for (const h of findHits(finder)) {
          n++;
          if (g.json) {
            ctx.stdout.write(`${jsonText(h)}\n`);
            continue;
          }
          const what = h.type === 'file' ? `file ${bytesHuman(h.size)}` : h.type === 'symlink' ? `symlink -> ${h.linkTarget}` : h.type;
          ctx.stdout.write(`${paint(ctx, 'bold', h.path)}  ${what}  ${h.mode} ${h.uid}:${h.gid}  ${h.mtime}\n`);
          ctx.stdout.write(`  in ${whereText(h)}: ${h.where.file}\n`);
          for (const c of h.containers) ctx.stdout.write(`  container ${c.name !== '' ? c.name : shortId(c.id)} ${sightText(ctx, c)}\n`);
          const tagged = h.images.filter((i) => !/^[0-9a-f]{12}$/.test(i.name));
          for (const i of tagged) ctx.stdout.write(`  image ${i.name} ${sightText(ctx, i)}\n`);
          if (tagged.length < h.images.length)
            ctx.stdout.write(
              paint(
                ctx,
                'dim',
                `  and ${h.images.length - tagged.length} untagged ${h.images.length - tagged.length === 1 ? 'image' : 'images'} (--json lists them)\n`,
              ),
            );
        }
        if (!g.json && ctx.stderrTTY)
          ctx.stderr.write(`dataroot: ${n} ${n === 1 ? 'hit' : 'hits'}${q.sha256 !== undefined ? ` (${finder.hashed} files hashed)` : ''}\n`);
        reportProblems(ctx, finder.problems);
      });
    });
}

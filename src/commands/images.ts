import { Command, InvalidArgumentError } from 'commander';
import { DatarootError } from '../formats/errors.js';
import { humanSize } from '../formats/docker/apitypes.js';
import { imageHistory, inspectImage, listImages, requireImage, type ImageFilters, type ImageListResult } from '../ops/images.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson, table } from './render.js';
import { inspectLegacyImage, legacyHistory, listLegacyImages, requireLegacyImage, type LegacyImageFilters } from '../ops/legacy.js';
import type { Problem } from '../store/problems.js';
import { renderLegacyHistory, renderLegacyImages } from './legacy.js';
import { ago, inspectEach, reportProblems, shortId, withStore } from './storectx.js';

/** `--filter k=v` values, collected (repeatable). */
function collect(v: string, prev: string[]): string[] {
  if (!/^[a-z]+=/.test(v)) throw new InvalidArgumentError(`expected key=value, got "${v}"`);
  return [...prev, v];
}

export function parseImageFilters(raw: string[]): ImageFilters {
  const f: ImageFilters = { label: [], reference: [] };
  for (const item of raw) {
    const eq = item.indexOf('=');
    const k = item.slice(0, eq);
    const v = item.slice(eq + 1);
    switch (k) {
      case 'dangling':
        if (v !== 'true' && v !== 'false') throw new InvalidArgumentError(`invalid filter 'dangling=${v}' (true or false)`);
        f.dangling = v === 'true';
        break;
      case 'label':
        f.label.push(v);
        break;
      case 'reference':
        f.reference.push(v);
        break;
      case 'before':
        f.before = v;
        break;
      case 'since':
        f.since = v;
        break;
      default:
        throw new InvalidArgumentError(`invalid filter '${k}' (dangling, label, reference, before, since)`);
    }
  }
  return f;
}

/** 1.9 knew the dangling and label filters only (v1.9.1 graph/list.go: "Invalid filter"). */
function legacyImageFilters(f: ImageFilters): LegacyImageFilters {
  const other = f.reference.length > 0 ? 'reference' : f.before !== undefined ? 'before' : f.since !== undefined ? 'since' : undefined;
  if (other !== undefined) throw new DatarootError('USAGE_BAD_FILTER', `Invalid filter '${other}': a pre-1.10 root knows dangling and label`);
  return { ...(f.dangling !== undefined ? { dangling: f.dangling } : {}), label: f.label };
}

function renderImages(ctx: Ctx, r: ImageListResult, digests: boolean): void {
  const rows: (string | number)[][] = [];
  for (const i of r.images) {
    const tags = i.RepoTags ?? [];
    const dig = i.RepoDigests ?? [];
    const pairs: [string, string, string][] = [];
    for (const t of tags) {
      const colon = t.lastIndexOf(':');
      const repo = t.slice(0, colon);
      const d = dig.find((x) => x.startsWith(`${repo}@`));
      pairs.push([repo, t.slice(colon + 1), d === undefined ? '<none>' : d.slice(d.indexOf('@') + 1)]);
    }
    for (const d of dig) {
      const repo = d.slice(0, d.indexOf('@'));
      if (!pairs.some((p) => p[0] === repo)) pairs.push([repo, '<none>', d.slice(d.indexOf('@') + 1)]);
    }
    for (const [repo, tag, d] of pairs) {
      const row: (string | number)[] = [repo, tag];
      if (digests) row.push(d);
      row.push(shortId(i.Id), ago(i.Created), humanSize(i.Size));
      rows.push(row);
    }
  }
  const head = digests ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'] : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  ctx.stdout.write(table(ctx, head, rows));
  for (const s of r.skipped) ctx.stderr.write(`dataroot: not listed: ${s.id}: ${s.reason}\n`);
}

export function registerImages(program: Command, ctx: Ctx): void {
  program
    .command('images')
    .description('the images dockerd would list (like docker image ls); --json gives the API objects')
    .option('-a, --all', 'include intermediate images of the legacy builder', false)
    .option('--digests', 'show digests', false)
    .option('-f, --filter <k=v>', 'dangling=true|false, label=k[=v], reference=PATTERN, before=IMG, since=IMG', collect, [])
    .action(async (o: { all: boolean; digests: boolean; filter: string[] }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const filters = parseImageFilters(o.filter);
      await withStore(
        g,
        ctx,
        (s) => {
          const r = listImages(s, { all: o.all, filters });
          if (g.json) emitJson(ctx, r.images);
          else renderImages(ctx, r, o.digests);
          reportProblems(ctx, [...r.problems, ...r.skipped.flatMap((x) => x.problems)]);
        },
        (ls) => {
          const r = listLegacyImages(ls, { all: o.all, filters: legacyImageFilters(filters) });
          if (g.json) emitJson(ctx, r.images);
          else renderLegacyImages(ctx, r, o.digests);
          reportProblems(ctx, [...r.problems, ...r.skipped.flatMap((x) => x.problems)]);
        },
      );
    });

  const image = program.command('image').description('one image: inspect, history');
  image
    .command('inspect')
    .argument('<image...>', 'reference, ID or unique ID prefix')
    .description('the object docker image inspect prints, plus a Dataroot section with the layer chain')
    .action(async (refs: string[], _o: object, cmd: Command) => {
      await inspectEach(cmd.optsWithGlobals<GlobalOpts>(), ctx, refs, (s, q) => inspectImage(s, requireImage(s, q)), (insp) => insp.Dataroot.problems, {
        find: (ls, q) => inspectLegacyImage(ls, requireLegacyImage(ls, q)),
        problems: (x) => (x['Dataroot'] as { problems: Problem[] }).problems,
      });
    });

  const history = (c: Command): Command =>
    c
      .argument('<image>')
      .option('--no-trunc', 'no effect: history is never truncated (accepted for docker compatibility)')
      .description('the image history, newest first, with per-layer sizes (like docker history --no-trunc)')
      .action(async (ref: string, _o: object, cmd: Command) => {
        const g = cmd.optsWithGlobals<GlobalOpts>();
        await withStore(
          g,
          ctx,
          (s) => {
            const r = imageHistory(s, requireImage(s, ref));
            if (g.json) emitJson(ctx, r.history);
            else {
              ctx.stdout.write(
                table(
                  ctx,
                  ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
                  r.history.map((h) => [h.Id, h.Created === 0 ? 'N/A' : ago(h.Created), h.CreatedBy, humanSize(h.Size), h.Comment]),
                ),
              );
            }
            reportProblems(ctx, r.problems);
          },
          (ls) => {
            const r = legacyHistory(ls, requireLegacyImage(ls, ref));
            if (g.json) emitJson(ctx, r.history);
            else renderLegacyHistory(ctx, r.history);
            reportProblems(ctx, r.problems);
          },
        );
      });
  history(image.command('history'));
  history(program.command('history'));
}

import { DatarootError } from '../formats/errors.js';
import { Command, InvalidArgumentError } from 'commander';
import { humanSize } from '../formats/docker/apitypes.js';
import { imageHistory, inspectImage, listImages, requireImage, type ImageFilters, type ImageListResult } from '../ops/images.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson, writeTable } from './render.js';
import type { Problem } from '../store/problems.js';
import { ago, inspectQueries, reportProblems, shortId } from './storectx.js';
import { dockerHistory, inspectDockerImage, listDockerImages, resolveDockerImage, type CdImageSummary } from '../ops/containerddocker.js';
import { goPathMatch } from '../ops/images.js';
import { noteBothStores, withDockerStores } from './cddocker.js';
import { inspectLegacyImage, legacyHistory, listLegacyImages, requireLegacyImage, type LegacyImageFilters } from '../ops/legacy.js';
import { renderLegacyHistory, renderLegacyImages } from './legacy.js';

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

async function renderImages(ctx: Ctx, r: ImageListResult, digests: boolean): Promise<void> {
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
  await writeTable(ctx, head, rows);
  for (const s of r.skipped) ctx.stderr.write(`dataroot: not listed: ${s.id}: ${s.reason}\n`);
}

/** `docker image ls` filters over containerd-store summaries: dangling, label, reference. */
function cdImageFilter(i: CdImageSummary, f: ImageFilters): boolean {
  const dangling = i.RepoTags.length === 0;
  if (f.dangling !== undefined && f.dangling !== dangling) return false;
  for (const l of f.label) {
    const eq = l.indexOf('=');
    const labels = i.Labels ?? {};
    if (eq < 0 ? !(l in labels) : labels[l.slice(0, eq)] !== l.slice(eq + 1)) return false;
  }
  if (f.reference.length > 0 && !i.RepoTags.some((t) => f.reference.some((p) => goPathMatch(p, t) || goPathMatch(p, t.replace(/:[^:/]+$/, ''))))) return false;
  return true;
}

async function renderCdImages(ctx: Ctx, images: CdImageSummary[], digests: boolean): Promise<void> {
  const rows: (string | number)[][] = [];
  for (const i of images) {
    const pairs: [string, string, string][] = i.RepoTags.map((t) => {
      const colon = t.lastIndexOf(':');
      return [t.slice(0, colon), t.slice(colon + 1), i.Id];
    });
    if (pairs.length === 0) pairs.push(['<none>', '<none>', i.Id]);
    for (const [repo, tag, d] of pairs)
      rows.push([repo, tag, ...(digests ? [d] : []), shortId(i.Id), i.Created === 0 ? 'N/A' : ago(i.Created), humanSize(i.Size)]);
  }
  const head = digests ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'] : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  await writeTable(ctx, head, rows);
}

/** Looks an image up in the store dockerd uses first, then in the other one. */
function findEither<T>(
  st: import('./cddocker.js').Stores,
  q: string,
  graph: (s: import('../store/model.js').Store) => T,
  cd: (c: import('../ops/containerddocker.js').DockerCdContext) => T,
): T {
  const order: ('graph' | 'cd')[] = st.choice.uses === 'graphdriver' ? ['graph', 'cd'] : ['cd', 'graph'];
  let first: unknown;
  for (const k of order) {
    try {
      if (k === 'graph' && st.graph !== undefined) return graph(st.graph());
      if (k === 'cd' && st.containerd !== undefined) return cd(st.containerd);
    } catch (e) {
      first ??= e;
    }
  }
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows the first lookup's own error, as caught
  throw first ?? new Error(`No such image: ${q}`);
}

/** The filters a pre-1.10 root knows (dangling, label); the others are a usage error, as 1.9 gave. */
function legacyImageFilters(f: ImageFilters): LegacyImageFilters {
  const other = f.reference.length > 0 ? 'reference' : f.before !== undefined ? 'before' : f.since !== undefined ? 'since' : undefined;
  if (other !== undefined) throw new DatarootError('USAGE_BAD_FILTER', `Invalid filter '${other}': a pre-1.10 root knows dangling and label`);
  return { ...(f.dangling !== undefined ? { dangling: f.dangling } : {}), label: f.label };
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
      await withDockerStores(g, ctx, async (st) => {
        if (st.legacy !== undefined) {
          const r = listLegacyImages(st.legacy, { all: o.all, filters: legacyImageFilters(filters) });
          if (g.json) emitJson(ctx, r.images);
          else await renderLegacyImages(ctx, r, o.digests);
          reportProblems(ctx, [...r.problems, ...r.skipped.flatMap((x) => x.problems)]);
          return;
        }
        noteBothStores(ctx, st);
        const both = st.graph !== undefined && st.containerd !== undefined;
        const out: unknown[] = [];
        if (st.graph !== undefined) {
          const r = listImages(st.graph(), { all: o.all, filters });
          if (g.json)
            out.push(...(both ? r.images.map((i) => ({ ...i, Dataroot: { store: 'graphdriver', used: st.choice.uses === 'graphdriver' } })) : r.images));
          else {
            if (both) ctx.stdout.write(`graphdriver image store${st.choice.uses === 'graphdriver' ? ' (the one dockerd 29 uses)' : ''}:\n`);
            await renderImages(ctx, r, o.digests);
          }
          reportProblems(ctx, [...r.problems, ...r.skipped.flatMap((x) => x.problems)]);
        }
        if (st.containerd !== undefined) {
          const r = listDockerImages(st.containerd, { all: o.all });
          const images = r.images.filter((i) => cdImageFilter(i, filters));
          if (g.json) out.push(...(both ? images.map((i) => ({ ...i, Dataroot: { ...i.Dataroot, used: st.choice.uses === 'containerd' } })) : images));
          else {
            if (both)
              ctx.stdout.write(
                `${st.graph !== undefined ? '\n' : ''}containerd image store (namespace moby)${st.choice.uses === 'containerd' ? ' (the one dockerd 29 uses)' : ''}:\n`,
              );
            await renderCdImages(ctx, images, o.digests);
          }
          reportProblems(ctx, r.problems);
        }
        if (g.json) emitJson(ctx, out);
      });
    });

  const image = program.command('image').description('one image: inspect, history');
  image
    .command('inspect')
    .argument('<image...>', 'reference, ID or unique ID prefix')
    .description('the object docker image inspect prints, plus a Dataroot section with the layer chain')
    .action(async (refs: string[], _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withDockerStores(g, ctx, (st) => {
        const ls = st.legacy;
        inspectQueries(
          ctx,
          g.json === true,
          refs,
          (q) =>
            ls !== undefined
              ? (inspectLegacyImage(ls, requireLegacyImage(ls, q)) as { Dataroot: unknown })
              : findEither<{ Dataroot: unknown }>(
                  st,
                  q,
                  (s) => inspectImage(s, requireImage(s, q)),
                  (c) => inspectDockerImage(c, resolveDockerImage(c, q)) as { Dataroot: unknown },
                ),
          (x) => (x.Dataroot as { problems: Problem[] }).problems,
        );
      });
    });

  const history = (c: Command): Command =>
    c
      .argument('<image>')
      .option('--no-trunc', 'no effect: history is never truncated (accepted for docker compatibility)')
      .description('the image history, newest first, with per-layer sizes (like docker history --no-trunc)')
      .action(async (ref: string, _o: object, cmd: Command) => {
        const g = cmd.optsWithGlobals<GlobalOpts>();
        await withDockerStores(g, ctx, async (st) => {
          if (st.legacy !== undefined) {
            const lr = legacyHistory(st.legacy, requireLegacyImage(st.legacy, ref));
            if (g.json) emitJson(ctx, lr.history);
            else await renderLegacyHistory(ctx, lr.history);
            reportProblems(ctx, lr.problems);
            return;
          }
          const r = findEither(
            st,
            ref,
            (s) => imageHistory(s, requireImage(s, ref)),
            (c) => dockerHistory(c, resolveDockerImage(c, ref)) as unknown as ReturnType<typeof imageHistory>,
          );
          if (g.json) emitJson(ctx, r.history);
          else {
            await writeTable(
              ctx,
              ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
              r.history.map((h) => [h.Id, h.Created === 0 ? 'N/A' : ago(h.Created), h.CreatedBy, humanSize(h.Size), h.Comment]),
            );
          }
          reportProblems(ctx, r.problems);
        });
      });
  history(image.command('history'));
  history(program.command('history'));
}

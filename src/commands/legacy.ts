import { humanDuration19, humanSize19, goQuote, parseRepositoryTag19, isDigestRef19, truncateId19 } from '../formats/docker/legacyapi.js';
import { DatarootError } from '../formats/errors.js';
import { LegacyStore } from '../store/legacy.js';
import type { OpenedRoot } from '../store/root.js';
import type { LegacyContainerList, LegacyImageList, LegacyVerifyResult, V19History } from '../ops/legacy.js';
import type { Ctx, GlobalOpts } from './context.js';
import { paint, safeText, writeTable } from './render.js';

/**
 * Rendering of pre-1.10 roots, as the Docker 1.9 CLI printed them (api/client/images.go,
 * api/client/ps/custom.go, history.go): sizes as `%.4g %s` ("187.9 MB"), durations as 1.9's
 * units.HumanDuration. The image SIZE column is 1.9's VIRTUAL SIZE (the whole parent chain).
 */

/** Opens the legacy store of a pre-1.10 root (notes on stderr). */
export async function openLegacy(r: OpenedRoot, g: GlobalOpts, ctx: Ctx): Promise<LegacyStore> {
  const ls = await LegacyStore.open(r, g.driver);
  for (const n of ls.driverNotes) ctx.stderr.write(`dataroot: note: ${safeText(n)}\n`);
  return ls;
}

export function legacyUnsupported(r: OpenedRoot): DatarootError {
  return new DatarootError(
    'STORE_LEGACY_UNSUPPORTED',
    `${r.source} is a pre-1.10 root (graph/, repositories-<driver>): this command needs the image store of Docker 1.10 or later; images, image inspect, history, containers, container inspect, info and verify read it`,
    { file: r.source },
  );
}

function ago19(unix: number, now = Date.now()): string {
  return `${humanDuration19(now / 1000 - unix)} ago`;
}

/** `docker images` of 1.9: one row per tag and per digest; an untagged image once. */
export async function renderLegacyImages(ctx: Ctx, r: LegacyImageList, digests: boolean): Promise<void> {
  const rows: string[][] = [];
  for (const i of r.images) {
    let refs = [...i.RepoTags];
    const dangling = i.RepoTags.length === 1 && i.RepoTags[0] === '<none>:<none>' && i.RepoDigests.length === 1 && i.RepoDigests[0] === '<none>@<none>';
    if (!dangling) refs = [...refs, ...i.RepoDigests];
    for (const rr of refs) {
      const { repo, ref } = parseRepositoryTag19(rr);
      const tag = isDigestRef19(ref) ? '<none>' : ref;
      const digest = isDigestRef19(ref) ? ref : '<none>';
      const row = [repo, tag];
      if (digests) row.push(digest);
      row.push(truncateId19(i.Id), ago19(i.Created), humanSize19(i.VirtualSize));
      rows.push(row);
    }
  }
  const head = digests ? ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE'] : ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'];
  await writeTable(ctx, head, rows);
  for (const s of r.skipped) ctx.stderr.write(`dataroot: not listed: ${s.id}: ${s.reason}\n`);
}

/** `docker history --no-trunc` of 1.9. */
export async function renderLegacyHistory(ctx: Ctx, h: V19History[]): Promise<void> {
  await writeTable(
    ctx,
    ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
    h.map((x) => [x.Id, ago19(x.Created), x.CreatedBy, humanSize19(x.Size), x.Comment]),
  );
}

/** `docker ps -a` of 1.9 (the default table format of api/client/ps/formatter.go). */
export async function renderLegacyContainers(ctx: Ctx, r: LegacyContainerList, trunc: boolean): Promise<void> {
  const rows = r.containers.map((c) => {
    let names = c.Names.map((n) => n.slice(1));
    if (trunc) {
      const primary = names.find((n) => !n.includes('/'));
      if (primary !== undefined) names = [primary];
    }
    let image = c.Image;
    if (image === '') image = '<no image>';
    else if (trunc && truncateId19(c.ImageID) === truncateId19(c.Image)) image = c.Image.slice(0, 12);
    const ports = c.Ports.map((p) =>
      p['IP'] !== undefined
        ? `${scalar(p['IP'])}:${scalar(p['PublicPort'] ?? 0)}->${String(p['PrivatePort'])}/${String(p['Type'])}`
        : `${String(p['PrivatePort'])}/${String(p['Type'])}`,
    );
    return [
      trunc ? truncateId19(c.Id) : c.Id,
      image,
      goQuote(trunc ? c.Command.slice(0, 20) : c.Command),
      ago19(c.Created),
      c.Status,
      ports.join(', '),
      names.join(','),
    ];
  });
  await writeTable(ctx, ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'], rows);
  for (const s of r.skipped) ctx.stderr.write(`dataroot: not listed: ${s.id}: ${safeText(s.reason)}\n`);
  for (const c of r.containers) {
    const notes = (c['Dataroot'] as { notes?: string[] } | undefined)?.notes ?? [];
    for (const n of notes) ctx.stderr.write(`dataroot: ${safeText(c.Names[0] ?? c.Id.slice(0, 12))}: ${safeText(n)}\n`);
  }
}

export function renderLegacyVerify(ctx: Ctx, r: LegacyVerifyResult): void {
  for (const f of r.findings) {
    const sev = f.severity === 'error' ? paint(ctx, 'red', 'ERROR  ') : paint(ctx, 'yellow', 'WARNING');
    ctx.stdout.write(`${sev} ${paint(ctx, 'bold', f.code)} ${f.subject}\n`);
    ctx.stdout.write(`        ${f.message}\n`);
    for (const p of f.paths) ctx.stdout.write(`        ${paint(ctx, 'dim', p)}\n`);
    if (f.fix !== '') ctx.stdout.write(`        fix: ${f.fix}\n`);
  }
  ctx.stdout.write(`pre-1.10 root (${r.driver}): checked ${r.checked.images} images, ${r.checked.containers} containers\n`);
  ctx.stdout.write('not applicable here:\n');
  for (const n of r.notApplicable) ctx.stdout.write(`  - ${n}\n`);
  ctx.stdout.write(`${r.errors === 0 ? paint(ctx, 'green', 'OK') : paint(ctx, 'red', `${r.errors} errors`)}, ${r.warnings} warnings\n`);
}

/** A port field as text: a string or number as is, anything else (hostile JSON) empty. */
function scalar(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

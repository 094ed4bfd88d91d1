import type { Command } from 'commander';
import { humanDuration } from '../formats/docker/apitypes.js';
import { goHumanSize, humanSizeWithPrecision } from '../formats/docker/units.js';
import { builderDu, type BuilderRow } from '../ops/builder.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson, safeText } from './render.js';
import { tabwrite, type TabOptions } from './tabwriter.js';
import { reportProblems, withStore } from './storectx.js';

/** Go's zero time.Time in Unix nanoseconds (what a record without a creation time shows). */
const GO_ZERO_NS = -62135596800n * 1_000_000_000n;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/** `units.HumanDuration(time.Now().UTC().Sub(t)) + " ago"`; Sub saturates at ±292 years as Go's does. */
export function since(ns: bigint | undefined, nowMs: number): string {
  let d = BigInt(Math.round(nowMs)) * 1_000_000n - (ns ?? GO_ZERO_NS);
  if (d > INT64_MAX) d = INT64_MAX;
  if (d < INT64_MIN) d = INT64_MIN;
  return `${humanDuration(Number(d / 1_000_000n) / 1000)} ago`;
}

/** text/tabwriter as the docker CLI sets it up: minwidth 10, tabwidth 1, padding 3, spaces. */
const DOCKER_TABWRITER: TabOptions = { minwidth: 10, tabwidth: 1, padding: 3, padchar: ' ' };

/** Lines of cells as the docker CLI's tabwriter aligns them; cells from evidence escaped for the terminal first. */
export function dockerTable(lines: string[][]): string {
  return tabwrite(
    lines.map((l) => l.map((c) => safeText(c).replace(/\t/g, '\\t')).join('\t')),
    DOCKER_TABWRITER,
  );
}

/** The "Build cache usage" part of `docker system df -v`, then the "Build Cache" row of `docker system df`. */
export function renderBuilderDu(rows: BuilderRow[], totals: { count: number; active: number; size: number; reclaimable: number }, nowMs = Date.now()): string {
  let out = `Build cache usage: ${goHumanSize(totals.size)}\n\n`;
  const lines = [['CACHE ID', 'CACHE TYPE', 'SIZE', 'CREATED', 'LAST USED', 'USAGE', 'SHARED']];
  for (const r of rows) {
    const a = r.api;
    lines.push([
      `${a.ID.slice(0, 12)}${a.InUse ? '*' : ''}`,
      a.Type,
      humanSizeWithPrecision(a.Size, 3),
      since(r.createdAt, nowMs),
      r.lastUsedAt === undefined ? '' : since(r.lastUsedAt, nowMs),
      String(a.UsageCount),
      String(a.Shared),
    ]);
  }
  out += dockerTable(lines);
  out += `\n${dockerTable([
    ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
    ['Build Cache', String(totals.count), String(totals.active), goHumanSize(totals.size), goHumanSize(totals.reclaimable)],
  ])}`;
  return out;
}

/** `builder du`. */
export function registerBuilder(program: Command, ctx: Ctx): void {
  const builder = program.command('builder').description("BuildKit's build cache");
  builder
    .command('du')
    .description('the build-cache records docker system df -v lists under "Build cache usage", with its totals; --json gives the API\'s BuildCache objects')
    .action(async (_o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withStore(g, ctx, (s) => {
        const { result, rows, problems } = builderDu(s);
        if (g.json) emitJson(ctx, result);
        else ctx.stdout.write(renderBuilderDu(rows, result.Dataroot.totals));
        reportProblems(ctx, problems);
      });
    });
}

import { DatarootError } from '../formats/errors.js';
import { humanDuration } from '../formats/docker/apitypes.js';
import { chooseDriver } from '../store/driverchoice.js';
import { Store } from '../store/model.js';
import { withRoot, type OpenedRoot } from '../store/root.js';
import { isLegacyRoot, type LegacyStore } from '../store/legacy.js';
import { legacyUnsupported, openLegacy } from './legacy.js';
import type { Problem } from '../store/problems.js';
import { rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { emitJson, jsonText, paint, safeText } from './render.js';

/** The store of an opened root, its driver chosen as dockerd chooses it (or by --driver). */
export function storeOf(r: OpenedRoot, g: GlobalOpts, ctx?: Ctx): Store {
  if (r.imageStores.length === 0 && g.driver === undefined && r.imageTampered.length === 0) {
    throw new DatarootError('STORE_NO_IMAGE_STORE', `${r.source} has no image store under image/<driver>/`, { file: r.source });
  }
  const choice = chooseDriver(r, g.driver);
  if (ctx !== undefined) for (const n of choice.notes) ctx.stderr.write(`dataroot: note: ${safeText(n)}\n`);
  return new Store(r, choice);
}

/**
 * Runs fn on the store of the root named by the global options (a directory or an archive). The
 * root is read, never written. A pre-1.10 root (graph/, repositories-<driver>, no populated
 * image/<driver>/) goes to `legacy` when the command reads such roots, else STORE_LEGACY_UNSUPPORTED.
 */
export async function withStore<T>(g: GlobalOpts, ctx: Ctx, fn: (s: Store) => T | Promise<T>, legacy?: (ls: LegacyStore) => T | Promise<T>): Promise<T> {
  return withRoot(
    rootOf(g, ctx).root,
    async (r) => {
      if (isLegacyRoot(r)) {
        if (legacy === undefined) throw legacyUnsupported(r);
        return legacy(await openLegacy(r, g, ctx));
      }
      return fn(storeOf(r, g, ctx));
    },
    rootOptions(g, ctx),
  );
}

/** Content operations (diffs, layer tars, deep verification) need a driver whose layers can be read here. */
export function requireContent(store: Store): void {
  if (store.adapter.content === 'none') {
    throw new DatarootError(
      'STORE_DRIVER_CONTENT_UNSUPPORTED',
      `the ${store.driver} driver keeps layer contents that cannot be read offline: metadata commands work, content commands do not`,
      { driver: store.driver },
    );
  }
}

/** Prints per-item problems as warnings on stderr and marks the run as having found problems (exit 1). */
export function reportProblems(ctx: Ctx, problems: readonly Problem[]): void {
  const seen = new Set<string>();
  for (const p of problems) {
    const line = safeText(`${p.code}: ${p.message}${p.path !== undefined ? ` (${p.path})` : ''}`);
    if (seen.has(line)) continue;
    seen.add(line);
    ctx.stderr.write(`dataroot: ${paint(ctx, 'yellow', line)}\n`);
  }
  if (problems.length > 0 && ctx.exitCode === 0) ctx.exitCode = 1;
}

/** A lookup miss in an inspect-style command: one coded line, exit 1 (as docker does), the rest still printed. */
export function reportMissing(ctx: Ctx, e: unknown, json: boolean): void {
  if (!(e instanceof DatarootError)) throw e;
  if (json) ctx.stderr.write(`${jsonText({ error: e.toJSON() })}\n`);
  else ctx.stderr.write(`dataroot: ${e.oneLine()}\n`);
  if (ctx.exitCode === 0) ctx.exitCode = 1;
}

/**
 * `X inspect Q…` as docker does it: one JSON array with an object per query found; each query
 * that finds nothing is reported on stderr (exit 1) and the rest still printed. `problems` names
 * the problems of an object to report as well.
 */
export async function inspectEach<T, L = T>(
  g: GlobalOpts,
  ctx: Ctx,
  queries: string[],
  find: (s: Store, q: string) => T,
  problems?: (x: T) => readonly Problem[],
  legacy?: { find: (ls: LegacyStore, q: string) => L; problems: (x: L) => readonly Problem[] },
): Promise<void> {
  const json = g.json === true;
  await withStore(
    g,
    ctx,
    (s) => inspectQueries(ctx, json, queries, (q) => find(s, q), problems),
    legacy === undefined ? undefined : (ls) => inspectQueries(ctx, json, queries, (q) => legacy.find(ls, q), legacy.problems),
  );
}

/**
 * The loop of an inspect command, once the store is open: one JSON array with an object per query
 * found (its `problems` reported as well); each query that finds nothing is reported on stderr
 * (exit 1) and the rest still printed.
 */
export function inspectQueries<X>(ctx: Ctx, json: boolean, queries: string[], find: (q: string) => X, problems?: (x: X) => readonly Problem[]): void {
  const out: X[] = [];
  for (const q of queries) {
    try {
      const x = find(q);
      out.push(x);
      if (problems !== undefined) reportProblems(ctx, problems(x));
    } catch (e) {
      reportMissing(ctx, e, json);
    }
  }
  emitJson(ctx, out);
}

/** `12 minutes ago`, as the docker CLI prints CREATED. */
export function ago(unixSeconds: number, now = Date.now()): string {
  return `${humanDuration(now / 1000 - unixSeconds)} ago`;
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

import { DatarootError } from '../formats/errors.js';
import { humanDuration } from '../formats/docker/apitypes.js';
import { openStore, type Store } from '../store/model.js';
import { withRoot } from '../store/root.js';
import { KNOWN_DRIVERS } from '../store/layout.js';
import type { Problem } from '../store/problems.js';
import { rootOf, type Ctx, type GlobalOpts } from './context.js';
import { emitJson, paint } from './render.js';

/**
 * Runs fn on the store of the root named by the global options (a directory or an archive). The
 * root is read, never written. A driver dataroot recognises but cannot read yet is a coded error.
 */
export async function withStore<T>(g: GlobalOpts, ctx: Ctx, fn: (s: Store) => T | Promise<T>): Promise<T> {
  return withRoot(rootOf(g, ctx).root, (r) => {
    const store = openStore(r);
    if (r.drivers.length === 0) {
      throw new DatarootError('STORE_NO_IMAGE_STORE', `${r.source} has no image store under image/ (expected image/overlay2 or image/vfs)`, { file: r.source });
    }
    if (!store.supported) {
      const known = (KNOWN_DRIVERS as readonly string[]).includes(store.driver);
      throw new DatarootError('STORE_DRIVER_UNSUPPORTED', `the ${store.driver} driver is ${known ? 'recognised but not supported yet' : 'unknown'}: dataroot reads overlay2 and vfs roots`, { file: r.source });
    }
    return fn(store);
  });
}

/** Prints per-item problems as warnings on stderr and marks the run as having found problems (exit 1). */
export function reportProblems(ctx: Ctx, problems: readonly Problem[]): void {
  const seen = new Set<string>();
  for (const p of problems) {
    const line = `${p.code}: ${p.message}${p.path !== undefined ? ` (${p.path})` : ''}`;
    if (seen.has(line)) continue;
    seen.add(line);
    ctx.stderr.write(`dataroot: ${paint(ctx, 'yellow', line)}\n`);
  }
  if (problems.length > 0 && ctx.exitCode === 0) ctx.exitCode = 1;
}

/** A lookup miss in an inspect-style command: one coded line, exit 1 (as docker does), the rest still printed. */
export function reportMissing(ctx: Ctx, e: unknown, json: boolean): void {
  if (!(e instanceof DatarootError)) throw e;
  if (json) ctx.stderr.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
  else ctx.stderr.write(`dataroot: ${e.oneLine()}\n`);
  if (ctx.exitCode === 0) ctx.exitCode = 1;
}

/**
 * `X inspect Q…` as docker does it: one JSON array with an object per query found; each query
 * that finds nothing is reported on stderr (exit 1) and the rest still printed. `problems` names
 * the problems of an object to report as well.
 */
export async function inspectEach<T>(g: GlobalOpts, ctx: Ctx, queries: string[], find: (s: Store, q: string) => T, problems?: (x: T) => readonly Problem[]): Promise<void> {
  await withStore(g, ctx, (s) => {
    const out: T[] = [];
    for (const q of queries) {
      try {
        const x = find(s, q);
        out.push(x);
        if (problems !== undefined) reportProblems(ctx, problems(x));
      } catch (e) {
        reportMissing(ctx, e, g.json === true);
      }
    }
    emitJson(ctx, out);
  });
}

/** `12 minutes ago`, as the docker CLI prints CREATED. */
export function ago(unixSeconds: number, now = Date.now()): string {
  return `${humanDuration(now / 1000 - unixSeconds)} ago`;
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { probeLock } from '../io/lock.js';
import type { DiffResult, DiffSideData, Detail } from '../ops/snapdiff.js';
import { boltDetailLines, jsonDetailLines, MAX_LINES } from '../ops/diffview.js';
import { LAYOUT } from '../store/layout.js';
import { openRoot } from '../store/root.js';
import type { RegisteredSnapshot } from '../formats/snapstore/registry.js';
import type { RemoveResult } from '../store/snapshots/gc.js';
import type { ManifestEntry } from '../store/snapshots/manifest.js';
import { SnapshotStore } from '../store/snapshots/store.js';
import type { RestoreResult } from '../ops/restore.js';
import type { SnapshotResult } from '../ops/snapshot.js';
import { rootOf, type Ctx, type GlobalOpts } from './context.js';
import { Progress } from './progress.js';
import { pauseAt } from './testhooks.js';
import { bytesHuman, emitJson, paint, writeTable, warn } from './render.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface StoreOpt {
  store?: string;
}

function storeDir(o: StoreOpt, ctx: Ctx, required = true): string | undefined {
  const s = o.store ?? ctx.env['DATAROOT_STORE'];
  if (s === undefined || s === '') {
    if (required) throw new DatarootError('USAGE_STORE_REQUIRED', 'name the snapshot store with --store DIR (or DATAROOT_STORE)');
    return undefined;
  }
  return resolve(ctx.cwd, s);
}

async function withSnapStore<T>(dir: string, create: boolean, fn: (s: SnapshotStore) => Promise<T> | T): Promise<T> {
  const s = SnapshotStore.open(dir, { create });
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

/** The root of a write or snapshot: a directory, never an archive. */
function rootDir(g: GlobalOpts, ctx: Ctx): string {
  const { root } = rootOf(g, ctx);
  if (!existsSync(root)) throw new DatarootError('STORE_NOT_FOUND', `data-root ${root} does not exist`, { file: root });
  if (!statSync(root).isDirectory())
    throw new DatarootError('SNAPSHOT_SOURCE_INVALID', `${root} is not a directory (snapshots are taken of a data-root directory)`, { file: root });
  return root;
}

function ratio(s: { logicalBytes: number; storedBytes: number }): string {
  return s.storedBytes === 0 ? '∞' : `${(s.logicalBytes / s.storedBytes).toFixed(1)}x`;
}

function renderDetail(ctx: Ctx, d: Detail | undefined, out: string[]): void {
  if (d === undefined) return;
  switch (d.kind) {
    case 'json':
    case 'bolt': {
      // Values by their decoded fields, changes by JSON path (ops/diffview.ts).
      const lines = d.kind === 'json' ? jsonDetailLines(d.changes) : boltDetailLines(d.changes);
      for (const l of lines.slice(0, MAX_LINES)) out.push(`     ${l}`);
      if (lines.length > MAX_LINES) out.push(`     … ${lines.length - MAX_LINES} more lines`);
      break;
    }
    case 'tar-split':
      out.push(`     tar-split: ${d.added.length} entries added, ${d.removed.length} removed, ${d.changed.length} changed size`);
      for (const n of d.added.slice(0, 20)) out.push(`     + ${n}`);
      for (const n of d.removed.slice(0, 20)) out.push(`     - ${n}`);
      break;
    case 'text':
      for (const l of d.patch.split('\n').slice(2, 80))
        if (l !== '') out.push(`     ${l.startsWith('+') ? paint(ctx, 'green', l) : l.startsWith('-') ? paint(ctx, 'red', l) : l}`);
      break;
    case 'binary':
      out.push(
        `     binary: ${d.left !== undefined ? `${d.left.size} B ${d.left.sha256.slice(0, 19)}` : '∅'} → ${d.right !== undefined ? `${d.right.size} B ${d.right.sha256.slice(0, 19)}` : '∅'}`,
      );
      break;
  }
}

const LETTER: Record<string, string> = { added: 'A', removed: 'D', modified: 'M', 'type-changed': 'T', 'metadata-changed': 'm' };

function renderDiff(ctx: Ctx, r: DiffResult): void {
  const out: string[] = [];
  const s = r.summary;
  const part = (name: string, l: { added: string[]; removed: string[]; changed?: string[] }): string | undefined => {
    const bits: string[] = [];
    if (l.added.length > 0) bits.push(`+${l.added.length} (${l.added.join(', ')})`);
    if (l.removed.length > 0) bits.push(`-${l.removed.length} (${l.removed.join(', ')})`);
    if ((l.changed?.length ?? 0) > 0) bits.push(`~${l.changed!.length} (${l.changed!.join(', ')})`);
    return bits.length > 0 ? `  ${paint(ctx, 'bold', name.padEnd(11))} ${bits.join('  ')}` : undefined;
  };
  const c8d = s.containerd;
  const cd =
    c8d === undefined ? [] : [part('c8d images', c8d.images), part('c8d ctrs', c8d.containers), part('snapshots', c8d.snapshots), part('blobs', c8d.blobs)];
  const lines = [
    part('images', s.images),
    part('tags', s.tags),
    part('layers', s.layers),
    part('containers', s.containers),
    part('volumes', s.volumes),
    part('networks', s.networks),
    ...cd,
  ].filter((x): x is string => x !== undefined);
  const bc = s.buildCache;
  if (bc.left !== bc.right || bc.added.length > 0 || bc.removed.length > 0) {
    const ids = [
      bc.added.length > 0 ? `+${bc.added.length} (${bc.added.join(', ')})` : '',
      bc.removed.length > 0 ? `-${bc.removed.length} (${bc.removed.join(', ')})` : '',
    ]
      .filter(Boolean)
      .join('  ');
    lines.push(`  ${paint(ctx, 'bold', 'build cache')} ${bc.left ?? 0} → ${bc.right ?? 0} records${ids === '' ? '' : `  ${ids}`}`);
  }
  out.push(`${paint(ctx, 'cyan', `${r.left} → ${r.right}`)}`);
  if (lines.length > 0) out.push('In Docker terms:', ...lines);
  for (const e of r.entries) {
    const f =
      e.fields === undefined
        ? ''
        : `  ${Object.entries(e.fields)
            .map(([k, v]) =>
              v.left === undefined
                ? `${k} ${JSON.stringify(v.right)}`
                : v.right === undefined
                  ? `${k} was ${JSON.stringify(v.left)}`
                  : `${k} ${JSON.stringify(v.left)} → ${JSON.stringify(v.right)}`,
            )
            .join(', ')}`;
    out.push(`${LETTER[e.change]}  ${e.path}${e.type !== undefined && e.type !== 'file' ? ` (${e.type})` : ''}${f}`);
    renderDetail(ctx, e.detail, out);
  }
  const c = r.counts;
  out.push(
    r.equal
      ? 'no differences'
      : `${c.added} added, ${c.removed} removed, ${c.modified} modified, ${c['type-changed']} type-changed, ${c['metadata-changed']} metadata-changed`,
  );
  ctx.stdout.write(`${out.join('\n')}\n`);
}

/** One side of `diff`: `@name` (a snapshot), a directory, or a data-root archive. */
async function side(arg: string, store: SnapshotStore | undefined, ctx: Ctx, cleanups: (() => void)[]): Promise<DiffSideData> {
  const { directorySide, snapshotSide } = await import('../ops/snapdiff.js');
  if (arg.startsWith('@')) {
    if (store === undefined) throw new DatarootError('USAGE_STORE_REQUIRED', `${arg} names a snapshot: give --store`);
    return snapshotSide(store, arg.slice(1));
  }
  const p = resolve(ctx.cwd, arg);
  if (!existsSync(p)) throw new DatarootError('DIFF_SIDE_NOT_FOUND', `${arg} is neither a snapshot (@name) nor a directory or archive`, { file: arg });
  if (statSync(p).isDirectory()) return directorySide(p, arg);
  const r = await openRoot(p);
  cleanups.push(() => r.close());
  return directorySide(r.dir, arg);
}

function parseLevel(v: string): number {
  const n = Number(v);
  if (!/^-?[0-9]+$/.test(v) || n < -100 || n > 19) throw new InvalidArgumentError('expected an integer from -100 (fastest) to 19 (smallest)');
  return n;
}

// ---- snapshot ----

interface SnapshotOpts extends StoreOpt {
  name?: string;
  exclude: string[];
  metadataOnly: string[];
  live: boolean;
  compressLevel?: number;
}

export async function runSnapshot(o: SnapshotOpts, g: GlobalOpts, ctx: Ctx): Promise<SnapshotResult> {
  const root = rootDir(g, ctx);
  if (probeLock(`${root}/${LAYOUT.volumesDb}`) === 'held') {
    if (!o.live)
      throw new DatarootError('STORE_DAEMON_RUNNING', `a running daemon holds ${root}: stop it, or pass --live (its BoltDB files may then be torn)`, {
        file: root,
      });
    warn(ctx, `${root} is held by a running daemon: BoltDB files in the snapshot may be torn`);
  }
  const pauseFile = ctx.env['DATAROOT_SNAPSHOT_PAUSE_FILE'];
  return withSnapStore(storeDir(o, ctx)!, true, async (store) => {
    const progress = ctx.stderrTTY && !g.json ? new Progress(ctx, 'snapshot') : undefined;
    const { takeSnapshot } = await import('../ops/snapshot.js');
    const r = await takeSnapshot(store, root, {
      ...(o.name !== undefined ? { name: o.name } : {}),
      exclude: o.exclude,
      metadataOnly: o.metadataOnly,
      live: o.live,
      ...(o.compressLevel !== undefined ? { level: o.compressLevel } : {}),
      ...(progress !== undefined ? { onProgress: (p) => progress.update(p.bytes, p.totalBytes, `${p.files} files`) } : {}),
      // Test hook: pause between the walk and the reading of contents.
      ...(pauseFile !== undefined ? { onWalked: () => pauseAt(pauseFile, 'walked') } : {}),
    });
    progress?.done();
    return r;
  });
}

function renderSnapshot(ctx: Ctx, r: SnapshotResult): void {
  for (const w of r.stats.warnings) warn(ctx, w);
  const s = r.snapshot;
  ctx.stdout.write(
    `snapshot ${paint(ctx, 'bold', s.name)} of ${s.source}: ${s.entries} entries, ${bytesHuman(s.logicalBytes)} of content; ${bytesHuman(s.newBytes)} new, stored in ${bytesHuman(s.storedBytes)}${r.previous !== undefined ? `; ${r.stats.reused} files unchanged since ${r.previous}` : ''}\n`,
  );
}

// ---- snapshot show ----

export async function runShow(
  name: string,
  o: StoreOpt & { entries: boolean },
  ctx: Ctx,
): Promise<{ snapshot: RegisteredSnapshot; entries?: ManifestEntry[] }> {
  return withSnapStore(storeDir(o, ctx)!, false, (store) => {
    const s = store.find(name);
    const m = store.readManifest(s);
    return o.entries ? { snapshot: s, entries: m.entries() } : { snapshot: s };
  });
}

async function renderShow(ctx: Ctx, r: { snapshot: RegisteredSnapshot; entries?: ManifestEntry[] }): Promise<void> {
  const s = r.snapshot;
  ctx.stdout.write(
    `${paint(ctx, 'bold', s.name)}  ${s.created}\n  source      ${s.source}\n  entries     ${s.entries}\n  content     ${bytesHuman(s.logicalBytes)} (${bytesHuman(s.newBytes)} new, stored in ${bytesHuman(s.storedBytes)})\n  options     ${JSON.stringify(s.options)}\n`,
  );
  if (r.entries !== undefined) {
    await writeTable(
      ctx,
      ['TYPE', 'MODE', 'OWNER', 'SIZE', 'SHA256', 'PATH'],
      r.entries.map((e) => [
        e.type,
        e.mode.toString(8).padStart(4, '0'),
        `${e.uid}:${e.gid}`,
        e.size,
        e.sha256?.slice(0, 12) ?? '',
        e.path === '' ? '.' : e.path,
      ]),
    );
  }
}

// ---- snapshot rm ----

export async function runRm(names: string[], o: StoreOpt, ctx: Ctx): Promise<RemoveResult> {
  const { removeSnapshots } = await import('../store/snapshots/gc.js');
  return withSnapStore(storeDir(o, ctx)!, false, (store) => removeSnapshots(store, names));
}

// ---- snapshots ----

interface ListResult {
  snapshots: (RegisteredSnapshot & { dedupRatio: number | null })[];
  packBytes: number;
}

export async function runList(o: StoreOpt, ctx: Ctx): Promise<ListResult> {
  return withSnapStore(storeDir(o, ctx)!, false, (store) => {
    const list = store.snapshots();
    const packs = new Set(list.flatMap((s) => s.packs));
    return {
      snapshots: list.map((s) => ({ ...s, dedupRatio: s.storedBytes === 0 ? null : s.logicalBytes / s.storedBytes })),
      packBytes: [...packs].reduce((a, p) => a + store.packBytes(p), 0),
    };
  });
}

async function renderList(ctx: Ctx, r: ListResult): Promise<void> {
  const list = r.snapshots;
  await writeTable(
    ctx,
    ['NAME', 'CREATED', 'ENTRIES', 'CONTENT', 'NEW', 'STORED', 'RATIO', 'SOURCE'],
    list.map((s) => [s.name, s.created, s.entries, bytesHuman(s.logicalBytes), bytesHuman(s.newBytes), bytesHuman(s.storedBytes), ratio(s), s.source]),
  );
  const logical = list.reduce((a, s) => a + s.logicalBytes, 0);
  const total = r.packBytes;
  ctx.stdout.write(
    `${list.length} snapshots, ${bytesHuman(logical)} of content in ${bytesHuman(total)} of packs (dedup ratio ${total === 0 ? '∞' : (logical / total).toFixed(1)}x)\n`,
  );
}

// ---- restore ----

export async function runRestore(name: string, o: StoreOpt & { to: string; force: boolean }, ctx: Ctx): Promise<RestoreResult> {
  return withSnapStore(storeDir(o, ctx)!, false, async (store) => {
    const { restoreSnapshot } = await import('../ops/restore.js');
    // Test hook: pause half-way through the writing.
    const pauseFile = ctx.env['DATAROOT_RESTORE_PAUSE_FILE'];
    return restoreSnapshot(store, store.find(name), resolve(ctx.cwd, o.to), {
      force: o.force,
      ...(pauseFile !== undefined ? { onHalfway: () => pauseAt(pauseFile, 'restoring') } : {}),
    });
  });
}

function renderRestore(ctx: Ctx, r: RestoreResult): void {
  ctx.stdout.write(`restored ${r.snapshot} to ${r.to}: ${r.entries} entries, ${r.files} files, ${bytesHuman(r.bytes)}\n`);
}

// ---- reset ----

export async function runReset(o: { backupTo: string; name?: string }, g: GlobalOpts, ctx: Ctx): Promise<{ backup: RegisteredSnapshot; emptied: string }> {
  const root = rootDir(g, ctx);
  return withSnapStore(resolve(ctx.cwd, o.backupTo), true, async (store) => {
    const { resetRoot } = await import('../ops/reset.js');
    return resetRoot(store, root, o.name !== undefined ? { name: o.name } : {});
  });
}

// ---- diff ----

export async function runDiff(l: string, r: string, o: StoreOpt & { exclude: string[]; times: boolean }, ctx: Ctx): Promise<DiffResult> {
  const dir = storeDir(o, ctx, false);
  const store = dir === undefined ? undefined : SnapshotStore.open(dir, { create: false });
  const cleanups: (() => void)[] = [];
  try {
    // Both sides at once (two manifests decompress on the thread pool together); an error is
    // raised only once both have settled, so every temporary directory is in cleanups.
    const sides = await Promise.allSettled([side(l, store, ctx, cleanups), side(r, store, ctx, cleanups)]);
    for (const x of sides) if (x.status === 'rejected') throw x.reason;
    const [left, right] = sides.map((x) => (x as PromiseFulfilledResult<DiffSideData>).value) as [DiffSideData, DiffSideData];
    const { diffSides } = await import('../ops/snapdiff.js');
    return await diffSides(left, right, { times: o.times });
  } finally {
    for (const c of cleanups) c();
    store?.close();
  }
}

// ---- the commander definitions ----

export function registerSnapshot(program: Command, ctx: Ctx): void {
  const snap = program
    .command('snapshot')
    .description('a content-addressed, deduplicated snapshot of the root (and: snapshot show|rm)')
    .option('--store <dir>', 'the snapshot store (created when absent; also DATAROOT_STORE)')
    .option('--name <name>', 'name of the snapshot (default: the time)')
    .option('--exclude <glob>', 'leave out paths matching (repeatable; * within a name, ** across)', collect, [])
    .option('--metadata-only <glob>', 'record content by hash without storing it (repeatable)', collect, [])
    .option('--live', 'snapshot a root a running daemon holds (BoltDB files may be torn)', false)
    .addOption(new Option('--compress-level <n>', 'zstd level of the stored contents, -100 (fastest) to 19 (smallest); default -2').argParser(parseLevel))
    .action(async (o: SnapshotOpts, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runSnapshot(o, g, ctx);
      if (g.json) {
        for (const w of r.stats.warnings) warn(ctx, w);
        emitJson(ctx, r);
      } else renderSnapshot(ctx, r);
    });

  snap
    .command('show')
    .argument('<name>')
    .option('--store <dir>', 'the snapshot store (also DATAROOT_STORE)')
    .option('--entries', 'list every entry', false)
    .description('one snapshot: source, options, sizes (--entries: every path with its type, mode, owner and hash)')
    .action(async (name: string, _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const o = cmd.optsWithGlobals<StoreOpt & { entries: boolean }>();
      const r = await runShow(name, o, ctx);
      if (g.json) emitJson(ctx, r.entries !== undefined ? { ...r.snapshot, entries: r.entries } : r.snapshot);
      else await renderShow(ctx, r);
    });

  snap
    .command('rm')
    .argument('<name...>')
    .option('--store <dir>', 'the snapshot store (also DATAROOT_STORE)')
    .description('remove snapshots, and the packs no remaining snapshot uses')
    .action(async (names: string[], _o: object, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runRm(names, cmd.optsWithGlobals<StoreOpt>(), ctx);
      if (g.json) emitJson(ctx, r);
      else ctx.stdout.write(`removed ${r.removed.join(', ')}; ${r.packsRemoved.length} packs (${bytesHuman(r.bytesFreed)}) freed\n`);
    });

  program
    .command('snapshots')
    .option('--store <dir>', 'the snapshot store (also DATAROOT_STORE)')
    .description('the snapshots of a store, with sizes and dedup ratio')
    .action(async (o: StoreOpt, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runList(o, ctx);
      if (g.json) emitJson(ctx, r.snapshots);
      else await renderList(ctx, r);
    });

  program
    .command('restore')
    .argument('<name>')
    .requiredOption('--to <dir>', 'where to write the tree')
    .option('--store <dir>', 'the snapshot store (also DATAROOT_STORE)')
    .option('--force', 'replace the content of a non-empty target', false)
    .description('write a snapshot back exactly (owners, modes, devices, links, xattrs, times)')
    .action(async (name: string, o: StoreOpt & { to: string; force: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runRestore(name, o, ctx);
      if (r.skipped.length > 0) warn(ctx, `not restored (sockets): ${r.skipped.join(', ')}`);
      if (g.json) emitJson(ctx, r);
      else renderRestore(ctx, r);
    });

  program
    .command('reset')
    .requiredOption('--backup-to <dir>', 'snapshot store that keeps the root before it is emptied')
    .option('--name <name>', 'name of the backup snapshot')
    .description('snapshot the root into a store, then empty it (a safe "start from scratch")')
    .action(async (o: { backupTo: string; name?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runReset(o, g, ctx);
      if (g.json) emitJson(ctx, r);
      else {
        const store = resolve(ctx.cwd, o.backupTo);
        ctx.stdout.write(
          `saved ${r.emptied} as ${r.backup.name} in ${store} (${r.backup.entries} entries), then emptied it; dataroot restore ${r.backup.name} --store ${store} --to ${r.emptied} brings it back\n`,
        );
      }
    });

  program
    .command('diff')
    .argument('<left>', 'a directory, a data-root archive, or @name of a snapshot')
    .argument('<right>')
    .option('--store <dir>', 'the snapshot store for @names (also DATAROOT_STORE)')
    .option('--exclude <glob>', 'leave out paths matching (directories and archives; repeatable)', collect, [])
    .option('--times', 'also report entries whose only change is their mtime', false)
    .description('what changed between two data-roots: entries, their meaning (JSON paths, BoltDB keys, tar-split), in Docker terms; exit 1 when they differ')
    .action(async (l: string, r: string, o: StoreOpt & { exclude: string[]; times: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const res = await runDiff(l, r, o, ctx);
      if (g.json) emitJson(ctx, res);
      else renderDiff(ctx, res);
      if (!res.equal) ctx.exitCode = 1;
    });
}

import { realpathSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { isSnapshotName, type RegisteredSnapshot } from '../formats/snapstore/registry.js';
import { undoneUnlessDone } from '../io/cleanup.js';
import { manifestOf, type CarriedEntry, type ManifestEntry, type ManifestLinesAhead } from '../store/snapshots/manifest.js';
import { PackWriter, ZSTD_LEVELS } from '../store/snapshots/packwriter.js';
import type { SnapshotStore } from '../store/snapshots/store.js';
import { Previous, scanTree, type ScanOptions, type ScanStats } from './scantree.js';

export { Previous, scanTree, type ScanOptions, type ScanStats } from './scantree.js';

export interface SnapshotOptions {
  name?: string;
  exclude: string[];
  metadataOnly: string[];
  live: boolean;
  onProgress?: ScanOptions['onProgress'];
  onWalked?: () => void;
  /** zstd level of the stored contents (default ZSTD_LEVEL). */
  level?: number;
}

export interface SnapshotResult {
  snapshot: RegisteredSnapshot;
  stats: ScanStats;
  previous: string | undefined;
}

/**
 * `dataroot snapshot`: scans the root into a manifest, stores the content that is new in one
 * pack, writes the manifest, and registers the snapshot last. On any failure, and on SIGINT,
 * SIGTERM or SIGHUP, the pack and the manifest are removed and nothing is registered.
 */
export async function takeSnapshot(store: SnapshotStore, rootDir: string, o: SnapshotOptions): Promise<SnapshotResult> {
  const source = realpathSync(rootDir);
  const name = checkedName(store, o);
  checkLevel(o.level);
  const prev = await previousOf(store, source, o);
  const pack = new PackWriter(store, o.level);
  let manifestName: string | undefined;
  const undo = (): void => {
    pack.abort();
    if (manifestName !== undefined) store.removeManifest({ name: manifestName });
  };
  return undoneUnlessDone(undo, async () => {
    const { entries, stats, lines } = await scanTree(source, scanOptions(store, pack, prev?.entries, o));
    await pack.finish();
    manifestName = name;
    const snapshot = await writeAndRegister(store, pack, { name, source, o, entries, stats, ...(lines !== undefined ? { lines } : {}) });
    return { snapshot, stats, previous: prev?.snap.name };
  });
}

/** The snapshot's name (default: the time), checked against the name format and the registry. */
function checkedName(store: SnapshotStore, o: SnapshotOptions): string {
  const name = o.name ?? new Date().toISOString().replace(/[:.]/g, '-');
  if (!isSnapshotName(name)) throw new DatarootError('USAGE_BAD_SNAPSHOT_NAME', `snapshot name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-"`);
  if (store.snapshots().some((s) => s.name === name)) throw new DatarootError('SNAPSHOT_EXISTS', `a snapshot named ${name} exists in ${store.dir}`);
  return name;
}

function checkLevel(level: number | undefined): void {
  if (level !== undefined && (!Number.isInteger(level) || level < ZSTD_LEVELS.min || level > ZSTD_LEVELS.max)) {
    throw new DatarootError('USAGE_BAD_LEVEL', `compression level ${level}: an integer from ${ZSTD_LEVELS.min} (fastest) to ${ZSTD_LEVELS.max} (smallest)`);
  }
}

/** The latest snapshot of the same source, to reuse what did not change. */
async function previousOf(store: SnapshotStore, source: string, o: SnapshotOptions): Promise<{ snap: RegisteredSnapshot; entries: Previous } | undefined> {
  const same = store.snapshots().filter((s) => s.source === source);
  const last = same[same.length - 1];
  if (last === undefined) return undefined;
  try {
    const m = await store.readManifestAsync(last, true);
    const sameOptions = JSON.stringify([last.options.exclude, last.options.metadataOnly]) === JSON.stringify([o.exclude, o.metadataOnly]);
    return { snap: last, entries: new Previous(m, sameOptions) };
  } catch {
    return undefined; // a damaged previous manifest: hash everything again
  }
}

function scanOptions(store: SnapshotStore, pack: PackWriter, previous: Previous | undefined, o: SnapshotOptions): ScanOptions {
  return {
    exclude: o.exclude,
    metadataOnly: o.metadataOnly,
    ...(previous !== undefined ? { previous } : {}),
    store,
    pack,
    ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
    ...(o.onWalked !== undefined ? { onWalked: o.onWalked } : {}),
    linesAhead: true,
  };
}

/** Writes the manifest, then registers the snapshot (the step that makes it exist). */
async function writeAndRegister(
  store: SnapshotStore,
  pack: PackWriter,
  s: { name: string; source: string; o: SnapshotOptions; entries: (ManifestEntry | CarriedEntry)[]; stats: ScanStats; lines?: ManifestLinesAhead },
): Promise<RegisteredSnapshot> {
  const options = { exclude: s.o.exclude, metadataOnly: s.o.metadataOnly, live: s.o.live };
  const manifest = manifestOf({ name: s.name, created: new Date().toISOString(), source: s.source, options }, s.entries, s.lines);
  const m = await store.writeManifest(s.name, manifest);
  const snapshot: RegisteredSnapshot = {
    name: s.name,
    created: manifest.header.created,
    source: s.source,
    manifest: m.path,
    manifestSha256: m.sha256,
    entries: s.stats.entries,
    logicalBytes: s.stats.logicalBytes,
    newBytes: pack.newBytes,
    storedBytes: pack.count === 0 ? 0 : store.packBytes(pack.id),
    packs: pack.count === 0 ? [] : [pack.id],
    options,
  };
  store.register(snapshot);
  return snapshot;
}

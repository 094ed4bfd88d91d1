import { readFileSync, realpathSync } from 'node:fs';
import { containerdSummary, isMetaDbPath, type ContainerdSummary } from './containerddiff.js';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BoltFile } from '../formats/bolt/db.js';
import { BufferSource } from '../formats/bolt/source.js';
import { DatarootError } from '../formats/errors.js';
import { isBucketEntry } from '../formats/bolt/db.js';
import { isBoltMagic } from '../store/bolt.js';
import { kindOf, showKey, type BoltKind } from '../store/boltdecode.js';
import type { SnapshotStore } from '../store/snapshots/store.js';
import { diffBolt, flatten, type BoltChange } from './bolt.js';
import { manifestOf, type ManifestEntry, type ManifestLines } from '../store/snapshots/manifest.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { loadRecords, METADATA_V2, readMetaItems, usageEntries } from '../store/buildkit.js';

/** One side of a diff: its manifest lines (walk order) and a way to read a file's content. */
export interface DiffSideData {
  label: string;
  lines: ManifestLines;
  content(e: ManifestEntry): Buffer | undefined;
}

/** A snapshot as a diff side (contents from the store, checked by hash). */
export async function snapshotSide(store: SnapshotStore, name: string): Promise<DiffSideData> {
  const snap = store.find(name);
  return {
    label: `@${name}`,
    lines: await store.readManifestAsync(snap),
    content: (e) => (e.sha256 !== undefined && e.stored === true ? store.readAll(e.sha256, `@${name}:${e.path}`) : undefined),
  };
}

/** A directory as a diff side (scanned and hashed now, nothing stored). */
export async function directorySide(dir: string, label: string, exclude: string[] = []): Promise<DiffSideData> {
  const real = realpathSync(dir);
  const { scanTree } = await import('./scantree.js');
  const { entries } = await scanTree(real, { exclude, metadataOnly: [] });
  return {
    label,
    lines: manifestOf({ name: label, created: new Date().toISOString(), source: real, options: { exclude, metadataOnly: [], live: false } }, entries),
    content: (e) => {
      if (e.type !== 'file') return undefined;
      try {
        return readFileSync(e.pathBase64 !== undefined ? Buffer.concat([Buffer.from(`${real}/`), Buffer.from(e.pathBase64, 'base64')]) : join(real, e.path));
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * The walk order of snapshot entries: depth-first, names in byte order. As strings: component by
 * component, a shorter path (a directory) before what it contains.
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 0x2f) return -1;
    if (y === 0x2f) return 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

export type EntryChange = 'added' | 'removed' | 'modified' | 'type-changed' | 'metadata-changed';

export interface JsonChange {
  change: 'added' | 'removed' | 'changed';
  path: string;
  left?: unknown;
  right?: unknown;
}

/** What changed inside a file, by what the file is. */
export type Detail =
  | { kind: 'json'; changes: JsonChange[] }
  | { kind: 'bolt'; changes: BoltChange[] }
  | { kind: 'tar-split'; added: string[]; removed: string[]; changed: string[] }
  | { kind: 'text'; patch: string; /** the two texts until the patch is made (not serialised) */ texts?: [string, string] }
  | { kind: 'binary'; left?: { size: number; sha256: string }; right?: { size: number; sha256: string } };

export interface EntryDiff {
  path: string;
  change: EntryChange;
  type?: string;
  /** For type-changed: both types; for metadata-changed: the fields that differ, with both values. */
  fields?: Record<string, { left: unknown; right: unknown }>;
  detail?: Detail;
}

export interface DockerSummary {
  images: { added: string[]; removed: string[]; changed: string[] };
  tags: { added: string[]; removed: string[]; changed: string[] };
  layers: { added: string[]; removed: string[] };
  containers: { added: string[]; removed: string[]; changed: string[] };
  volumes: { added: string[]; removed: string[]; changed: string[] };
  networks: { added: string[]; removed: string[]; changed: string[] };
  /** containerd's objects (images, containers, snapshots, blobs by namespace), when a meta.db changed. */
  containerd?: ContainerdSummary;
  /** Build-cache records `docker system df` lists on each side (null: no buildkit/metadata_v2.db), and which appear or go. */
  buildCache: { left: number | null; right: number | null; added: string[]; removed: string[] };
}

export interface DiffResult {
  left: string;
  right: string;
  equal: boolean;
  summary: DockerSummary;
  counts: Record<EntryChange, number>;
  entries: EntryDiff[];
}

const MAX_DETAIL = 16 << 20;

function jsonKey(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
}

/** Structural differences of two JSON values, by path (`a.b."c/d"[2]`). */
export function jsonDiff(a: unknown, b: unknown, path = ''): JsonChange[] {
  const out: JsonChange[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const p = path === '' ? jsonKey(k) : `${path}.${jsonKey(k)}`;
      if (!(k in a)) out.push({ change: 'added', path: p, right: b[k] });
      else if (!(k in b)) out.push({ change: 'removed', path: p, left: a[k] });
      else out.push(...jsonDiff(a[k], b[k], p));
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const p = `${path}[${i}]`;
      if (i >= a.length) out.push({ change: 'added', path: p, right: b[i] });
      else if (i >= b.length) out.push({ change: 'removed', path: p, left: a[i] });
      else out.push(...jsonDiff(a[i], b[i], p));
    }
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ change: 'changed', path: path === '' ? '.' : path, left: a, right: b });
  return out;
}

function parseJson(b: Buffer): { ok: true; value: unknown } | { ok: false } {
  const first = b.find((c) => c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09);
  if (first !== 0x7b && first !== 0x5b) return { ok: false };
  try {
    return { ok: true, value: parseJsonBounded(b.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

function boltOf(b: Buffer, file: string): { db: BoltFile; kind: BoltKind } {
  const db = BoltFile.open(new BufferSource(b), { file });
  const top: string[] = [];
  db.forEachEntry(db.rootBucket(), db.newSeen(), (e) => {
    if (isBucketEntry(e)) top.push(showKey(e.key));
  });
  return { db, kind: kindOf(top) };
}

/** The names (and sizes) of the files a tar-split stream lists. */
function tarSplitFiles(b: Buffer): Map<string, number> | undefined {
  const out = new Map<string, number>();
  for (const line of b.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    let e: { type?: number; name?: string; name_raw?: string; size?: number };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      return undefined;
    }
    if (e.type === 1) out.set(e.name ?? Buffer.from(e.name_raw ?? '', 'base64').toString('latin1'), e.size ?? 0);
    else if (e.type !== 2) return undefined;
  }
  return out;
}

const isText = (b: Buffer): boolean => !b.subarray(0, 8192).includes(0) && Buffer.from(b.toString('utf8'), 'utf8').equals(b);

/** The meaning of a file's change: JSON paths, BoltDB keys, tar-split entries, a text patch, or sizes and hashes. */
/** Whether a file's content can say more than its size and hash (what the snapshot sniffed). */
function worthReading(e: ManifestEntry | undefined): boolean {
  return e === undefined || (e.kind !== 'binary' && e.kind !== 'empty');
}

/** detailOf with the contents read only when one of the two files may be JSON, BoltDB, gzip or text. */
function detailFor(
  path: string,
  left: DiffSideData | undefined,
  right: DiffSideData | undefined,
  le: ManifestEntry | undefined,
  re: ManifestEntry | undefined,
): Detail | undefined {
  if (!worthReading(le) && !worthReading(re)) return detailOf(path, undefined, undefined, le, re);
  return detailOf(path, le !== undefined ? left?.content(le) : undefined, re !== undefined ? right?.content(re) : undefined, le, re);
}

export function detailOf(path: string, left: Buffer | undefined, right: Buffer | undefined, le?: ManifestEntry, re?: ManifestEntry): Detail | undefined {
  const any = right ?? left;
  const binary = (): Detail => {
    const d: Detail = { kind: 'binary' };
    if (le?.sha256 !== undefined) d.left = { size: le.size, sha256: `sha256:${le.sha256}` };
    if (re?.sha256 !== undefined) d.right = { size: re.size, sha256: `sha256:${re.sha256}` };
    return d;
  };
  if (any === undefined || (left?.length ?? 0) > MAX_DETAIL || (right?.length ?? 0) > MAX_DETAIL) return binary();
  try {
    if (isBoltMagic(any.subarray(0, 64))) {
      const l = left !== undefined && left.length > 0 ? boltOf(left, `${path} (left)`) : undefined;
      const r = right !== undefined && right.length > 0 ? boltOf(right, `${path} (right)`) : undefined;
      if (l !== undefined && r !== undefined) return { kind: 'bolt', changes: diffBolt(l, r) };
      const only = (l ?? r)!;
      const change = l !== undefined ? 'removed' : 'added';
      const all = flatten(only.db).map((e): BoltChange => ({ change, path: e.path.map(showKey), key: showKey(e.key), ...(e.bucket ? { bucket: true } : {}) }));
      return { kind: 'bolt', changes: all };
    }
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    return binary();
  }
  const gz = (b: Buffer | undefined): Buffer | undefined => {
    if (b === undefined) return undefined;
    if (b[0] !== 0x1f || b[1] !== 0x8b) return b;
    try {
      return gunzipSync(b, { maxOutputLength: MAX_DETAIL });
    } catch {
      return undefined;
    }
  };
  const wasGz = any[0] === 0x1f && any[1] === 0x8b;
  const lt = gz(left);
  const rt = gz(right);
  if (wasGz) {
    const la = lt === undefined ? new Map<string, number>() : tarSplitFiles(lt);
    const ra = rt === undefined ? new Map<string, number>() : tarSplitFiles(rt);
    if (la !== undefined && ra !== undefined) {
      return {
        kind: 'tar-split',
        added: [...ra.keys()].filter((k) => !la.has(k)),
        removed: [...la.keys()].filter((k) => !ra.has(k)),
        changed: [...ra.keys()].filter((k) => la.has(k) && la.get(k) !== ra.get(k)),
      };
    }
  }
  const lj = lt === undefined ? undefined : parseJson(lt);
  const rj = rt === undefined ? undefined : parseJson(rt);
  if ((lj === undefined || lj.ok) && (rj === undefined || rj.ok) && (lj !== undefined || rj !== undefined)) {
    return { kind: 'json', changes: jsonDiff(lj?.ok ? lj.value : undefined, rj?.ok ? rj.value : undefined) };
  }
  if ((lt === undefined || isText(lt)) && (rt === undefined || isText(rt))) {
    return { kind: 'text', patch: '', texts: [lt?.toString('utf8') ?? '', rt?.toString('utf8') ?? ''] };
  }
  return binary();
}

function metaFields(a: ManifestEntry, b: ManifestEntry, times: boolean): Record<string, { left: unknown; right: unknown }> {
  const f: Record<string, { left: unknown; right: unknown }> = {};
  const cmp = (k: string, l: unknown, r: unknown): void => {
    if (JSON.stringify(l) !== JSON.stringify(r)) f[k] = { left: l, right: r };
  };
  cmp('mode', a.mode.toString(8).padStart(4, '0'), b.mode.toString(8).padStart(4, '0'));
  cmp('owner', `${a.uid}:${a.gid}`, `${b.uid}:${b.gid}`);
  cmp('rdev', a.rdev, b.rdev);
  cmp('xattrs', a.xattrs ?? {}, b.xattrs ?? {});
  if ((a.link === undefined) !== (b.link === undefined) || (a.link !== undefined && a.link !== b.link)) cmp('link', a.link, b.link);
  if (times) cmp('mtime', a.mtime, b.mtime);
  return f;
}

const empty = (): { added: string[]; removed: string[]; changed: string[] } => ({ added: [], removed: [], changed: [] });

/** The change in Docker's terms, from the paths and the semantic details. */
function dockerSummary(entries: EntryDiff[]): Omit<DockerSummary, 'buildCache'> {
  const s: Omit<DockerSummary, 'buildCache'> = {
    images: empty(),
    tags: empty(),
    layers: { added: [], removed: [] },
    containers: empty(),
    volumes: empty(),
    networks: empty(),
  };
  const put = (l: { added: string[]; removed: string[]; changed?: string[] }, change: EntryChange, id: string): void => {
    const list = change === 'added' ? l.added : change === 'removed' ? l.removed : l.changed;
    if (list !== undefined && !list.includes(id)) list.push(id);
  };
  for (const e of entries) {
    let m: RegExpExecArray | null;
    if ((m = /^image\/[^/]+\/imagedb\/content\/sha256\/([a-f0-9]{64})$/.exec(e.path)) !== null) put(s.images, e.change, `sha256:${m[1]}`);
    else if ((m = /^image\/[^/]+\/layerdb\/sha256\/([a-f0-9]{64})$/.exec(e.path)) !== null && (e.change === 'added' || e.change === 'removed'))
      put(s.layers, e.change, `sha256:${m[1]}`);
    else if ((m = /^containers\/([a-f0-9]{64})$/.exec(e.path)) !== null && (e.change === 'added' || e.change === 'removed')) put(s.containers, e.change, m[1]!);
    else if ((m = /^containers\/([a-f0-9]{64})\//.exec(e.path)) !== null && !entries.some((x) => x.path === `containers/${m![1]}` && x.change === 'added'))
      put(s.containers, 'modified', m[1]!);
    else if ((m = /^volumes\/([^/]+)$/.exec(e.path)) !== null && e.type === 'dir' && (e.change === 'added' || e.change === 'removed'))
      put(s.volumes, e.change, m[1]!);
    if (/^image\/[^/]+\/repositories\.json$/.test(e.path) && e.detail?.kind === 'json') {
      for (const c of e.detail.changes) {
        const t = /^Repositories\.(?:"[^"]*"|[A-Za-z_][A-Za-z0-9_]*)\.(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))$/.exec(c.path);
        if (t !== null) put(s.tags, c.change === 'changed' ? 'modified' : c.change, JSON.parse(`"${t[1] ?? t[2]}"`) as string);
        else if (/^Repositories\.[^.]+$/.test(c.path) && c.change !== 'changed') {
          for (const tag of Object.keys((c.change === 'added' ? c.right : c.left) as Record<string, string>)) put(s.tags, c.change, tag);
        }
      }
    }
    if (e.detail?.kind === 'bolt') {
      if (isMetaDbPath(e.path)) containerdSummary(e.detail.changes, s);
      for (const c of e.detail.changes) {
        if (e.path === 'volumes/metadata.db' && c.path[0] === 'volumes' && c.path.length === 1)
          put(s.volumes, c.change === 'changed' ? 'modified' : c.change, c.key);
        const n = /^docker\/network\/v1\.0\/network\/([a-f0-9]+)\/$/.exec(c.key);
        if (e.path === 'network/files/local-kv.db' && n !== null) {
          const v = (c.right ?? c.left) as { json?: { name?: string } } | undefined;
          put(s.networks, c.change === 'changed' ? 'modified' : c.change, v?.json?.name !== undefined ? `${v.json.name} (${n[1]!.slice(0, 12)})` : n[1]!);
        }
      }
    }
  }
  return s;
}

/**
 * `dataroot diff`: every path added, removed, modified, type-changed or metadata-changed (each
 * once), with what changed inside files (JSON by path, BoltDB by key, tar-split by entry, text
 * as a patch, binary by size and hash), and a summary in Docker's terms.
 */
export async function diffSides(left: DiffSideData, right: DiffSideData, o: { times: boolean } = { times: false }): Promise<DiffResult> {
  const A = left.lines;
  const B = right.lines;
  const entries: EntryDiff[] = [];
  const one = (side: 'added' | 'removed', e: ManifestEntry): void => {
    const d: EntryDiff = { path: e.path, change: side, type: e.type };
    if (e.type === 'file' && e.link === undefined) {
      d.detail = detailFor(e.path, left, right, side === 'removed' ? e : undefined, side === 'added' ? e : undefined)!;
    }
    if (e.type === 'char' || e.type === 'block')
      d.fields = { rdev: side === 'added' ? { left: undefined, right: e.rdev } : { left: e.rdev, right: undefined } };
    if (e.type === 'symlink') d.fields = { target: side === 'added' ? { left: undefined, right: e.target } : { left: e.target, right: undefined } };
    entries.push(d);
  };
  const pair = (a: ManifestEntry, b: ManifestEntry): void => {
    if (a.path === '') return; // the roots themselves are named differently on purpose
    if (a.type !== b.type) {
      entries.push({ path: a.path, change: 'type-changed', type: b.type, fields: { type: { left: a.type, right: b.type } } });
      return;
    }
    const contentChanged =
      (a.type === 'file' && a.link === undefined && b.link === undefined && a.sha256 !== b.sha256) ||
      (a.type === 'symlink' && (a.target !== b.target || a.targetBase64 !== b.targetBase64));
    const fields = metaFields(a, b, o.times);
    if (contentChanged) {
      const d: EntryDiff = { path: a.path, change: 'modified', type: a.type };
      if (a.type === 'symlink') fields['target'] = { left: a.target, right: b.target };
      else d.detail = detailFor(a.path, left, right, a, b)!;
      if (Object.keys(fields).length > 0) d.fields = fields;
      entries.push(d);
    } else if (Object.keys(fields).length > 0) entries.push({ path: a.path, change: 'metadata-changed', type: a.type, fields });
  };
  if (o.times) {
    // Entry by entry (times live apart from the identity lines).
    const ea = A.entries();
    const eb = B.entries();
    let i = 0;
    let j = 0;
    while (i < ea.length || j < eb.length) {
      const c = i >= ea.length ? 1 : j >= eb.length ? -1 : comparePaths(ea[i]!.path, eb[j]!.path);
      if (c < 0) {
        if (ea[i]!.path !== '') one('removed', ea[i]!);
        i++;
      } else if (c > 0) {
        if (eb[j]!.path !== '') one('added', eb[j]!);
        j++;
      } else pair(ea[i++]!, eb[j++]!);
    }
  } else {
    // Byte cursors over the identity lines: equal stretches are skipped a block at a time (the
    // block halved down to the first differing byte), and only the lines around a difference
    // are decoded.
    let pa = A.idStart;
    let pb = B.idStart;
    while (pa < A.idEnd || pb < B.idEnd) {
      if (pa < A.idEnd && pb < B.idEnd) {
        let k = Math.min(1 << 16, A.idEnd - pa, B.idEnd - pb);
        if (A.sameBytes(pa, B, pb, k)) {
          pa += k;
          pb += k;
          continue;
        }
        while (k > 1) {
          const h = k >> 1;
          if (A.sameBytes(pa, B, pb, h)) {
            pa += h;
            pb += h;
            k -= h;
          } else k = h;
        }
        // pa/pb are at the first differing byte: back to the start of its line (the same on both sides).
        const back = pa - A.lineStart(pa);
        pa -= back;
        pb -= back;
      }
      const c = pa >= A.idEnd ? 1 : pb >= B.idEnd ? -1 : comparePaths(A.pathAt(pa), B.pathAt(pb));
      if (c < 0) {
        const e = A.entryAt(pa);
        if (e.path !== '') one('removed', e);
        pa = A.lineEnd(pa) + 1;
      } else if (c > 0) {
        const e = B.entryAt(pb);
        if (e.path !== '') one('added', e);
        pb = B.lineEnd(pb) + 1;
      } else {
        pair(A.entryAt(pa), B.entryAt(pb));
        pa = A.lineEnd(pa) + 1;
        pb = B.lineEnd(pb) + 1;
      }
    }
  }
  // Unified patches for text files, with the diff package loaded only when there are some.
  const texts = entries.filter((e) => e.detail?.kind === 'text');
  if (texts.length > 0) {
    const { createTwoFilesPatch } = await import('diff');
    for (const e of texts) {
      const d = e.detail as Extract<Detail, { kind: 'text' }>;
      const [a, b] = d.texts ?? ['', ''];
      d.patch = createTwoFilesPatch(`a/${e.path}`, `b/${e.path}`, a, b, undefined, undefined, { context: 3 });
      delete d.texts;
    }
  }
  const counts: Record<EntryChange, number> = { added: 0, removed: 0, modified: 0, 'type-changed': 0, 'metadata-changed': 0 };
  for (const e of entries) counts[e.change]++;
  return {
    left: left.label,
    right: right.label,
    equal: entries.length === 0,
    summary: { ...dockerSummary(entries), buildCache: buildCacheSummary(left, right) },
    counts,
    entries,
  };
}

/** The build-cache records a side lists (from its metadata_v2.db alone), or null without one. */
function buildCacheIds(side: DiffSideData): string[] | null {
  const lines = side.lines;
  let lo = 0;
  let hi = lines.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (comparePaths(lines.pathOf(mid), METADATA_V2) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo >= lines.count || lines.pathOf(lo) !== METADATA_V2) return null;
  const e = lines.entry(lo);
  if (e.type !== 'file' || e.size > 256 << 20) return null;
  const b = side.content(e);
  if (b === undefined || b.length === 0) return null;
  try {
    const { items } = readMetaItems(BoltFile.open(new BufferSource(b), { file: METADATA_V2 }), METADATA_V2);
    // The content store is not consulted: a lazy record counts as listed.
    return usageEntries(
      loadRecords(
        items.filter((it) => it.invalid === undefined),
        () => true,
      ).records,
    ).map((u) => u.id);
  } catch (err) {
    if (err instanceof DatarootError) return null;
    throw err;
  }
}

function buildCacheSummary(left: DiffSideData, right: DiffSideData): DockerSummary['buildCache'] {
  const l = buildCacheIds(left);
  const r = buildCacheIds(right);
  const ls = new Set(l ?? []);
  const rs = new Set(r ?? []);
  return {
    left: l?.length ?? null,
    right: r?.length ?? null,
    added: [...rs].filter((x) => !ls.has(x)).sort(),
    removed: [...ls].filter((x) => !rs.has(x)).sort(),
  };
}

import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { dirname, posix } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { mknod, S_IFBLK, S_IFCHR, S_IFIFO, setXattr, lutimesNs } from '../../src/io/native.js';
import { mutate as mutateBolt } from './fuzz.js';
import { layerTar, type Spec } from './images.js';

/**
 * The hostile data-root fuzzer's library: the outside world a mutated root must never reach (a
 * canary tree whose content and names never appear in any output, a sentinel tree that is never
 * written, read or removed), cheap copies of the sample roots, the random hostile mutations, the
 * commands run on each mutated root and the checks of their outcome. Shared by the fuzz test
 * (test/hostile/fuzz.test.ts) and its child runner (test/support/hostile-runner.ts).
 */

// ---------------------------------------------------------------------------------------------
// Randomness

export type Rnd = () => number;

/** One PRNG per case, from the run's seed and the case number: any case replays alone. */
export function caseSeed(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export const pick = <T>(rnd: Rnd, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
export const int = (rnd: Rnd, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

// ---------------------------------------------------------------------------------------------
// The outside world: canary (never read) and sentinel (never written), next to the case's root

const OLD_ATIME = 1_000_000; // seconds: older than every mtime, so relatime records the next read

export interface Outside {
  /** The work dir: W/outside is the canary and sentinel tree, W/case/root the case's root. */
  work: string;
  dir: string;
  /** Letters g–z only, so it never occurs by chance in hex output. */
  token: string;
  /** Paths relative to `dir` of everything created, for the fingerprint (never a readdir). */
  entries: string[];
  /** Strings that must never appear in any output, with what each is. */
  needles: { what: string; s: string }[];
}

const BOLT_SAMPLE_NAME = 'samplevol';

export function makeOutside(work: string, boltSample?: Buffer): Outside {
  const dir = `${work}/outside`;
  const token = Array.from(randomBytes(16), (b) => String.fromCharCode(0x67 + (b % 20))).join('');
  const t9 = token.slice(0, BOLT_SAMPLE_NAME.length);
  const entries: string[] = [];
  const files = new Map<string, Buffer>();
  const mk = (rel: string): void => {
    mkdirSync(`${dir}/${rel}`, { recursive: true });
    entries.push(rel);
  };
  const put = (rel: string, data: string | Buffer): void => {
    const b = Buffer.from(data);
    writeFileSync(`${dir}/${rel}`, b);
    entries.push(rel);
    files.set(rel, b);
  };
  mkdirSync(dir, { recursive: true });
  entries.push('');
  const hex = createHash('sha256').update(token).digest('hex');
  put('canary.txt', `CANARY_${token}\nsecret line two ${token}\n`);
  put(
    'canary.json',
    JSON.stringify({
      Repositories: { [`canary${token}/img`]: { [`canary${token}/img:latest`]: `sha256:${hex}` } },
      ID: hex,
      Name: `/canary${token}`,
      Image: `sha256:${hex}`,
      State: { Running: false, Pid: 0, StartedAt: '2020-01-01T00:00:00Z', FinishedAt: '2020-01-01T00:00:00Z' },
      Config: { Hostname: `canary${token}`, Env: [`CANARY=${token}`], Labels: { canary: token } },
      config: { Env: [`CANARY=${token}`], Labels: { canary: token } },
      architecture: 'amd64',
      os: 'linux',
      created: '2020-01-01T00:00:00Z',
      rootfs: { type: 'layers', diff_ids: [] },
      history: [{ created_by: `canary ${token}` }],
      MountType: `canary${token}`,
      Driver: `canary${token}`,
    }),
  );
  put(
    'canary.json.gz',
    gzipSync(
      Buffer.from(
        `{"type":1,"name":"canary${token}","payload":null,"position":0}\n{"type":2,"payload":"${Buffer.from(`CANARY_${token}`).toString('base64')}","position":1}\n`,
      ),
    ),
  );
  put('canary.id', `${hex}\n`);
  // A BoltDB file whose volume name is part of the token (same length: the file stays valid).
  if (boltSample !== undefined) {
    const b = Buffer.from(boltSample);
    const from = Buffer.from(BOLT_SAMPLE_NAME);
    for (let at = b.indexOf(from); at >= 0; at = b.indexOf(from, at + 1)) Buffer.from(t9).copy(b, at);
    put('canary.db', b);
  }
  mk('canarydir');
  put('canarydir/hidden-' + token, `CANARY_${token}\n`);
  mk(`canarydir/sub-${token}`);
  put(`canarydir/sub-${token}/inner-${token}.json`, JSON.stringify({ canary: token }));
  mk('canarydir/diff');
  put(`canarydir/diff/hidden2-${token}`, `CANARY_${token}\n`);
  mk('canarydir/etc');
  put('canarydir/etc/hostname', `canary${token}\n`);
  mk('sentinel');
  put('sentinel/x', `sentinel ${token}\n`);
  mk('sentinel/victim');
  put('sentinel/victim/data', `victim ${token}\n`);
  mk('sentinel/victim/diff');
  put(`sentinel/victim/diff/keep-${token}`, `victim ${token}\n`);
  mk('sentinel/a/b/c');
  entries.push('sentinel/a', 'sentinel/a/b');
  put('sentinel/a/b/c/file', `deep ${token}\n`);
  // An ID-shaped directory: a 64-hex name outside the root, for `../` IDs that look right at the end.
  mk(hex);
  mk(`${hex}/diff`);
  put(`${hex}/diff/hidden3-${token}`, `CANARY_${token}\n`);
  entries.sort();
  resetAtimes({ dir, entries });

  const needles: { what: string; s: string }[] = [];
  const add = (what: string, s: string): void => {
    if (s.length >= 8 && !needles.some((n) => n.s === s)) needles.push({ what, s });
  };
  add('token', token);
  add('token (first 9, in canary.db)', t9);
  add('token hex', Buffer.from(token).toString('hex'));
  add('token HEX', Buffer.from(token).toString('hex').toUpperCase());
  for (const t of [token, `CANARY_${token}`]) {
    for (let o = 0; o < 3; o++) {
      const part = Buffer.from(t.slice(o));
      const full = Math.floor(part.length / 3) * 3;
      add(`token base64 (offset ${o})`, part.subarray(0, full).toString('base64'));
      add(`token base64url (offset ${o})`, part.subarray(0, full).toString('base64url'));
    }
  }
  for (const [rel, b] of files) {
    const d = createHash('sha256').update(b).digest();
    add(`sha256 of ${rel}`, d.toString('hex').slice(0, 32));
    add(`sha256 (base64) of ${rel}`, d.toString('base64').slice(0, 24));
  }
  return { work, dir, token, entries, needles };
}

/** Sets every outside entry's atime far in the past (so a read shows as a changed atime). */
export function resetAtimes(o: Pick<Outside, 'dir' | 'entries'>): void {
  for (const rel of o.entries) {
    const p = rel === '' ? o.dir : `${o.dir}/${rel}`;
    const st = lstatSync(p);
    utimesSync(p, OLD_ATIME, st.mtime);
  }
}

/** Where a needle occurs in a text (undefined when none does). */
export function findLeak(o: Outside, text: string): string | undefined {
  const lower = text.toLowerCase();
  for (const n of o.needles) {
    const at = n.what.includes('base64') ? text.indexOf(n.s) : lower.indexOf(n.s.toLowerCase());
    if (at >= 0) return `${n.what} at offset ${at}: …${JSON.stringify(text.slice(Math.max(0, at - 80), at + n.s.length + 40))}…`;
  }
  return undefined;
}

/**
 * The outside tree, entry by entry: type, mode, owner, size, inode, atime, mtime, ctime and the
 * sha256 of each file (read with O_NOATIME, and no readdir: our own look must not count as a
 * read). A file's content cannot change without its ctime, so its hash is computed again only
 * when its other fields changed (`known`: the hashes of an earlier listing, by stat line).
 */
export function fingerprintOutside(o: Outside, known: Map<string, string> = hashCache): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of o.entries) {
    const p = rel === '' ? o.dir : `${o.dir}/${rel}`;
    let st: BigIntStats;
    try {
      st = lstatSync(p, { bigint: true });
    } catch {
      out.set(rel, 'MISSING');
      continue;
    }
    const line = `mode=${st.mode.toString(8)} ${st.uid}:${st.gid} size=${st.size} ino=${st.ino} atime=${st.atimeNs} mtime=${st.mtimeNs} ctime=${st.ctimeNs}`;
    let h = '';
    if (st.isFile()) {
      const key = `${p} ${line.replace(/ atime=\d+/, '')}`;
      h = known.get(key) ?? sha256NoAtime(p);
      known.set(key, h);
    }
    out.set(rel, `${line} sha256=${h}`);
  }
  // The work dir itself: an entry created or removed next to outside/ and case/ changes it.
  const w = lstatSync(o.work, { bigint: true });
  out.set('<work dir>', `mtime=${w.mtimeNs} ctime=${w.ctimeNs}`);
  if (known.size > 10_000) known.clear();
  return out;
}

const hashCache = new Map<string, string>();

function sha256NoAtime(p: string): string {
  const fd = openSync(p, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NOATIME);
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

export function diffMaps(before: Map<string, string>, after: Map<string, string>, limit = 6): string[] {
  const out: string[] = [];
  for (const [k, v] of before) {
    const w = after.get(k);
    if (w === undefined) out.push(`removed ${k}`);
    else if (w !== v) out.push(`changed ${k}: ${v} -> ${w}`);
  }
  for (const k of after.keys()) if (!before.has(k)) out.push(`added ${k}`);
  return out.slice(0, limit).concat(out.length > limit ? [`… ${out.length - limit} more`] : []);
}

// ---------------------------------------------------------------------------------------------
// Trees: a listing of the base, a cheap copy per case, a fingerprint of the root

export interface Entry {
  rel: string;
  kind: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
}

/** Every entry of a tree (never through a symlink), depth first in name order. */
export function listTree(root: string): Entry[] {
  const out: Entry[] = [];
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const names = readdirSync(rel === '' ? root : `${root}/${rel}`)
      .sort()
      .reverse();
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(`${root}/${r}`);
      const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      out.push({ rel: r, kind, size: st.size });
      if (kind === 'dir') stack.push(r);
    }
  }
  return out;
}

/**
 * Copies a tree (files, dirs, symlinks, devices and FIFOs; modes and times), never following a
 * symlink and sharing no inode with the source, so a mutation of the copy never reaches the base.
 */
export function copyTree(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  chmodSync(dst, lstatSync(src).mode & 0o7777);
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const name of readdirSync(rel === '' ? src : `${src}/${rel}`)) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const from = `${src}/${r}`;
      const to = `${dst}/${r}`;
      const st = lstatSync(from);
      if (st.isDirectory()) {
        mkdirSync(to, { mode: st.mode & 0o7777 });
        stack.push(r);
      } else copyEntry(from, to);
    }
  }
}

/**
 * Puts back what a case's mutations touched, from the base: each touched path is removed and,
 * when the base has it, copied again (a cheap undo instead of a fresh copy of the whole tree).
 */
export function restoreTouched(base: string, root: string, touched: Buffer[], deep = false): void {
  const uniq = [...new Map(touched.map((t) => [t.toString('hex'), t])).values()].sort((a, b) => a.length - b.length);
  const done: Buffer[] = [];
  for (const rel of uniq) {
    if (done.some((d) => rel.length > d.length && rel[d.length] === 0x2f && rel.subarray(0, d.length).equals(d))) continue;
    done.push(rel);
    // Names the fuzzer made may not be UTF-8: removed by their bytes.
    const abs = Buffer.concat([Buffer.from(`${root}/`), rel]);
    if (deep && Buffer.from(abs.toString('utf8')).equals(abs)) {
      const r = spawnSync('rm', ['-rf', '--', abs.toString('utf8')], { stdio: 'ignore' });
      if (r.status !== 0) rmSync(abs, { recursive: true, force: true });
    } else rmSync(abs, { recursive: true, force: true });
    const relS = rel.toString();
    let st;
    try {
      st = lstatSync(`${base}/${relS}`);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      copyTree(`${base}/${relS}`, `${root}/${relS}`);
      continue;
    }
    copyEntry(`${base}/${relS}`, `${root}/${relS}`);
  }
}

function copyEntry(from: string, to: string): void {
  const st = lstatSync(from);
  if (st.isFile()) copyFileSync(from, to);
  else if (st.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
  else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
    const type = st.isCharacterDevice() ? S_IFCHR : st.isBlockDevice() ? S_IFBLK : S_IFIFO;
    mknod(to, type | (st.mode & 0o7777), Math.floor(st.rdev / 256) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00));
  }
}

/** The shape of a tree (types, modes, sizes, link targets, devices; no times or inodes), to check a restore. */
export function shapeOf(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of fingerprintRoot(root)) out.set(k, v.replace(/ ino=\d+ mtime=-?\d+ ctime=-?\d+/, '').replace(/^(mode=40\d+ \d+:\d+) size=\d+/, '$1'));
  return out;
}

/**
 * The root, entry by entry, for "read commands change nothing": type, mode, owner, size, inode,
 * mtime and ctime (any write, chmod, rename or utimes changes a ctime; a created or removed entry
 * changes its directory's), link targets and device numbers. atime is left out: reading is allowed.
 */
export function fingerprintRoot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack: Buffer[] = [Buffer.from('')];
  const rootB = Buffer.from(root);
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const abs = rel.length === 0 ? rootB : Buffer.concat([rootB, Buffer.from('/'), rel]);
    const st = lstatSync(abs, { bigint: true });
    let extra = '';
    if (st.isSymbolicLink()) extra = readlinkSync(abs, 'buffer').toString('hex');
    out.set(
      rel.toString('latin1'),
      `mode=${st.mode.toString(8)} ${st.uid}:${st.gid} size=${st.size} ino=${st.ino} mtime=${st.mtimeNs} ctime=${st.ctimeNs} rdev=${st.rdev} ${extra}`,
    );
    if (st.isDirectory()) for (const n of readdirSync(abs, 'buffer')) stack.push(rel.length === 0 ? n : Buffer.concat([rel, Buffer.from('/'), n]));
  }
  return out;
}

/**
 * The first half of a tick: writes `marker` and returns its ctime (= its mtime). Every change made
 * before stays at or below it. Work done before `ctimeAfter` overlaps the wait for the clock.
 */
export function ctimeMark(marker: string): bigint {
  writeFileSync(marker, '');
  return lstatSync(marker, { bigint: true }).ctimeNs;
}

/** The second half: the first ctime past `c0` (touching `marker`, which may be another file). */
export function ctimeAfter(marker: string, c0: bigint): bigint {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (let first = true; ; first = false) {
    if (!first) Atomics.wait(nap, 0, 0, 1);
    writeFileSync(marker, '');
    const c = lstatSync(marker, { bigint: true }).ctimeNs;
    if (c > c0) return c;
  }
}

/**
 * changedSince for a tree hundreds of directories deep, walked by find (from directory to
 * directory, linear in the depth): the entries whose ctime passed the mtime of `mark`, a file
 * written by ctimeMark before the tick (nothing changes between the mark and the tick but the
 * tick's own marker, outside the root).
 */
export function changedSinceMark(root: string, mark: string, limit = 6): string[] {
  const r = spawnSync('find', [root, '-cnewer', mark, '-print0'], { maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`find ${root}: ${r.stderr.toString()}`);
  const names = r.stdout
    .toString('latin1')
    .split('\0')
    .filter((n) => n !== '');
  return names
    .slice(0, limit)
    .map((n) => {
      const st = lstatSync(Buffer.from(n, 'latin1'), { bigint: true });
      return `${JSON.stringify(n.slice(root.length + 1) || '.')} (mode ${st.mode.toString(8)}, size ${st.size}, mtime ${st.mtimeNs}, ctime ${st.ctimeNs} after the commands began)`;
    })
    .concat(names.length > limit ? [`… ${names.length - limit} more`] : []);
}

/**
 * The entries of the root whose ctime reached `tick` (written, created, renamed, chmodded, their
 * times set, or a directory whose entries changed): one walk proves that nothing changed since.
 */
export function changedSince(root: string, tick: bigint, limit = 6): string[] {
  const out: string[] = [];
  const stack: Buffer[] = [Buffer.from('')];
  const rootB = Buffer.from(root);
  while (stack.length > 0 && out.length < limit) {
    const rel = stack.pop()!;
    const abs = rel.length === 0 ? rootB : Buffer.concat([rootB, Buffer.from('/'), rel]);
    const st = lstatSync(abs, { bigint: true });
    if (st.ctimeNs >= tick)
      out.push(
        `${JSON.stringify(rel.toString('latin1') || '.')} (mode ${st.mode.toString(8)}, size ${st.size}, mtime ${st.mtimeNs}, ctime ${st.ctimeNs} after the commands began)`,
      );
    if (st.isDirectory()) for (const n of readdirSync(abs, 'buffer')) stack.push(rel.length === 0 ? n : Buffer.concat([rel, Buffer.from('/'), n]));
  }
  return out;
}

/** Removes a tree whatever its names (not UTF-8, control characters) and types; `deep`: by rm at once. */
export function removeTree(path: string, deep = false): void {
  if (deep && spawnSync('rm', ['-rf', '--', path], { stdio: 'ignore' }).status === 0) return;
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch {
    // Names that are not UTF-8 defeat rmSync's own walk: rm takes them as bytes.
  }
  const r = spawnSync('rm', ['-rf', '--', path], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`rm -rf ${path} failed`);
}

// ---------------------------------------------------------------------------------------------
// Mutations

export interface MutationCtx {
  root: string;
  rnd: Rnd;
  out: Outside;
  /** The base's entries (some may be gone after an earlier mutation of the same case). */
  entries: Entry[];
  driver: 'overlay2' | 'vfs';
  /** Paths (relative to the root) the mutations replaced, changed or created: restored from the base afterwards. */
  touched: Buffer[];
  /**
   * Set by a mutation that made a tree hundreds of directories deep: the checks walk it and the
   * restore removes it with find and rm, whose walks go from directory to directory (Node's take
   * every path from the root: quadratic in the depth, seconds a case).
   */
  deep?: boolean;
}

function touch(m: MutationCtx, rel: string | Buffer): void {
  m.touched.push(Buffer.from(rel));
}

export interface Mutation {
  name: string;
  weight: number;
  /** Applies the mutation; returns a description (for the failure message), or undefined when it did not apply. */
  apply(m: MutationCtx): string | undefined;
}

/** Files whose names say what they are to dockerd: mutations prefer them. */
const ID_FILES = /(^|\/)(cache-id|mount-id|init-id|parent|link|lower|diff|size|lastUpdated|committed)$/;
const JSON_FILES = /(repositories\.json|config\.v2\.json|hostconfig\.json|opts\.json|imagedb\/content\/sha256\/[0-9a-f]{64})$/;
const BOLT_FILES = /\.db$/;
const INTERESTING =
  /(^|\/)(overlay2\/l\/|diff$|_data$|layerdb\/|imagedb\/|containers\/[0-9a-f]{64}$|vfs\/dir\/|overlay2\/[0-9a-f]{64}(-init)?$|network\/files|volumes\/[^/]+$|image\/[^/]+$|tar-split)/;

function kindNow(p: string): Entry['kind'] | undefined {
  try {
    const st = lstatSync(p);
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  } catch {
    return undefined;
  }
}

/** Whether rel is a real directory reached through real directories only. */
function realDir(root: string, rel: string): boolean {
  return kindNow(`${root}/${rel}`) === 'dir' && throughDirs(root, rel);
}

/**
 * A random entry of the root as it is now (an earlier mutation of the case may have replaced or
 * removed it), preferring the interesting ones; `filter` restricts it. Never a path through a
 * symlink: the fuzzer itself must not read outside.
 */
function target(m: MutationCtx, filter: (e: Entry) => boolean = () => true): Entry | undefined {
  const isFav = (e: Entry): boolean => ID_FILES.test(e.rel) || JSON_FILES.test(e.rel) || BOLT_FILES.test(e.rel) || INTERESTING.test(e.rel);
  const preferFav = m.rnd() < 0.7;
  // Candidates in a random order (favourites first when preferred); the first that still is what
  // the filter wants wins. Cheaper than a look at every entry of the root.
  const order = m.entries.map((e) => ({ e, key: (preferFav && isFav(e) ? 0 : 1) + m.rnd() }));
  order.sort((a, b) => a.key - b.key);
  for (const { e } of order) {
    const kind = kindNow(`${m.root}/${e.rel}`);
    if (kind === undefined) continue;
    const now = kind === e.kind ? e : { ...e, kind };
    if (filter(now) && throughDirs(m.root, e.rel)) return now;
  }
  return undefined;
}

/** Whether every ancestor of rel is a real directory (no symlink on the way). */
function throughDirs(root: string, rel: string): boolean {
  const parts = rel.split('/');
  let p = root;
  for (let i = 0; i < parts.length - 1; i++) {
    p = `${p}/${parts[i]}`;
    if (kindNow(p) !== 'dir') return false;
  }
  return true;
}

function depthOf(rel: string): number {
  return rel.split('/').length - 1;
}

/** A path from the directory of `rel` (inside the root) to `outsideRel` under W/outside. */
function escapeTo(m: MutationCtx, rel: string, outsideRel: string): string {
  const style = m.rnd();
  if (style < 0.35) return `${m.out.dir}/${outsideRel}`;
  // root is W/case/root: from the dir of rel, depth+2 `..` reach W.
  if (style < 0.8) return `${'../'.repeat(depthOf(rel) + 2)}outside/${outsideRel}`;
  // Too many `..` stop at `/`: then the absolute path of W.
  return `${'../'.repeat(depthOf(rel) + 2 + int(m.rnd, 1, 12))}${m.out.dir.slice(1)}/${outsideRel}`;
}

function outsideFileFor(m: MutationCtx, rel: string): string {
  if (/\.json$|content\/sha256\//.test(rel)) return pick(m.rnd, ['canary.json', 'canary.json', 'canary.txt']);
  if (/\.gz$/.test(rel)) return 'canary.json.gz';
  if (/\.db$/.test(rel) && m.out.entries.includes('canary.db')) return 'canary.db';
  if (ID_FILES.test(rel)) return pick(m.rnd, ['canary.id', 'canary.txt']);
  return pick(m.rnd, ['canary.txt', 'canary.json', 'canary.json.gz', 'canary.id', ...(m.out.entries.includes('canary.db') ? ['canary.db'] : [])]);
}

function outsideDirFor(m: MutationCtx): string {
  const hexDir = m.out.entries.find((e) => /^[0-9a-f]{64}$/.test(e))!;
  return pick(m.rnd, ['canarydir', 'canarydir', 'canarydir/diff', 'sentinel', 'sentinel/victim', hexDir, `${hexDir}/diff`, '']);
}

function replaceWith(abs: string, make: () => void): void {
  rmSync(abs, { recursive: true, force: true });
  make();
}

const HOSTILE_IDS = (m: MutationCtx, rel: string): string[] => {
  const W = m.out.work;
  const up = (d: number): string => '../'.repeat(d);
  const hexDir = m.out.entries.find((e) => /^[0-9a-f]{64}$/.test(e))!;
  return [
    `${up(int(m.rnd, 1, 8))}outside/sentinel/victim`,
    `${up(depthOf(rel) + 2)}outside/sentinel/victim`,
    `${up(int(m.rnd, 1, 8))}outside/canarydir`,
    `${up(int(m.rnd, 1, 8))}outside/${hexDir}`,
    '../../victim',
    '../../../x',
    `${W}/outside/sentinel/victim`,
    `${W}/outside/canarydir`,
    '/etc',
    '/',
    '.',
    '..',
    '',
    '\n',
    'a'.repeat(int(m.rnd, 256, 5000)),
    'a'.repeat(70 << 10),
    '\u001b]0;pwned\u0007\u001b[2J',
    '\u009b31mred\u009b0m',
    'x\ny\rz\u0000w',
    `sha256:${up(3)}outside/canarydir`,
    `sha256:${randomHex(m.rnd)}`,
    randomHex(m.rnd),
    `${randomHex(m.rnd)}/../../${hexDir}`,
    `l/${up(3)}outside/canarydir`,
    `l/AAAAAAAAAAAAAAAAAAAAAAAAAA:l/${up(2)}outside/canarydir:l/BBBBBBBBBBBBBBBBBBBBBBBBBB`,
    `${up(2)}${hexDir}`,
    '-1',
    '99999999999999999999999999',
    '1e309',
    '\ud800\udfff\uffff',
    '\u202e\u2066evil',
  ];
};

function randomHex(rnd: Rnd, n = 64): string {
  let s = '';
  for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(rnd() * 16)];
  return s;
}

/** A JSON value of a different type than `v`. */
function otherType(rnd: Rnd, v: unknown): unknown {
  const choices: unknown[] = [
    null,
    0,
    -1,
    1.5,
    1e308,
    -0,
    2 ** 53 + 2,
    'str',
    '',
    '\u001b[31mX',
    [],
    [1, 'a', null],
    {},
    { a: { b: [] } },
    true,
    false,
    'x'.repeat(100_000),
  ];
  const t = (x: unknown): string => (x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x);
  const others = choices.filter((c) => t(c) !== t(v));
  return pick(rnd, others);
}

/** A random node of a JSON value, top-level fields as likely as deep ones: a path of keys. */
function randomPath(rnd: Rnd, v: unknown): (string | number)[] {
  const path: (string | number)[] = [];
  let cur = v;
  for (;;) {
    const keys: (string | number)[] = Array.isArray(cur) ? cur.map((_, i) => i) : cur !== null && typeof cur === 'object' ? Object.keys(cur) : [];
    if (keys.length === 0 || (path.length > 0 && rnd() < 0.35)) return path;
    const k = pick(rnd, keys);
    path.push(k);
    cur = (cur as Record<string | number, unknown>)[k];
  }
}

function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  let cur = root as Record<string | number, unknown>;
  for (let i = 0; i < path.length - 1; i++) cur = cur[path[i]!] as Record<string | number, unknown>;
  cur[path[path.length - 1]!] = value;
  return root;
}

function deepText(rnd: Rnd, n: number): string {
  const k = rnd();
  if (k < 0.4) return '['.repeat(n) + ']'.repeat(n);
  if (k < 0.8) return '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  return '['.repeat(n); // unterminated
}

const ESCAPES = [
  '\u001b]0;pwned\u0007',
  '\u001b[2J\u001b[H',
  '\u009b31m',
  '\u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\',
  '\r\u001b[K',
  '\u0007\u0008\u007f',
  '\n',
  '\u0085',
  '\u2028',
];

function escaped(rnd: Rnd, s: string): string {
  const e = pick(rnd, ESCAPES);
  const at = Math.floor(rnd() * (s.length + 1));
  return s.slice(0, at) + e + s.slice(at);
}

/** Every string (and, with keys, every key) of a JSON value gets escapes with probability p. */
function escapeStrings(rnd: Rnd, v: unknown, p: number): unknown {
  // Iterative over a copy: the value is small (sample files), but never trust depth.
  const root = { v: structuredClone(v) };
  const stack: Record<string | number, unknown>[] = [root];
  while (stack.length > 0) {
    const o = stack.pop()!;
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) {
        if (typeof o[i] === 'string' && rnd() < p) o[i] = escaped(rnd, o[i] as string);
        else if (o[i] !== null && typeof o[i] === 'object') stack.push(o[i] as Record<string, unknown>);
      }
      continue;
    }
    for (const k of Object.keys(o)) {
      let val = o[k];
      if (typeof val === 'string' && rnd() < p) val = escaped(rnd, val);
      else if (val !== null && typeof val === 'object') stack.push(val as Record<string, unknown>);
      if (o !== root && rnd() < p / 2) {
        delete o[k];
        o[escaped(rnd, k)] = val;
      } else o[k] = val;
    }
  }
  return root.v;
}

function writeSparse(abs: string, prefix: string, size: number): void {
  rmSync(abs, { recursive: true, force: true });
  const fd = openSync(abs, 'w');
  try {
    if (prefix !== '') writeSync(fd, prefix);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

const MB = 1 << 20;

export const MUTATIONS: Mutation[] = [
  {
    name: 'symlink-out-file',
    weight: 10,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file');
      if (e === undefined) return undefined;
      const t = escapeTo(m, e.rel, outsideFileFor(m, e.rel));
      touch(m, e.rel);
      replaceWith(`${m.root}/${e.rel}`, () => symlinkSync(t, `${m.root}/${e.rel}`));
      return `${e.rel} -> ${t}`;
    },
  },
  {
    name: 'symlink-out-dir',
    weight: 10,
    apply(m) {
      const e = target(m, (x) => x.kind === 'dir' || x.kind === 'symlink');
      if (e === undefined) return undefined;
      const t = escapeTo(m, e.rel, outsideDirFor(m));
      touch(m, e.rel);
      replaceWith(`${m.root}/${e.rel}`, () => symlinkSync(t, `${m.root}/${e.rel}`));
      return `${e.rel} -> ${t}`;
    },
  },
  {
    name: 'symlink-inside',
    weight: 3,
    apply(m) {
      const e = target(m);
      const to = target(m);
      if (e === undefined || to === undefined) return undefined;
      touch(m, e.rel);
      const t =
        m.rnd() < 0.5
          ? posix.relative(posix.dirname(`/${e.rel}`), `/${to.rel}`) || '.'
          : pick(m.rnd, ['.', '..', '../..', './.', `${'../'.repeat(depthOf(e.rel))}${to.rel}`]);
      replaceWith(`${m.root}/${e.rel}`, () => symlinkSync(t, `${m.root}/${e.rel}`));
      return `${e.rel} -> ${t}`;
    },
  },
  {
    name: 'symlink-loop',
    weight: 3,
    apply(m) {
      const e = target(m);
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      const base = posix.basename(e.rel);
      touch(m, e.rel);
      touch(m, posix.join(posix.dirname(e.rel), `.loop-${base}`));
      if (m.rnd() < 0.5) {
        replaceWith(abs, () => symlinkSync(base, abs));
        return `${e.rel} -> itself`;
      }
      const other = `${dirname(abs)}/.loop-${base}`;
      replaceWith(abs, () => symlinkSync(`.loop-${base}`, abs));
      rmSync(other, { force: true, recursive: true });
      symlinkSync(base, other);
      return `${e.rel} <-> .loop-${base}`;
    },
  },
  {
    name: 'special-file',
    weight: 8,
    apply(m) {
      const e = target(m);
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      touch(m, e.rel);
      const k = pick(m.rnd, ['fifo', 'fifo', 'fifo', 'null', 'zero', 'urandom', 'full', 'whiteout', 'block', 'socket'] as const);
      replaceWith(abs, () => {
        if (k === 'fifo') mknod(abs, S_IFIFO | 0o644, 0, 0);
        else if (k === 'null') mknod(abs, S_IFCHR | 0o644, 1, 3);
        else if (k === 'zero') mknod(abs, S_IFCHR | 0o644, 1, 5);
        else if (k === 'full') mknod(abs, S_IFCHR | 0o644, 1, 7);
        else if (k === 'urandom') mknod(abs, S_IFCHR | 0o644, 1, 9);
        else if (k === 'whiteout') mknod(abs, S_IFCHR, 0, 0);
        else if (k === 'block') mknod(abs, S_IFBLK | 0o600, 7, 0);
        else mknod(abs, 0o140000 | 0o755, 0, 0);
      });
      return `${e.rel} is a ${k}`;
    },
  },
  {
    name: 'truncate',
    weight: 6,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file');
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      const size = lstatSync(abs).size;
      touch(m, e.rel);
      const at = m.rnd() < 0.2 ? 0 : Math.floor(m.rnd() * size);
      const fd = openSync(abs, 'r+');
      ftruncateSync(fd, at);
      closeSync(fd);
      return `${e.rel} cut at ${at} of ${size}`;
    },
  },
  {
    name: 'flip-bytes',
    weight: 5,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && x.size > 0);
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      const b = readFileSync(abs);
      if (b.length === 0) return undefined;
      touch(m, e.rel);
      const n = int(m.rnd, 1, 8);
      for (let i = 0; i < n; i++) {
        const at = Math.floor(m.rnd() * b.length);
        b[at] = m.rnd() < 0.5 ? b[at]! ^ (1 << int(m.rnd, 0, 7)) : int(m.rnd, 0, 255);
      }
      writeFileSync(abs, b);
      return `${e.rel}: ${n} bytes changed`;
    },
  },
  {
    name: 'id-rewrite',
    weight: 14,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && ID_FILES.test(x.rel));
      if (e === undefined) return undefined;
      const v = pick(m.rnd, HOSTILE_IDS(m, e.rel));
      const nl = m.rnd() < 0.3 ? '\n' : '';
      touch(m, e.rel);
      writeFileSync(`${m.root}/${e.rel}`, v + nl);
      return `${e.rel} = ${JSON.stringify(v.length > 80 ? `${v.slice(0, 40)}…(${v.length})` : v)}`;
    },
  },
  {
    name: 'json-type',
    weight: 12,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && JSON_FILES.test(x.rel));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      let v: unknown;
      try {
        v = JSON.parse(readFileSync(abs, 'utf8'));
      } catch {
        return undefined;
      }
      const n = int(m.rnd, 1, 3);
      const what: string[] = [];
      for (let i = 0; i < n; i++) {
        const path = randomPath(m.rnd, v);
        let old: unknown = v;
        for (const k of path) old = (old as Record<string | number, unknown>)[k];
        const nv = m.rnd() < 0.15 && path.length > 0 ? undefined : otherType(m.rnd, old);
        v = setAt(v, path, nv);
        what.push(`${path.join('.') || '<root>'}=${JSON.stringify(nv)?.slice(0, 30) ?? 'deleted'}`);
      }
      touch(m, e.rel);
      writeFileSync(abs, JSON.stringify(v) ?? 'null');
      return `${e.rel}: ${what.join(', ')}`;
    },
  },
  {
    name: 'json-deep',
    weight: 6,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && JSON_FILES.test(x.rel));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      const n = pick(m.rnd, [500, 999, 1000, 1001, 5000, 100_000, 100_000]);
      const deep = deepText(m.rnd, n);
      touch(m, e.rel);
      let v: unknown;
      try {
        v = JSON.parse(readFileSync(abs, 'utf8'));
      } catch {
        v = undefined;
      }
      if (v === undefined || m.rnd() < 0.3) {
        writeFileSync(abs, deep);
        return `${e.rel}: whole file nested ${n} deep`;
      }
      const path = randomPath(m.rnd, v);
      const text = JSON.stringify(setAt(v, path, '\u0000DEEP\u0000'));
      writeFileSync(abs, text.replace(JSON.stringify('\u0000DEEP\u0000'), deep));
      return `${e.rel}: ${path.join('.') || '<root>'} nested ${n} deep`;
    },
  },
  {
    name: 'json-huge',
    weight: 3,
    apply(m) {
      const e = target(
        m,
        (x) => x.kind === 'file' && (JSON_FILES.test(x.rel) || BOLT_FILES.test(x.rel) || /tar-split/.test(x.rel) || ID_FILES.test(x.rel) || m.rnd() < 0.1),
      );
      if (e === undefined) return undefined;
      const size = m.rnd() < 0.85 ? 600 * MB + int(m.rnd, 0, 4095) : pick(m.rnd, [127 * MB, 31 * MB, 65 << 10, 8 * MB + 1]);
      const prefix = pick(m.rnd, ['', '{"Repositories":{"a":{"a:1":"', '["', '{"ID":"', 'x']);
      touch(m, e.rel);
      writeSparse(`${m.root}/${e.rel}`, prefix, size);
      return `${e.rel}: sparse ${size} bytes after ${JSON.stringify(prefix)}`;
    },
  },
  {
    // A hostile image config that still verifies: the config is changed (wrong types, escapes,
    // deep nesting), then stored under its new sha256, and every reference to the old ID follows
    // (metadata dir, parent files, repositories.json, containers' Image), as an attacker would.
    name: 'image-rehash',
    weight: 8,
    apply(m) {
      const store = m.driver === 'overlay2' ? 'image/overlay2' : 'image/vfs';
      const content = `${store}/imagedb/content/sha256`;
      const e = target(m, (x) => x.kind === 'file' && x.rel.startsWith(`${content}/`) && /\/[0-9a-f]{64}$/.test(x.rel));
      if (e === undefined || !realDir(m.root, content)) return undefined;
      const oldHex = posix.basename(e.rel);
      let v: unknown;
      try {
        v = JSON.parse(readFileSync(`${m.root}/${e.rel}`, 'utf8'));
      } catch {
        return undefined;
      }
      const how = pick(m.rnd, ['type', 'type', 'type', 'escapes', 'deep', 'history', 'diffids'] as const);
      let what: string;
      let text: string;
      if (how === 'type') {
        const path = randomPath(m.rnd, v);
        let old: unknown = v;
        for (const k of path) old = (old as Record<string | number, unknown>)[k];
        const nv = otherType(m.rnd, old);
        v = setAt(v, path, nv);
        text = JSON.stringify(v);
        what = `${path.join('.') || '<root>'}=${JSON.stringify(nv)?.slice(0, 30)}`;
      } else if (how === 'escapes') {
        text = JSON.stringify(escapeStrings(m.rnd, v, pick(m.rnd, [0.2, 1])));
        what = 'terminal escapes';
      } else if (how === 'deep') {
        const n = pick(m.rnd, [999, 1001, 100_000]);
        const path = randomPath(m.rnd, v);
        text = JSON.stringify(setAt(v, path, '\u0000DEEP\u0000')).replace(JSON.stringify('\u0000DEEP\u0000'), deepText(m.rnd, n));
        what = `${path.join('.') || '<root>'} nested ${n} deep`;
      } else if (how === 'history') {
        const o = v as Record<string, unknown>;
        o['history'] = pick(m.rnd, [
          Array.from({ length: int(m.rnd, 1, 50) }, () => ({
            created_by: escaped(m.rnd, 'x'),
            empty_layer: m.rnd() < 0.5,
            created: pick(m.rnd, ['x', '', '9999-99-99T99:99:99Z', 5, null]),
          })),
          [null, 1, 'x'],
          Array.from({ length: 20_000 }, () => ({ empty_layer: true })),
        ]);
        text = JSON.stringify(o);
        what = 'hostile history';
      } else {
        const o = v as { rootfs?: { diff_ids?: unknown } };
        o.rootfs = {
          ...(o.rootfs ?? {}),
          diff_ids: pick(m.rnd, [
            [`sha256:${'../'.repeat(3)}x`],
            [`sha256:${randomHex(m.rnd)}`],
            Array.from({ length: 200 }, () => `sha256:${randomHex(m.rnd)}`),
            ['sha256:' + 'f'.repeat(64), 'sha256:' + 'f'.repeat(64)],
            [],
          ]),
        };
        text = JSON.stringify(o);
        what = 'hostile rootfs.diff_ids';
      }
      const newHex = createHash('sha256').update(text).digest('hex');
      touch(m, e.rel);
      touch(m, `${content}/${newHex}`);
      rmSync(`${m.root}/${e.rel}`);
      writeFileSync(`${m.root}/${content}/${newHex}`, text);
      // Everything else that names the old ID: text files of the store and the containers' configs.
      const meta = `${store}/imagedb/metadata/sha256`;
      if (realDir(m.root, `${meta}/${oldHex}`)) {
        touch(m, `${meta}/${oldHex}`);
        touch(m, `${meta}/${newHex}`);
        copyTree(`${m.root}/${meta}/${oldHex}`, `${m.root}/${meta}/${newHex}`);
        rmSync(`${m.root}/${meta}/${oldHex}`, { recursive: true });
      }
      for (const x of m.entries) {
        if (!(x.rel.endsWith('/parent') && x.rel.startsWith(meta)) && !x.rel.endsWith('repositories.json') && !x.rel.endsWith('config.v2.json')) continue;
        if (kindNow(`${m.root}/${x.rel}`) !== 'file' || !throughDirs(m.root, x.rel)) continue;
        const old = readFileSync(`${m.root}/${x.rel}`, 'utf8');
        if (!old.includes(oldHex)) continue;
        touch(m, x.rel);
        writeFileSync(`${m.root}/${x.rel}`, old.split(oldHex).join(newHex));
      }
      return `${oldHex.slice(0, 12)} -> ${newHex.slice(0, 12)}: ${what}`;
    },
  },
  {
    // tar-split names the files of a layer: a name that leaves the layer directory (or goes
    // through a symlink out of it) must never be read by layer tar or verify --deep.
    name: 'tarsplit-hostile',
    weight: 6,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && x.rel.endsWith('/tar-split.json.gz'));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      let lines: string[];
      try {
        lines = gunzipSync(readFileSync(abs), { maxOutputLength: 64 << 20 })
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== '');
      } catch {
        return undefined;
      }
      const files = lines.map((l, k) => ({ l, k })).filter((x) => x.l.includes('"type":1'));
      const how = pick(m.rnd, ['name', 'name', 'name', 'through-link', 'size', 'deep-line', 'many', 'bad-payload'] as const);
      let what = how as string;
      if ((how === 'name' || how === 'size' || how === 'through-link') && files.length > 0) {
        const f = pick(m.rnd, files);
        const o = JSON.parse(f.l) as { name: string; size: number };
        if (how === 'name') {
          o.name = pick(m.rnd, [
            `${'../'.repeat(int(m.rnd, 1, 9))}outside/canary.txt`,
            `${m.out.dir}/canary.txt`,
            `${o.name}/${'../'.repeat(int(m.rnd, 2, 9))}outside/canary.txt`,
            '..',
            '',
            '/',
            `./${o.name}`,
            'a\u0000b',
            'x'.repeat(5000),
            '\u001b]0;pwned\u0007',
          ]);
          what = `name ${JSON.stringify(o.name.slice(0, 60))}`;
        } else if (how === 'size') {
          o.size = pick(m.rnd, [0, -1, 57, 2 ** 53, 1e300, 600 << 20]);
          what = `size ${o.size}`;
        } else {
          // A symlink in the layer dir to outside, and the tar-split entry through it.
          const diffDir = m.entries.find(
            (x) => x.kind === 'dir' && /^(overlay2\/[0-9a-f]{64}\/diff|vfs\/dir\/[0-9a-f]{64})$/.test(x.rel) && realDir(m.root, x.rel),
          );
          if (diffDir === undefined) return undefined;
          touch(m, `${diffDir.rel}/lnk`);
          rmSync(`${m.root}/${diffDir.rel}/lnk`, { recursive: true, force: true });
          symlinkSync(escapeTo(m, `${diffDir.rel}/lnk`, ''), `${m.root}/${diffDir.rel}/lnk`);
          o.name = 'lnk/canary.txt';
          what = `name lnk/canary.txt with ${diffDir.rel}/lnk a symlink out`;
        }
        lines[f.k] = JSON.stringify(o);
      } else if (how === 'deep-line') {
        lines.splice(int(m.rnd, 0, lines.length), 0, '['.repeat(100_000) + ']'.repeat(100_000));
      } else if (how === 'many') {
        const extra = Array.from({ length: 5_000 }, (_, k) => JSON.stringify({ type: 1, name: `f${k}`, size: 0, payload: null, position: lines.length + k }));
        lines.push(...extra);
      } else {
        lines.push('{"type":2,"payload":"!!!not base64","position":99}', '{"type":3}', 'null', '"x"');
      }
      touch(m, e.rel);
      writeFileSync(abs, gzipSync(Buffer.from(`${lines.join('\n')}\n`)));
      return `${e.rel}: ${what}`;
    },
  },
  {
    // Parent chains that loop: a layer its own parent, two images each other's parent.
    name: 'id-cycle',
    weight: 4,
    apply(m) {
      const store = m.driver === 'overlay2' ? 'image/overlay2' : 'image/vfs';
      if (m.rnd() < 0.5) {
        const layers = m.entries.filter((x) => new RegExp(`^${store}/layerdb/sha256/[0-9a-f]{64}$`).test(x.rel) && realDir(m.root, x.rel));
        if (layers.length === 0) return undefined;
        const l = pick(m.rnd, layers);
        touch(m, `${l.rel}/parent`);
        rmSync(`${m.root}/${l.rel}/parent`, { force: true, recursive: true });
        writeFileSync(`${m.root}/${l.rel}/parent`, `sha256:${posix.basename(l.rel)}`);
        return `${l.rel}/parent is the layer itself`;
      }
      const imgs = m.entries.filter((x) => new RegExp(`^${store}/imagedb/metadata/sha256/[0-9a-f]{64}$`).test(x.rel) && realDir(m.root, x.rel));
      if (imgs.length === 0) return undefined;
      const a = pick(m.rnd, imgs);
      const b = pick(m.rnd, imgs);
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        touch(m, `${x.rel}/parent`);
        rmSync(`${m.root}/${x.rel}/parent`, { force: true, recursive: true });
        writeFileSync(`${m.root}/${x.rel}/parent`, `sha256:${posix.basename(y.rel)}`);
      }
      return `image parents ${posix.basename(a.rel).slice(0, 12)} <-> ${posix.basename(b.rel).slice(0, 12)}`;
    },
  },
  {
    // Names inside BoltDB values and keys, rewritten in place at the same length (the file stays
    // a valid B+tree): a volume name of `../../../` becomes a path only if it is trusted.
    name: 'bolt-names',
    weight: 5,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && /(volumes\/metadata\.db|local-kv\.db)$/.test(x.rel));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      const b = readFileSync(abs);
      const names = ['samplevol', 'samplenet', 'bridge', 'host', 'none'].filter((n) => b.includes(n));
      if (names.length === 0) return undefined;
      const name = pick(m.rnd, names);
      const fit = (x: string): string => (x.length >= name.length ? x.slice(0, name.length) : x + '.'.repeat(name.length - x.length));
      const repl = fit(
        pick(m.rnd, ['../../../', '../../..', '/tmp/x/y', '\u001b]0;x\u0007', '\u009b2J', '..', '.', '/', 'a/b', '\n\r\t', '"},{"x":', '\\u0000']),
      );
      const from = Buffer.from(name);
      const to = Buffer.from(repl);
      if (to.length !== from.length) return undefined;
      touch(m, e.rel);
      for (let at = b.indexOf(from); at >= 0; at = b.indexOf(from, at + 1)) if (m.rnd() < 0.8) to.copy(b, at);
      writeFileSync(abs, b);
      return `${e.rel}: ${name} -> ${JSON.stringify(repl)}`;
    },
  },
  {
    // What gc removes (staging leftovers), made symlinks out of the root and directories holding them.
    name: 'plant-staging',
    weight: 4,
    apply(m) {
      const store = m.driver === 'overlay2' ? 'image/overlay2' : 'image/vfs';
      const places = [
        `${store}/layerdb/tmp`,
        `${store}/imagedb/content/sha256`,
        `${store}/layerdb/sha256`,
        `${store}/imagedb/metadata/sha256`,
        store,
        m.driver === 'overlay2' ? 'overlay2' : 'vfs/dir',
      ];
      const dir = pick(m.rnd, places);
      if (!realDir(m.root, dir)) return undefined;
      const name = pick(m.rnd, ['.dataroot-staging-1', '.tmp-x', 'write-set-123', `${randomHex(m.rnd)}-removing`, randomHex(m.rnd), '.dataroot-inject-x']);
      const rel = `${dir}/${name}`;
      touch(m, rel);
      rmSync(`${m.root}/${rel}`, { recursive: true, force: true });
      const t = escapeTo(m, rel, pick(m.rnd, ['sentinel', 'sentinel/victim', 'sentinel/x']));
      if (m.rnd() < 0.5) symlinkSync(t, `${m.root}/${rel}`);
      else {
        mkdirSync(`${m.root}/${rel}`);
        symlinkSync(escapeTo(m, `${rel}/x`, 'sentinel/victim'), `${m.root}/${rel}/victim`);
        writeFileSync(`${m.root}/${rel}/data`, 'x');
      }
      return `${rel} planted (-> ${t})`;
    },
  },
  {
    // References dockerd would never write: odd names, digests, IDs that are paths, many tags.
    name: 'repo-refs',
    weight: 4,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && x.rel.endsWith('/repositories.json'));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      let doc: { Repositories?: Record<string, Record<string, string>> };
      try {
        doc = JSON.parse(readFileSync(abs, 'utf8')) as typeof doc;
      } catch {
        return undefined;
      }
      const ids = Object.values(doc.Repositories ?? {}).flatMap((r) => (r !== null && typeof r === 'object' ? Object.values(r) : []));
      const id = ids.length > 0 ? pick(m.rnd, ids) : `sha256:${randomHex(m.rnd)}`;
      const how = pick(m.rnd, ['keys', 'ids', 'many', 'long'] as const);
      const repos: Record<string, Record<string, unknown>> = { ...(doc.Repositories ?? {}) };
      if (how === 'keys') {
        for (const k of [
          'localhost/../x:1',
          'x:y:z',
          'UPPER/case:1',
          'a//b:1',
          ':',
          '@',
          'x@sha256:zz',
          `x@sha256:${randomHex(m.rnd)}`,
          'docker.io/library/x:1',
          '-x:1',
          'x:-1',
          '\u001b]0;x\u0007:1',
          'ü:1',
          'x:' + 'a'.repeat(200),
        ].filter(() => m.rnd() < 0.4)) {
          const name = k.replace(/[:@].*$/, '') || k;
          repos[name] = { ...(repos[name] ?? {}), [k]: id };
        }
      } else if (how === 'ids') {
        repos['localhost/x'] = {
          'localhost/x:1': pick(m.rnd, [
            'sha256:../../../outside/canarydir',
            `sha256:${'../'.repeat(3)}x`,
            '../../x',
            'sha256:',
            `sha512:${randomHex(m.rnd, 128)}`,
            `sha256:${randomHex(m.rnd).toUpperCase()}`,
            id.slice(0, 20),
          ]),
        };
      } else if (how === 'many') {
        const inner: Record<string, string> = {};
        for (let k = 0; k < 20_000; k++) inner[`localhost/many:t${k}`] = id;
        repos['localhost/many'] = inner;
      } else {
        const name = `localhost/${'n'.repeat(int(m.rnd, 200, 100_000))}`;
        repos[name] = { [`${name}:1`]: id };
      }
      touch(m, e.rel);
      writeFileSync(abs, JSON.stringify({ ...doc, Repositories: repos }));
      return `${e.rel}: ${how}`;
    },
  },
  {
    name: 'json-escapes',
    weight: 8,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' && JSON_FILES.test(x.rel));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      let v: unknown;
      try {
        v = JSON.parse(readFileSync(abs, 'utf8'));
      } catch {
        return undefined;
      }
      touch(m, e.rel);
      writeFileSync(abs, JSON.stringify(escapeStrings(m.rnd, v, pick(m.rnd, [0.05, 0.3, 1]))));
      return `${e.rel}: terminal escapes in strings and keys`;
    },
  },
  {
    name: 'bolt-hostile',
    weight: 6,
    apply(m) {
      const e = target(m, (x) => BOLT_FILES.test(x.rel));
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      const k = pick(m.rnd, ['dir', 'fifo', 'empty', 'garbage', 'truncated', 'mutated', 'mutated', 'mutated'] as const);
      let base: Buffer | undefined;
      try {
        base = lstatSync(abs).isFile() ? readFileSync(abs) : undefined;
      } catch {
        base = undefined;
      }
      if ((k === 'truncated' || k === 'mutated') && (base === undefined || base.length < 8192)) return undefined;
      touch(m, e.rel);
      rmSync(abs, { recursive: true, force: true });
      if (k === 'dir') mkdirSync(abs);
      else if (k === 'fifo') mknod(abs, S_IFIFO | 0o600, 0, 0);
      else if (k === 'empty') writeFileSync(abs, '');
      else if (k === 'garbage') writeFileSync(abs, Buffer.from(Array.from({ length: int(m.rnd, 1, 3) * 4096 }, () => int(m.rnd, 0, 255))));
      else if (k === 'truncated') writeFileSync(abs, base!.subarray(0, Math.floor(m.rnd() * base!.length)));
      else writeFileSync(abs, mutateBolt(new Uint8Array(base!), m.rnd));
      return `${e.rel}: ${k}`;
    },
  },
  {
    name: 'whiteout-names',
    weight: 4,
    apply(m) {
      const e = target(m, (x) => x.kind === 'dir' && (/(^|\/)diff(\/|$)/.test(x.rel) || /^vfs\/dir\//.test(x.rel) || /_data/.test(x.rel)));
      if (e === undefined) return undefined;
      const dir = `${m.root}/${e.rel}`;
      const names: string[] = [];
      for (let i = int(m.rnd, 1, 3); i > 0; i--) {
        const name = pick(m.rnd, ['.wh..', '.wh...', '.wh.', '.wh..wh..opq', '.wh..wh..plnk', '.wh.hello', '..weird', '.wh.....', '.wh..wh.']);
        const abs = `${dir}/${name}`;
        touch(m, `${e.rel}/${name}`);
        try {
          rmSync(abs, { recursive: true, force: true });
          const how = m.rnd();
          if (how < 0.4) writeFileSync(abs, '');
          else if (how < 0.7) mknod(abs, S_IFCHR, 0, 0);
          else if (how < 0.85) mkdirSync(abs);
          else symlinkSync(escapeTo(m, `${e.rel}/${name}`, 'canarydir'), abs);
          names.push(name);
        } catch {
          /* the name cannot be made here */
        }
      }
      if (m.rnd() < 0.3) {
        try {
          touch(m, e.rel);
          setXattr(dir, 'trusted.overlay.opaque', Buffer.from('y'));
          names.push('opaque xattr');
        } catch {
          /* not supported */
        }
      }
      return `${e.rel}: ${names.join(', ')}`;
    },
  },
  {
    name: 'delete',
    weight: 4,
    apply(m) {
      const e = target(m);
      if (e === undefined) return undefined;
      touch(m, e.rel);
      rmSync(`${m.root}/${e.rel}`, { recursive: true, force: true });
      return `${e.rel} removed`;
    },
  },
  {
    name: 'swap-kind',
    weight: 4,
    apply(m) {
      const e = target(m, (x) => x.kind === 'file' || x.kind === 'dir');
      if (e === undefined) return undefined;
      const abs = `${m.root}/${e.rel}`;
      touch(m, e.rel);
      if (lstatSync(abs).isDirectory()) {
        replaceWith(abs, () => writeFileSync(abs, pick(m.rnd, ['', 'x', '{}', randomHex(m.rnd)])));
        return `${e.rel}: directory became a file`;
      }
      replaceWith(abs, () => {
        mkdirSync(abs);
        writeFileSync(`${abs}/inner`, 'x');
      });
      return `${e.rel}: file became a directory`;
    },
  },
  {
    name: 'weird-names',
    weight: 4,
    apply(m) {
      const e = target(m, (x) => x.kind === 'dir');
      if (e === undefined) return undefined;
      const dir = `${m.root}/${e.rel}`;
      const made: string[] = [];
      for (let i = int(m.rnd, 1, 3); i > 0; i--) {
        const raw = pick(m.rnd, [
          Buffer.from('..weird'),
          Buffer.from('-rf'),
          Buffer.from('new\nline'),
          Buffer.from('\u001b]0;pwned\u0007'),
          Buffer.from('\u001b[31mred'),
          Buffer.from([0xc2, 0x9b, 0x33, 0x31, 0x6d]), // U+009B CSI, UTF-8
          Buffer.from([0x9b, 0x32, 0x4a]), // raw 0x9b, not UTF-8
          Buffer.from([0xff, 0xfe, 0x41]),
          Buffer.from('x'.repeat(255)),
          Buffer.from(randomHex(m.rnd)),
          Buffer.from(`${randomHex(m.rnd)}-init`),
          Buffer.from('AAAAAAAAAAAAAAAAAAAAAAAAAA'),
          Buffer.from(' '),
          Buffer.from('\u202eevil'),
        ]);
        const abs = Buffer.concat([Buffer.from(`${dir}/`), raw]);
        touch(m, Buffer.concat([Buffer.from(`${e.rel}/`), raw]));
        try {
          const how = m.rnd();
          if (how < 0.5) writeFileSync(abs, pick(m.rnd, ['', '{}', 'x\u001b[2J']));
          else if (how < 0.8) mkdirSync(abs);
          else symlinkSync(escapeTo(m, `${e.rel}/x`, outsideDirFor(m)), abs);
          made.push(JSON.stringify(raw.toString('latin1')));
        } catch {
          /* exists already */
        }
      }
      return `${e.rel}: ${made.join(', ')}`;
    },
  },
  {
    name: 'overlay-link-out',
    weight: 5,
    apply(m) {
      if (m.driver !== 'overlay2') return undefined;
      const layers = m.entries.filter((x) => /^overlay2\/[0-9a-f]{64}(-init)?$/.test(x.rel) && realDir(m.root, x.rel));
      if (layers.length === 0 || !realDir(m.root, 'overlay2/l')) return undefined;
      const l = pick(m.rnd, layers);
      const id = Array.from({ length: 26 }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[int(m.rnd, 0, 31)]).join('');
      const t = escapeTo(
        m,
        `overlay2/l/${id}`,
        pick(m.rnd, ['canarydir', 'canarydir/diff', `${m.out.entries.find((e) => /^[0-9a-f]{64}$/.test(e))}/diff`, 'sentinel/victim']),
      );
      touch(m, `overlay2/l/${id}`);
      try {
        symlinkSync(t, `${m.root}/overlay2/l/${id}`);
      } catch {
        return undefined;
      }
      const k = m.rnd();
      const file = `${m.root}/${l.rel}/${k < 0.5 ? 'link' : 'lower'}`;
      touch(m, `${l.rel}/${k < 0.5 ? 'link' : 'lower'}`);
      const old = kindNow(file) === 'file' ? readFileSync(file, 'utf8') : '';
      rmSync(file, { recursive: true, force: true });
      writeFileSync(file, k < 0.5 ? id : m.rnd() < 0.5 || old === '' ? `l/${id}` : `l/${id}:${old}`);
      return `overlay2/l/${id} -> ${t}, named by ${l.rel}/${k < 0.5 ? 'link' : 'lower'}`;
    },
  },
  {
    name: 'plant-json',
    weight: 3,
    apply(m) {
      const vols = m.entries.filter((x) => /^volumes\/[^/]+$/.test(x.rel) && realDir(m.root, x.rel));
      const k = m.rnd();
      if (k < 0.5 && vols.length > 0) {
        const v = pick(m.rnd, vols);
        const opts = pick(m.rnd, [
          { MountType: 'none', MountOpts: 'bind', MountDevice: `${m.out.dir}/canarydir` },
          { MountType: ['x'], MountOpts: 1, MountDevice: null },
          { MountDevice: '../../../outside/canarydir', Quota: { Size: 'big' } },
          'str',
          null,
        ]);
        touch(m, `${v.rel}/opts.json`);
        rmSync(`${m.root}/${v.rel}/opts.json`, { recursive: true, force: true });
        writeFileSync(`${m.root}/${v.rel}/opts.json`, JSON.stringify(opts));
        return `${v.rel}/opts.json = ${JSON.stringify(opts).slice(0, 60)}`;
      }
      // A new container directory whose config names outside paths.
      const id = randomHex(m.rnd);
      if (!realDir(m.root, 'containers')) return undefined;
      touch(m, `containers/${id}`);
      mkdirSync(`${m.root}/containers/${id}`, { recursive: true });
      const cfg = {
        ID: pick(m.rnd, [id, '../../outside/canarydir', randomHex(m.rnd), 5]),
        Name: pick(m.rnd, ['/planted', '/\u001b]0;x\u0007', 7, null]),
        Image: pick(m.rnd, [`sha256:${randomHex(m.rnd)}`, '../../outside', {}]),
        Driver: pick(m.rnd, [m.driver, '../../outside', 'aufs', 3]),
        State: pick(m.rnd, [{ Running: true, Pid: 1 }, 'running', null]),
        MountPoints: pick(m.rnd, [{ '/x': { Source: `${m.out.dir}/canarydir`, Destination: '/x', Type: 'bind', Name: '../../outside' } }, [], 'x']),
        Config: pick(m.rnd, [{ Labels: { a: 1 }, Env: 'x' }, null, []]),
        Created: pick(m.rnd, ['not a date', 1e20, '0001-01-01T00:00:00Z', '+275760-09-13T00:00:00.001Z']),
      };
      writeFileSync(`${m.root}/containers/${id}/config.v2.json`, JSON.stringify(cfg));
      if (m.rnd() < 0.5)
        writeFileSync(
          `${m.root}/containers/${id}/hostconfig.json`,
          JSON.stringify(pick(m.rnd, [{ Binds: [`${m.out.dir}/canarydir:/x`] }, [], 'x', { PortBindings: 'x', Binds: 'y' }])),
        );
      const store = m.driver === 'overlay2' ? 'image/overlay2' : 'image/vfs';
      if (m.rnd() < 0.5 && realDir(m.root, `${store}/layerdb/mounts`)) {
        touch(m, `${store}/layerdb/mounts/${id}`);
        mkdirSync(`${m.root}/${store}/layerdb/mounts/${id}`);
        writeFileSync(`${m.root}/${store}/layerdb/mounts/${id}/mount-id`, pick(m.rnd, HOSTILE_IDS(m, `${store}/layerdb/mounts/${id}/mount-id`)));
      }
      return `containers/${id}: planted config ${JSON.stringify(cfg).slice(0, 100)}`;
    },
  },
  {
    name: 'deep-dirs',
    weight: 1,
    apply(m) {
      const e = target(m, (x) => x.kind === 'dir' && (/(^|\/)diff$/.test(x.rel) || /^vfs\/dir\/[^/]+$/.test(x.rel) || /_data$/.test(x.rel)));
      if (e === undefined) return undefined;
      const depth = int(m.rnd, 200, 1500);
      touch(m, `${e.rel}/d`);
      m.deep = true;
      const r = spawnSync('mkdir', ['-p', '--', `${m.root}/${e.rel}/${Array(depth).fill('d').join('/')}`]);
      if (r.status !== 0) throw new Error(`mkdir -p: ${String(r.stderr)}`);
      return `${e.rel}: ${depth} nested directories`;
    },
  },
  {
    name: 'times',
    weight: 2,
    apply(m) {
      const e = target(m);
      if (e === undefined) return undefined;
      touch(m, e.rel);
      const ns = pick(m.rnd, [0n, -1n, -(2n ** 31n) * 1_000_000_000n, (2n ** 34n - 1n) * 1_000_000_000n, 1n]);
      try {
        lutimesNs(`${m.root}/${e.rel}`, ns, ns);
      } catch {
        return undefined;
      }
      return `${e.rel}: times ${ns} ns`;
    },
  },
];

/** Files and directories `verify` reads as evidence (relative to the root). */
const EVIDENCE = new RegExp(
  [
    '^image$',
    '^image/(overlay2|vfs)$',
    '^image/(overlay2|vfs)/repositories\\.json$',
    '^image/(overlay2|vfs)/(imagedb|layerdb)$',
    '^image/(overlay2|vfs)/imagedb/content(/sha256)?$',
    '^image/(overlay2|vfs)/imagedb/content/sha256/[0-9a-f]{64}$',
    '^image/(overlay2|vfs)/layerdb/(sha256|mounts)$',
    '^image/(overlay2|vfs)/layerdb/sha256/[0-9a-f]{64}(/(diff|size|cache-id|parent|tar-split\\.json\\.gz))?$',
    '^image/(overlay2|vfs)/layerdb/mounts/[0-9a-f]{64}(/(mount-id|init-id|parent))?$',
    '^containers$',
    '^containers/[0-9a-f]{64}(/(config\\.v2\\.json|hostconfig\\.json))?$',
    '^volumes/metadata\\.db$',
    '^network/files/local-kv\\.db$',
    '^(overlay2|vfs|vfs/dir)$',
    '^overlay2/[0-9a-f]{64}(-init)?(/(link|lower|diff))?$',
    '^overlay2/l(/[A-Z2-7]{26})?$',
    '^vfs/dir/[0-9a-f]{64}(-init)?$',
  ].join('|'),
);
/** ID files whose every hostile value is invalid or names nothing (a finding either way). */
const ID_EVIDENCE =
  /^(image\/(overlay2|vfs)\/layerdb\/(sha256|mounts)\/[0-9a-f]{64}\/(cache-id|mount-id|init-id|diff)|overlay2\/[0-9a-f]{64}(-init)?\/(link|lower))$/;

/**
 * The paths whose mutation `verify` must report (a symlink, a FIFO, a device or a socket where
 * evidence belongs, a 600 MB file, an invalid ID), as they are now: a later mutation of the case
 * may have removed them again.
 */
export function expectedFindings(root: string, mutations: string[], containerLayers: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const m of mutations) {
    const name = m.slice(0, m.indexOf(':'));
    const rest = m.slice(name.length + 2);
    const rel = rest.split(/ (->|is a|=|: sparse) /)[0]!;
    if (!throughDirs(root, rel)) continue;
    const kind = kindNow(`${root}/${rel}`);
    if ((name === 'symlink-out-file' || name === 'symlink-out-dir') && EVIDENCE.test(rel) && kind === 'symlink') out.push(m);
    else if (name === 'special-file' && EVIDENCE.test(rel) && kind === 'other') out.push(m);
    else if (name === 'json-huge' && EVIDENCE.test(rel) && kind === 'file' && lstatSync(`${root}/${rel}`).size >= 600 * MB) out.push(m);
    // A container's own lower is checked by verify against its view (an empty one is a finding
    // only when the layers below need one): other rewrites of ID files are findings.
    else if (
      name === 'id-rewrite' &&
      ID_EVIDENCE.test(rel) &&
      kind === 'file' &&
      !(rel.endsWith('/lower') && containerLayers.has(rel.split('/')[1]!) && !rel.split('/')[1]!.endsWith('-init'))
    )
      out.push(m);
  }
  return out;
}

/** Applies 1–3 mutations; each description is prefixed with its mutation's name. */
export function applyMutations(m: MutationCtx): string[] {
  const total = MUTATIONS.reduce((s, x) => s + x.weight, 0);
  const done: string[] = [];
  const n = int(m.rnd, 1, 3);
  for (let k = 0; k < n; k++) {
    let r = m.rnd() * total;
    const mut = MUTATIONS.find((x) => (r -= x.weight) < 0) ?? MUTATIONS[0]!;
    let d: string | undefined;
    try {
      d = mut.apply(m);
    } catch (e) {
      d = `(not applied: ${(e as Error).message.slice(0, 80)})`;
    }
    done.push(`${mut.name}: ${d ?? '(nothing to mutate)'}`);
  }
  return done;
}

// ---------------------------------------------------------------------------------------------
// Commands

/** What the commands of a case can name, found on the unmutated base. */
export interface Targets {
  images: string[];
  containers: string[];
  layers: string[];
  volumes: string[];
  networks: string[];
  bolts: string[];
}

export interface Cmd {
  args: string[];
  family: string;
  /** The command may write the root (gc without --dry-run): the root is not compared. */
  writes?: boolean;
  /** Where `layer tar -o` writes (checked for canary content too). */
  output?: string;
  /** stdout is bytes by design (cat --raw, layer tar to stdout): no JSON or terminal checks on it. */
  binary?: boolean;
  json: boolean;
}

export function planCommands(rnd: Rnd, t: Targets, entries: string[], outFile: string, n: number): Cmd[] {
  const one = <T>(xs: T[]): T => pick(rnd, xs);
  const gens: [number, string, () => string[]][] = [
    [2, 'info', () => ['info']],
    [2, 'files', () => (rnd() < 0.5 ? ['files'] : ['files', '--type', one(['json', 'bolt', 'gz', 'all']), ...(rnd() < 0.3 ? ['--sort'] : [])])],
    [
      3,
      'images',
      () => [
        'images',
        ...(rnd() < 0.7 ? ['-a'] : []),
        ...(rnd() < 0.3 ? ['--digests'] : []),
        ...(rnd() < 0.2 ? ['--filter', one(['dangling=true', 'dangling=false', 'reference=*/*', `before=${one(t.images)}`])] : []),
      ],
    ],
    [3, 'image inspect', () => ['image', 'inspect', ...Array.from({ length: int(rnd, 1, 2) }, () => one(t.images))]],
    [2, 'history', () => ['history', one(t.images)]],
    [2, 'layers', () => ['layers']],
    [2, 'containers', () => [one(['containers', 'ps'])]],
    [2, 'container inspect', () => ['container', 'inspect', one(t.containers)]],
    [3, 'container diff', () => ['container', 'diff', one(t.containers)]],
    [2, 'volumes', () => ['volumes']],
    [2, 'volume inspect', () => ['volume', 'inspect', one(t.volumes)]],
    [2, 'networks', () => ['networks']],
    [2, 'network inspect', () => ['network', 'inspect', one(t.networks)]],
    [
      3,
      'cat',
      () => [
        'cat',
        ...(rnd() < 0.3 ? ['--raw'] : []),
        ...(rnd() < 0.2 ? ['-l'] : []),
        rnd() < 0.9 ? one(entries) : one(['../outside/canary.txt', '/../outside/canary.txt', '.', 'image/../../outside/canary.txt', '..weird']),
      ],
    ],
    [
      3,
      'bolt',
      () => ['bolt', one(['dump', 'dump', 'check', 'stats', 'info', 'buckets', 'pages']), one(t.bolts), ...(rnd() < 0.2 ? ['--format', 'ndjson'] : [])],
    ],
    [4, 'verify', () => ['verify', ...(rnd() < 0.2 ? ['--image', one(t.images)] : [])]],
    [3, 'verify --deep', () => ['verify', '--deep']],
    [2, 'layer tar', () => ['layer', 'tar', one(t.layers), ...(rnd() < 0.7 ? ['-o', outFile] : [])]],
    [4, 'gc --dry-run', () => ['gc', '--dry-run']],
    [1, 'gc', () => ['gc']],
  ];
  const total = gens.reduce((s, g) => s + g[0], 0);
  const out: Cmd[] = [];
  for (let i = 0; i < n; i++) {
    let r = rnd() * total;
    const g = gens.find((x) => (r -= x[0]) < 0) ?? gens[0]!;
    let args = g[2]();
    // bolt dump --format ndjson is a stream of documents, not one: no --json with it.
    const json = rnd() < 0.5 && !args.includes('ndjson');
    if (g[1] === 'bolt' && args[1] !== 'dump') args = args.filter((a, k) => a !== '--format' && args[k - 1] !== '--format');
    const family = g[1];
    const binary = args.includes('--raw') || (family === 'layer tar' && !args.includes('-o'));
    out.push({
      args: json ? [...args, '--json'] : args,
      family,
      json,
      binary,
      ...(family === 'gc' ? { writes: true } : {}),
      ...(args.includes('-o') ? { output: outFile } : {}),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks of one command's outcome

export interface Outcome {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  ms: number;
  signal?: string | null;
}

const CODED = /^dataroot: ([A-Z][A-Z0-9_]*): /;
// A raw control character a terminal would act on: C0 (except \n and \t), DEL is harmless, C1.
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u0080-\u009f]/;

/** Every way the outcome breaks the fuzzer's rules (empty when it keeps them). `root`: the directory root, when not an archive. */
export function checkOutcome(c: Cmd, r: Outcome, o: Outside, extraOutput?: Buffer, root?: string): string[] {
  const bad: string[] = [];
  // What gc removes (or would remove) lies inside the root, by a path without `..`.
  if ((c.family === 'gc' || c.family === 'gc --dry-run') && c.json && root !== undefined && r.code !== 2) {
    try {
      const doc = JSON.parse(r.stdout.toString('utf8')) as { items?: { remove?: string[] }[]; removed?: string[] };
      for (const p of [...(doc.items ?? []).flatMap((i) => i.remove ?? []), ...(doc.removed ?? [])]) {
        if (!p.startsWith(`${root}/`) || p.split('/').some((x) => x === '..' || x === '.')) bad.push(`gc names a path outside the root: ${JSON.stringify(p)}`);
      }
    } catch {
      /* not JSON: reported below */
    }
  }
  const stdout = r.stdout.toString('utf8');
  const stdoutLatin = r.stdout.toString('latin1');
  if (r.code !== 0 && r.code !== 1 && r.code !== 2) bad.push(`exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}`);
  for (const [name, text] of [
    ['stdout', stdout],
    ['stdout', stdoutLatin],
    ['stderr', r.stderr],
    ['output file', extraOutput?.toString('latin1') ?? ''],
  ] as const) {
    const leak = findLeak(o, text);
    if (leak !== undefined && !bad.some((b) => b.startsWith(`canary in ${name}`))) bad.push(`canary in ${name}: ${leak}`);
  }
  if (/\bINTERNAL\b/.test(r.stderr)) bad.push(`INTERNAL error: ${firstLines(r.stderr)}`);
  if (/^\s+at .+[:(].*\d+:\d+\)?$/m.test(r.stderr) || /^(Range|Type|Reference|Syntax)?Error: /m.test(r.stderr))
    bad.push(`stack trace on stderr: ${firstLines(r.stderr)}`);
  // Terminal safety: no raw control characters from evidence (cat --raw writes bytes by design).
  const raw = c.binary === true;
  if (RAW_CONTROL.test(r.stderr))
    bad.push(`raw control character on stderr: ${JSON.stringify(r.stderr.match(new RegExp(`.{0,40}${RAW_CONTROL.source}.{0,20}`))?.[0])}`);
  if (!raw && RAW_CONTROL.test(stdout))
    bad.push(`raw control character on stdout: ${JSON.stringify(stdout.match(new RegExp(`.{0,40}${RAW_CONTROL.source}.{0,20}`))?.[0])}`);
  // stderr: coded lines only (problems, notes, warnings), one JSON error object per line with --json.
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  for (const l of lines) {
    if (l.startsWith('dataroot: ')) continue;
    if (c.json && l.startsWith('{')) {
      try {
        const e = JSON.parse(l) as { error?: { code?: unknown } };
        if (typeof e.error?.code === 'string') continue;
      } catch {
        /* reported below */
      }
    }
    bad.push(`stderr line is not a coded message: ${JSON.stringify(l.slice(0, 200))}`);
    break;
  }
  if (r.code === 2) {
    const last = lines[lines.length - 1] ?? '';
    let code: string | undefined;
    if (c.json) {
      try {
        const e = JSON.parse(last) as { error?: { code?: unknown } };
        code = typeof e.error?.code === 'string' ? e.error.code : undefined;
      } catch {
        code = undefined;
      }
      if (code === undefined) bad.push(`exit 2 without a final {"error":{"code":…}} line: ${firstLines(r.stderr)}`);
      else if (lines.filter((l) => l.startsWith('{"error"')).length !== 1) bad.push(`exit 2 with several JSON error lines: ${firstLines(r.stderr)}`);
    } else {
      code = CODED.exec(last)?.[1];
      if (code === undefined || /^(warning|note)$/.test(code)) bad.push(`exit 2 without a final coded line: ${firstLines(r.stderr)}`);
    }
    if (stdout !== '' && c.json && !raw) {
      try {
        JSON.parse(stdout);
      } catch {
        bad.push(`exit 2 with a partial JSON document on stdout: ${JSON.stringify(stdout.slice(0, 120))}`);
      }
    }
  } else if (
    (r.code === 0 || r.code === 1) &&
    c.json &&
    !c.output &&
    !raw &&
    !(r.code === 1 && stdout === '' && lines.some((l) => /"code":"[A-Z_]+_(NOT_FOUND|AMBIGUOUS)"/.test(l)))
  ) {
    try {
      JSON.parse(stdout);
    } catch (e) {
      bad.push(`--json output is not one JSON document (${(e as Error).message.slice(0, 80)}): ${JSON.stringify(stdout.slice(0, 120))}…`);
    }
  }
  return bad;
}

function firstLines(s: string): string {
  return JSON.stringify(s.split('\n').slice(-4).join('\n').slice(0, 400));
}

/** Packs a root into a tar with the system's GNU tar (for the archive-root cases). */
export function tarRoot(root: string, file: string): boolean {
  const r = spawnSync('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-cf', file, '-C', root, '.'], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

/**
 * Hostile members put in front of an archive root's own: names that leave the unpack dir, a
 * symlink out followed by a file written through it, hard links to outside files, setuid files,
 * devices and FIFOs where the root later has a file, an endless device. Returns what was added.
 */
export function prependHostile(file: string, rnd: Rnd, o: Outside): string[] {
  const specs: Spec[] = [];
  const sentinel = `${o.dir}/sentinel`;
  const choices: (() => Spec[])[] = [
    () => [{ name: `${'../'.repeat(int(rnd, 1, 2))}escape`, data: 'x' }],
    () => [{ name: `${sentinel}/abs-write`, data: 'x' }],
    () => [
      { name: 'lnk', type: 'symlink', linkname: sentinel },
      { name: 'lnk/through', data: 'x' },
    ],
    () => [
      { name: 'lnk2', type: 'symlink', linkname: '../../outside/sentinel' },
      { name: 'lnk2/victim/data', data: 'overwritten' },
    ],
    () => [{ name: 'hl', type: 'link', linkname: `${o.dir}/canary.txt` }],
    () => [{ name: 'hl2', type: 'link', linkname: '../../outside/canary.txt' }],
    () => [
      { name: 'suid', data: '#!/bin/sh\n', mode: 0o4755 },
      { name: 'sgid', data: 'x', mode: 0o2755 },
    ],
    () => [{ name: 'image/overlay2/repositories.json', type: 'fifo' }],
    () => [{ name: 'volumes/metadata.db', type: 'char' }],
    () => [{ name: 'network/files/local-kv.db', type: 'symlink', linkname: `${o.dir}/canary.db` }],
    () => [{ name: 'image', type: 'symlink', linkname: `${o.dir}/canarydir` }],
    () => [{ name: 'containers', type: 'symlink', linkname: '../../outside/sentinel' }],
    () => [{ name: './', type: 'dir', mode: 0o777 }],
    () => [{ name: 'x'.repeat(300), data: 'long' }],
    () => [{ name: 'a\u001b]0;x\u0007', data: 'x' }],
  ];
  const n = int(rnd, 1, 3);
  const what: string[] = [];
  for (let k = 0; k < n; k++) {
    const c = pick(rnd, choices)();
    specs.push(...c);
    what.push(
      c
        .map(
          (x) =>
            `${x.type ?? 'file'} ${JSON.stringify(x.name.slice(0, 60))}${x.linkname !== undefined ? ` -> ${x.linkname}` : ''}${x.mode !== undefined ? ` mode ${x.mode.toString(8)}` : ''}`,
        )
        .join(' + '),
    );
  }
  let head: Buffer;
  try {
    head = layerTar(specs);
  } catch (e) {
    return [`(hostile members not written: ${(e as Error).message})`];
  }
  // Without its end-of-archive blocks, the hostile tar is followed by the root's members.
  let end = head.length;
  while (end >= 512 && head.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
  writeFileSync(file, Buffer.concat([head.subarray(0, end), readFileSync(file)]));
  return what;
}

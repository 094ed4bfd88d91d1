import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { volatileTemplate } from '../src/formats/snapstore/manifest.js';
import { mknod, nativeAvailable, S_IFCHR, scanTree as scanTreeNative, setXattr } from '../src/io/native.js';
import { Previous, scanTree } from '../src/ops/snapshot.js';
import { manifestOf, type ManifestLines } from '../src/store/snapshots/manifest.js';

/**
 * The native tree scan (one call for the whole tree, matched in C against the previous manifest)
 * must describe a tree exactly as the walk in JavaScript does (taken here by an --exclude that
 * matches nothing): the same entries in the same order, the same identity lines, and the same
 * volatile lines but for access times. Names are chosen to catch ordering and decoding slips:
 * a name that is a prefix of another, a directory beside a file whose name sorts between it and
 * its children, JSON escapes, multi-byte and astral UTF-8, and names that are not UTF-8.
 */

const NEVER = ['no-such-name-\u0001'];

function lines(entries: Awaited<ReturnType<typeof scanTree>>['entries']): ManifestLines {
  return manifestOf({ name: 't', created: '2026-01-01T00:00:00.000Z', source: '/', options: { exclude: [], metadataOnly: [], live: false } }, entries);
}

/** Identity lines, and volatile lines without their access time. */
function sections(m: ManifestLines): { identity: string; volatile: string } {
  const [text, vol] = m.parts();
  const volatile = vol
    .toString('latin1')
    .split('\n')
    .map((l) => l.replace(/^(\["[^"]*"),"[^"]*"/, '$1'))
    .join('\n');
  return { identity: text.subarray(m.idStart, m.idEnd).toString('latin1'), volatile };
}

describe.runIf(nativeAvailable())('native tree scan', () => {
  let work: string;
  let tree: string;
  const raw = (...parts: (string | number[])[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-treescan-'));
    tree = join(work, 'tree');
    mkdirSync(join(tree, 'a', 'b', 'c'), { recursive: true });
    const names = ['a.txt', 'a b', 'a-b', 'a0', 'quote"name', 'back\\slash', 'new\nline', 'tab\tname', 'ctl\u0001x', 'ünïcödé', '😀 emoji', 'Z', '~tilde'];
    for (const n of names) writeFileSync(join(tree, n), `file ${n}\n`);
    for (let i = 0; i < 30; i++) writeFileSync(join(tree, 'a', 'b', `f${i}`), 'x'.repeat(i));
    writeFileSync(join(tree, 'a', 'b', 'c', 'deep'), 'deep');
    writeFileSync(join(tree, 'a', 'b.txt'), 'between a/b and a/b/c in byte order of whole paths');
    symlinkSync('a/b/f1', join(tree, 'sym'));
    linkSync(join(tree, 'a', 'b', 'f2'), join(tree, 'hard'));
    execFileSync('mkfifo', [join(tree, 'fifo')]);
    // Devices (root only, as the e2e suites run): an overlay whiteout (0/0) and /dev/null's numbers.
    if (process.getuid?.() === 0) {
      mknod(join(tree, 'a', 'whiteout'), S_IFCHR | 0o000, 0, 0);
      mknod(join(tree, 'null-dev'), S_IFCHR | 0o666, 1, 3);
    }
    // Names that are not UTF-8: a file, and a directory with a child.
    writeFileSync(raw(tree, '/', [0x66, 0xff, 0x80]), 'latin');
    mkdirSync(raw(tree, '/', [0x64, 0xe9]));
    writeFileSync(raw(tree, '/', [0x64, 0xe9], '/child'), 'in a non-UTF-8 directory');
    // Extended attributes, read by the native scan: small, a value larger than its first buffer,
    // and more names than fit its first list buffer.
    setXattr(join(tree, 'a.txt'), 'user.note', Buffer.from('hello'));
    setXattr(join(tree, 'a', 'b'), 'user.big', Buffer.alloc(2500, 0x41));
    for (let i = 0; i < 30; i++) setXattr(join(tree, 'Z'), `user.attribute-with-a-long-name-${i}`, Buffer.from([i, 0, 255]));
    // Times the native text of nanoseconds prints two ways: before 1970 (negative), and far ahead.
    writeFileSync(join(tree, 'old'), 'before 1970');
    utimesSync(join(tree, 'old'), new Date(-1_234_567), new Date(-86_400_000 * 365 + 123));
    writeFileSync(join(tree, 'future'), 'far ahead');
    utimesSync(join(tree, 'future'), new Date(Date.UTC(2400, 1, 29, 12, 0, 0, 999)), new Date(Date.UTC(2286, 10, 20, 17, 46, 40)));
    // Enough directories for the read-ahead threads to run ahead of the walk.
    for (let d = 0; d < 40; d++) {
      mkdirSync(join(tree, 'wide', `d${d}`, 'deeper'), { recursive: true });
      for (let f = 0; f < 5; f++) writeFileSync(join(tree, 'wide', `d${d}`, f % 2 ? 'deeper' : '.', `f${f}`), `${d}/${f}`);
    }
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('a full scan equals the JavaScript walk, entry for entry', async () => {
    const native = await scanTree(tree, { exclude: [], metadataOnly: [] });
    const js = await scanTree(tree, { exclude: NEVER, metadataOnly: [] });
    expect(native.stats.entries).toBe(js.stats.entries);
    expect(native.stats.entries).toBeGreaterThan(50);
    const a = sections(lines(native.entries));
    const b = sections(lines(js.entries));
    expect(a.identity).toBe(b.identity);
    expect(a.volatile).toBe(b.volatile);
    const z = native.entries.find((e) => 'path' in e && e.path === 'Z') as { xattrs?: Record<string, string> };
    expect(Object.keys(z.xattrs ?? {})).toHaveLength(30);
    expect(a.identity).toContain('"user.big":"QUFB');
  });

  it('the read-ahead threads change nothing: 1, 2 and 4 threads give the same bytes, with and without a previous manifest', async () => {
    const runs = [1, 2, 4].map((n) => scanTreeNative(tree, { xattrs: true, threads: n, volatileTemplate: volatileTemplate() })!);
    for (const r of runs.slice(1)) {
      expect(r.count).toBe(runs[0]!.count);
      expect(r.ops.equals(runs[0]!.ops)).toBe(true);
      expect(r.full.buf.equals(runs[0]!.full.buf)).toBe(true);
      expect(r.volatile.equals(runs[0]!.volatile)).toBe(true);
      // extended attributes read ahead by the threads (no previous manifest) or by the walk
      const xb = (x: unknown): Buffer => (x as { buf: Buffer }).buf;
      expect(xb(r.xattrs).length).toBeGreaterThan(100);
      expect(xb(r.xattrs).equals(xb(runs[0]!.xattrs))).toBe(true);
    }
    const m = lines((await scanTree(tree, { exclude: [], metadataOnly: [] })).entries);
    const [text, vol] = m.parts();
    const identity = text.subarray(m.idStart, m.idEnd);
    const again = [1, 3].map((n) =>
      scanTreeNative(tree, { previous: { identity, volatile: vol, carry: true }, xattrs: true, threads: n, volatileTemplate: volatileTemplate() })!,
    );
    expect(again[0]!.ops.length).toBeGreaterThan(0);
    expect(again[1]!.ops.equals(again[0]!.ops)).toBe(true);
    expect(again[1]!.full.buf.equals(again[0]!.full.buf)).toBe(true);
    expect(again[1]!.volatile.equals(again[0]!.volatile)).toBe(true);
    // and the times printed natively are the JavaScript ones, both before 1970 and far ahead
    const old = m.entries().find((e) => e.path === 'old')!;
    const future = m.entries().find((e) => e.path === 'future')!;
    expect(old.mtime.startsWith('-')).toBe(true);
    expect(BigInt(old.mtime)).toBe(BigInt(statSync(join(tree, 'old'), { bigint: true }).mtimeNs));
    expect(BigInt(future.mtime)).toBe(BigInt(statSync(join(tree, 'future'), { bigint: true }).mtimeNs));
  });

  it('a scan against the previous manifest carries what did not change and sees everything else', async () => {
    const before = await scanTree(tree, { exclude: [], metadataOnly: [] });
    const prev = new Previous(lines(before.entries), true);
    // Changes scattered through the walk order: added before, between and after existing names,
    // removed, rewritten, renamed, a new directory with contents.
    writeFileSync(join(tree, '0-first'), 'new first');
    writeFileSync(join(tree, 'a', 'b', 'f10'), 'rewritten');
    rmSync(join(tree, 'a', 'b', 'f20'));
    writeFileSync(join(tree, 'a', 'b', 'f20x'), 'added in the middle');
    renameSync(join(tree, 'a-b'), join(tree, 'a-b-renamed'));
    mkdirSync(join(tree, 'a', 'b', 'c', 'new-dir'));
    writeFileSync(join(tree, 'a', 'b', 'c', 'new-dir', 'inside'), 'inside');
    writeFileSync(join(tree, 'zz-last'), 'new last');

    const incremental = await scanTree(tree, { exclude: [], metadataOnly: [], previous: prev });
    const fresh = await scanTree(tree, { exclude: NEVER, metadataOnly: [] });
    expect(incremental.stats.entries).toBe(fresh.stats.entries);
    // Files that did not change were not read again (the hard link always is), and their lines
    // were carried over by the native matching.
    expect(incremental.stats.reused).toBeGreaterThan(30);
    const carried = incremental.entries.reduce((n, e) => n + ('carried' in e ? (e.count ?? 1) : 0), 0);
    expect(carried).toBeGreaterThan(40);
    expect(incremental.stats.hashedBytes).toBeLessThan(fresh.stats.hashedBytes);
    const a = sections(lines(incremental.entries));
    const b = sections(lines(fresh.entries));
    expect(a.identity).toBe(b.identity);
    expect(a.volatile).toBe(b.volatile);
  });

  it('damaged previous lines never crash the native matching, and carry only what matched', async () => {
    const base = await scanTree(tree, { exclude: [], metadataOnly: [] });
    const m = lines(base.entries);
    const [text, vol] = m.parts();
    const identity = text.subarray(m.idStart, m.idEnd);
    const total = base.stats.entries;
    // A seeded mutator: bit flips, bytes set to the characters the parser looks for, cuts.
    let seed = 0x2545f491;
    const rnd = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const special = [0x0a, 0x22, 0x5c, 0x2c, 0x5b, 0x75, 0x2f, 0x00, 0x30];
    const mutate = (b: Buffer): Buffer => {
      const c = Buffer.from(b);
      for (let k = 1 + rnd(4); k > 0; k--) {
        const at = rnd(c.length);
        if (rnd(2) === 0) c[at] = c[at]! ^ (1 << rnd(8));
        else c[at] = special[rnd(special.length)]!;
      }
      return rnd(4) === 0 ? c.subarray(0, rnd(c.length + 1)) : c;
    };
    let carriedSome = 0;
    for (let i = 0; i < 600; i++) {
      const pi = i % 3 === 1 ? identity : mutate(identity);
      const pv = i % 3 === 2 ? vol : mutate(vol);
      const r = scanTreeNative(tree, { previous: { identity: pi, volatile: pv, carry: true }, xattrs: false, volatileTemplate: volatileTemplate() })!;
      expect(r.count).toBe(total);
      // Every op well formed: runs point inside the lines given, in order; the rest are in full.
      let n = 0;
      let full = 0;
      let lastEnd = 0;
      for (let at = 0; at < r.ops.length;) {
        if (r.ops[at] === 1) {
          n++;
          full++;
          at++;
          continue;
        }
        const [s0, s1, v0, v1, count] = [1, 5, 9, 13, 17].map((o) => r.ops.readUInt32LE(at + o)) as [number, number, number, number, number];
        expect(s0).toBeGreaterThanOrEqual(lastEnd);
        expect(s1).toBeLessThanOrEqual(pi.length);
        expect(v1).toBeLessThanOrEqual(r.volatile.length);
        expect(v1 - v0).toBeGreaterThan(0);
        // Each carried line is a whole previous line whose path is that of the walked entry.
        const carried = pi.subarray(s0, s1).toString('latin1');
        expect(carried.endsWith('\n')).toBe(true);
        expect(carried.split('\n').length - 1).toBe(count);
        lastEnd = s1;
        n += count;
        carriedSome += count;
        at += 33;
      }
      expect(n).toBe(total);
      expect(full).toBe(r.full.length);
    }
    expect(carriedSome).toBeGreaterThan(0);
  });

  it('a root that vanished is a coded error', async () => {
    await expect(scanTree(join(work, 'missing'), { exclude: [], metadataOnly: [] })).rejects.toMatchObject({ code: 'SNAPSHOT_SOURCE_CHANGED' });
  });
});

import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../src/io/native.js';
import { Previous, scanTree } from '../src/ops/snapshot.js';
import { manifestOf, type ManifestLines } from '../src/store/manifest.js';

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
    // Names that are not UTF-8: a file, and a directory with a child.
    writeFileSync(raw(tree, '/', [0x66, 0xff, 0x80]), 'latin');
    mkdirSync(raw(tree, '/', [0x64, 0xe9]));
    writeFileSync(raw(tree, '/', [0x64, 0xe9], '/child'), 'in a non-UTF-8 directory');
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

  it('a root that vanished is a coded error', async () => {
    await expect(scanTree(join(work, 'missing'), { exclude: [], metadataOnly: [] })).rejects.toMatchObject({ code: 'SNAPSHOT_SOURCE_CHANGED' });
  });
});

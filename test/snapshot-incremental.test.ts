import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from './support/env.js';
import { run } from './support/cli.js';

/**
 * Incremental snapshots carry the manifest lines of entries whose mtime, ctime and inode did not
 * move; everything that changed in any other way must still be seen. Each snapshot of a tree that
 * is changed step by step (same-size rewrite with the mtime put back, chmod, xattr, a new hard
 * link, a file turned into a directory, a rename) restores to exactly the tree as it was.
 */

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

function facts(root: string): string {
  return (
    sh(`cd ${root} && find . -printf '%y %m %U %G %s %T@ %l %n %p\\n' | sort`) +
    sh(`cd ${root} && getfattr -R -h -d -m - --absolute-names . 2>/dev/null | grep -v '^$' | sort || true`) +
    sh(`cd ${root} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum`)
  );
}

describe.runIf(needs('getfattr', 'setfattr'))('incremental snapshots', () => {
  let work: string;
  let tree: string;
  let store: string;
  const seen: Record<string, string> = {};

  const snap = async (name: string, extra: string[] = []): Promise<Record<string, any>> => {
    const r = await run(['--json', 'snapshot', '--root', tree, '--store', store, '--name', name, ...extra]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    seen[name] = facts(tree);
    return JSON.parse(r.stdout) as Record<string, any>;
  };

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-incr-'));
    tree = join(work, 'tree');
    store = join(work, 'store');
    mkdirSync(join(tree, 'd', 'e'), { recursive: true });
    for (let i = 0; i < 50; i++) writeFileSync(join(tree, 'd', `f${i}`), `content ${i}\n`.repeat(i + 1));
    writeFileSync(join(tree, 'same-size'), 'aaaa');
    writeFileSync(join(tree, 'becomes-dir'), 'x');
    writeFileSync(join(tree, 'd', 'e', 'linked'), 'hard');
    symlinkSync('d/f1', join(tree, 'sym'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('sees every kind of change and restores each snapshot exactly', async () => {
    const first = await snap('s1');
    expect(first['stats'].reused).toBe(0);

    // A rewrite of the same size with the old mtime put back: only the ctime tells.
    const st = statSync(join(tree, 'same-size'));
    writeFileSync(join(tree, 'same-size'), 'bbbb');
    utimesSync(join(tree, 'same-size'), st.atime, st.mtime);
    chmodSync(join(tree, 'd', 'f3'), 0o600);
    sh(`setfattr -n user.note -v changed ${join(tree, 'd', 'f4')}`);
    linkSync(join(tree, 'd', 'e', 'linked'), join(tree, 'd', 'also-linked'));
    rmSync(join(tree, 'becomes-dir'));
    mkdirSync(join(tree, 'becomes-dir'));
    sh(`mv ${join(tree, 'd', 'f5')} ${join(tree, 'd', 'f5-renamed')}`);
    const second = await snap('s2');
    // Most files were carried over; the rewritten one was read again.
    expect(second['stats'].reused).toBeGreaterThan(40);
    expect(second['stats'].hashedBytes).toBeGreaterThan(0);

    const d = await run(['--json', 'diff', '@s1', '@s2', '--store', store]);
    expect(d.code).toBe(1);
    const paths = (JSON.parse(d.stdout)['entries'] as { path: string }[]).map((e) => e.path).sort();
    for (const p of ['same-size', 'd/f3', 'd/f4', 'd/also-linked', 'becomes-dir', 'd/f5', 'd/f5-renamed']) expect(paths).toContain(p);

    // Nothing changed: everything carried, equal by diff.
    const third = await snap('s3');
    expect(third['stats'].hashedBytes).toBe(0);
    expect((await run(['diff', '@s2', '@s3', '--store', store])).code).toBe(0);

    // Different options: nothing carried (stored flags depend on them), still exact.
    const fourth = await snap('s4', ['--metadata-only', 'd/**']);
    expect(fourth['stats'].reused).toBeGreaterThan(0);

    for (const name of ['s1', 's2', 's3']) {
      const to = join(work, `restored-${name}`);
      const r = await run(['restore', name, '--store', store, '--to', to]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(facts(to).replaceAll(to, '.')).toBe(seen[name]!.replaceAll(tree, '.'));
    }
  });
});

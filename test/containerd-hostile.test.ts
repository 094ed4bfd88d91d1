import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync, truncateSync, unlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run, SAMPLES } from './support/cli.js';

/**
 * Hostile containerd roots, made from the shipped sample (a real containerd 1.6 root): a blob
 * replaced by a symlink out of the root, one by a FIFO, a truncated meta.db, a root without
 * meta.db. Each ends in a coded finding or error, never a hang, a stack trace or a followed link.
 */
type Obj = Record<string, any>;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function unpack(): string {
  const d = mkdtempSync(join(tmpdir(), 'dataroot-cdhostile-'));
  dirs.push(d);
  expect(spawnSync('tar', ['-xzf', join(SAMPLES, 'containerd.tar.gz'), '-C', d]).status).toBe(0);
  return d;
}

describe('hostile containerd roots', () => {
  it('a blob that is a symlink out of the root, and one that is a FIFO: named, not followed, not opened', async () => {
    const root = unpack();
    const blobs = join(root, 'io.containerd.content.v1.content/blobs/sha256');
    const names = readdirSync(blobs).sort();
    unlinkSync(join(blobs, names[0]!));
    symlinkSync('/etc/passwd', join(blobs, names[0]!));
    unlinkSync(join(blobs, names[1]!));
    expect(spawnSync('mkfifo', [join(blobs, names[1]!)]).status).toBe(0);
    const r = await run(['--containerd-root', root, '--json', 'verify']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    const about = (n: string): Obj[] => out.findings.filter((f: Obj) => f.subject.includes(n));
    expect(about(names[0]!).map((f: Obj) => f.code)).toContain('SYMLINK_OUT_OF_ROOT');
    expect(about(names[1]!).map((f: Obj) => f.code)).toContain('FILE_NOT_REGULAR');
    expect(r.stderr).not.toMatch(/at .*\.(ts|js):\d+/);
    const c = await run(['--containerd-root', root, 'containerd', 'images']);
    expect(c.stderr).not.toMatch(/at .*\.(ts|js):\d+/);
  });

  it('a truncated meta.db is a coded error (exit 2); a root without one is CONTAINERD_ROOT_NOT_FOUND', async () => {
    const root = unpack();
    const meta = join(root, 'io.containerd.metadata.v1.bolt/meta.db');
    truncateSync(meta, Math.floor(statSync(meta).size / 3));
    const r = await run(['--containerd-root', root, 'containerd', 'images']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^dataroot: BOLT_TRUNCATED: /);
    const empty = mkdtempSync(join(tmpdir(), 'dataroot-cdempty-'));
    dirs.push(empty);
    const e = await run(['--containerd-root', empty, 'containerd', 'images']);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/^dataroot: STORE_NOT_A_DATAROOT|^dataroot: CONTAINERD_ROOT_NOT_FOUND/);
  });

  it('a snapshot parent chain that comes back to itself: export, mount and container diff refuse it, verify names it, find goes on', async () => {
    const d = mkdtempSync(join(tmpdir(), 'dataroot-cdcycle-'));
    dirs.push(d);
    expect(spawnSync('tar', ['-xzf', join(SAMPLES, 'docker-containerd.tar.gz'), '-C', d]).status).toBe(0);
    const snaps = JSON.parse((await run(['--containerd-root', join(d, 'containerd/daemon'), '--json', 'containerd', 'snapshots', '-n', 'moby'])).stdout);
    const bottom = snaps.find((s: Obj) => s.Parent === undefined).Name;
    const init = snaps.find((s: Obj) => s.Name.endsWith('-init')).Name;
    // The image's bottom layer made a child of the container's init snapshot: web -> init -> ... -> bottom -> init.
    const meta = join(d, 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db');
    expect((await run(['bolt', 'put', meta, 'v1', 'moby', 'snapshots', 'overlayfs', bottom, 'parent', init])).code).toBe(0);
    for (const args of [
      ['export', 'web', '-o', join(d, 'web.tar')],
      ['mount', 'web', d, '--print'],
      ['container', 'diff', 'web'],
    ]) {
      const r = await run(['--root', d, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^dataroot: CONTAINERD_SNAPSHOT_CYCLE: snapshot [0-9a-f]{64}: its parent chain comes back to /);
    }
    const v = await run(['--root', d, '--json', 'verify']);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.stdout).findings.filter((f: Obj) => f.code === 'CONTAINERD_SNAPSHOT_CYCLE').length).toBe(snaps.length);
    const f = await run(['--root', d, '--json', 'find', '--path', '/etc/release']);
    expect(f.code).toBe(0);
    const [hit] = f.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(hit.containers[0]).toMatchObject({ name: 'web', sees: 'unknown' });
  });

  it('the samples read clean: both archives verify without errors', async () => {
    for (const s of ['containerd.tar.gz', 'docker-containerd.tar.gz']) {
      const r = await run(['--root', join(SAMPLES, s), '--json', 'verify', '--deep']);
      const out = JSON.parse(r.stdout);
      expect(
        out.findings.filter((f: Obj) => f.severity === 'error'),
        s,
      ).toEqual([]);
      expect(r.code).toBe(0);
    }
  });

  it('bolt dump decodes a container spec and runtime options from the sample meta.db', async () => {
    const r = await run([
      '--root',
      join(SAMPLES, 'containerd.tar.gz'),
      '--json',
      'bolt',
      'dump',
      'io.containerd.metadata.v1.bolt/meta.db',
      'v1',
      'default',
      'containers',
    ]);
    expect(r.code).toBe(0);
    const b = JSON.parse(r.stdout).bucket.sample.bucket;
    expect(b.spec.any.typeUrl).toBe('types.containerd.io/opencontainers/runtime-spec/1/Spec');
    expect(b.spec.any.json.ociVersion).toMatch(/^1\./);
    expect(b.runtime.bucket.options.any.typeUrl).toBe('containerd.runc.v1.Options');
    expect(typeof b.runtime.bucket.options.any.fields.Root).toBe('string');
  });
});

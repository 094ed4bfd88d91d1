import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { mknod, S_IFIFO } from '../../src/io/native.js';
import { fingerprint } from '../support/tree.js';
import { needs } from '../support/env.js';
import { bounded, codedFailure, Hostile } from './harness.js';

/**
 * Hostile evidence for logs, timeline and which (issue 17), on copies of the after-logs sample:
 * each run is bounded in time, reads nothing outside the root (the canary never shows), writes
 * nothing anywhere (the sentinel tree and the root are unchanged), and ends with a coded error
 * (exit 2) or its findings listed (exit 1), never a stack trace.
 */
const H = new Hostile();
afterAll(() => H.cleanup());

interface Want {
  code: number[];
  shows?: string;
}

async function read(root: string, args: string[], want: Want, ms = 20_000): Promise<Awaited<ReturnType<typeof bounded>>> {
  const before = fingerprint(root);
  const r = await bounded([...args, '--root', root], ms);
  const where = `dataroot ${args.join(' ')}: exit ${r.code}\n${r.stderr.slice(0, 2000)}`;
  expect(H.leaked(r), where).toBeUndefined();
  expect(H.sentinelChanged(), where).toBeUndefined();
  expect(want.code, where).toContain(r.code);
  if (r.code === 2) expect(codedFailure(r), where).toBeDefined();
  expect(r.stderr, where).not.toMatch(/INTERNAL|\n\s+at /);
  if (want.shows !== undefined) expect(r.stdout + r.stderr, where).toContain(want.shows);
  expect(fingerprint(root), `${where}\nthe root changed`).toEqual(before);
  return r;
}

/** The sample's containers by name: id, directory. */
function container(root: string, name: string): { id: string; dir: string } {
  for (const id of readdirSync(join(root, 'containers'))) {
    const cfg = JSON.parse(readFileSync(join(root, 'containers', id, 'config.v2.json'), 'utf8')) as { Name: string };
    if (cfg.Name === `/${name}`) return { id, dir: join(root, 'containers', id) };
  }
  throw new Error(`no container ${name}`);
}

function replaceWithFifo(path: string): void {
  rmSync(path, { force: true });
  mknod(path, S_IFIFO | 0o600, 0, 0);
}

describe('logs on hostile log files', () => {
  it('the live json-file log is a FIFO: FILE_NOT_REGULAR, no hang', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    replaceWithFifo(join(c.dir, `${c.id}-json.log`));
    const r = await read(root, ['logs', 'jsonlog'], { code: [2] });
    expect(codedFailure(r)).toBe('FILE_NOT_REGULAR');
  });

  it('a compressed rotation is a FIFO: FILE_NOT_REGULAR, with --since too (its header is read first)', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    replaceWithFifo(join(c.dir, `${c.id}-json.log.1.gz`));
    expect(codedFailure(await read(root, ['logs', 'jsonlog'], { code: [2] }))).toBe('FILE_NOT_REGULAR');
    expect(codedFailure(await read(root, ['logs', 'jsonlog', '--since', '2000-01-01'], { code: [2] }))).toBe('FILE_NOT_REGULAR');
  });

  it('the log is a symlink out of the root: SYMLINK_OUT_OF_ROOT, the target never read', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    rmSync(join(c.dir, `${c.id}-json.log`));
    symlinkSync(H.canaryFile, join(c.dir, `${c.id}-json.log`));
    expect(codedFailure(await read(root, ['logs', 'jsonlog'], { code: [2] }))).toBe('SYMLINK_OUT_OF_ROOT');
  });

  it('local-logs is a symlink to a directory outside: refused, nothing listed from there', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'locallog');
    rmSync(join(c.dir, 'local-logs'), { recursive: true });
    // A directory outside every root (not the sentinel tree), holding the canary.
    const elsewhere = join(H.work, 'logs-elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    writeFileSync(join(elsewhere, 'container.log'), H.canaryText);
    symlinkSync(elsewhere, join(c.dir, 'local-logs'));
    const r = await read(root, ['logs', 'locallog'], { code: [2] });
    expect(codedFailure(r)).toMatch(/^SYMLINK_/);
  });

  it('a local log cut inside a record: the records before it, then LOG_RECORD_TRUNCATED (exit 1)', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'locallog');
    const file = join(c.dir, 'local-logs', 'container.log');
    const whole = await read(root, ['--json', 'logs', 'locallog'], { code: [0] });
    const n = whole.stdout.trim().split('\n').length;
    const size = readFileSync(file).length;
    truncateSync(file, size - 5);
    const r = await read(root, ['--json', 'logs', 'locallog'], { code: [1], shows: 'LOG_RECORD_TRUNCATED' });
    expect(r.stdout.trim().split('\n').length).toBe(n - 1);
  });

  it('a record claiming 2^31 bytes: LOG_RECORD_TOO_LARGE at once, nothing allocated for it (exit 1)', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'locallog');
    appendFileSync(join(c.dir, 'local-logs', 'container.log'), Buffer.from([0x80, 0, 0, 0, 1, 2, 3, 4]));
    const r = await read(root, ['logs', 'locallog'], { code: [1], shows: 'LOG_RECORD_TOO_LARGE' }, 10_000);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('--tail over a record whose footer lies: LOG_FRAME_MISMATCH (dockerd fails the same read)', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'locallog');
    const file = join(c.dir, 'local-logs', 'container.log');
    const b = readFileSync(file);
    b.writeUInt32BE(0x7fffff00, b.length - 4);
    writeFileSync(file, b);
    expect(codedFailure(await read(root, ['logs', 'locallog', '--tail', '2'], { code: [2] }))).toBe('LOG_FRAME_MISMATCH');
  });

  it('garbage lines in a json-file log: listed as findings with their offsets, the other lines printed', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    const file = join(c.dir, `${c.id}-json.log`);
    const before = readFileSync(file);
    writeFileSync(file, Buffer.concat([Buffer.from('{"log":"x\n\u001b[31mnot json\n{"log":5}\n'), before]));
    const r = await read(root, ['logs', 'jsonlog', '--stream', 'stdout'], { code: [1], shows: 'LOG_LINE_INVALID' });
    expect(r.stderr).toContain('offset 0');
    expect(r.stdout).toContain('the end, no newline');
  });

  it('a corrupt compressed rotation: LOG_GZIP_CORRUPT listed, the other files read', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    const gz = join(c.dir, `${c.id}-json.log.1.gz`);
    const b = readFileSync(gz);
    b.fill(0x55, 20, Math.min(b.length - 8, 120));
    writeFileSync(gz, b);
    const r = await read(root, ['logs', 'jsonlog'], { code: [1], shows: 'LOG_GZIP_CORRUPT' });
    expect(r.stdout).toContain('the end, no newline');
  });

  it('a rotation that is a gzip bomb is read up to its bound only (bounded time)', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    // 1.5 GiB of newlines: past the bound for a 1k max-size (what dockerd can rotate: max-size and one message).
    const chunk = gzipSync(Buffer.alloc(256 << 20, 0x0a), { level: 9 });
    writeFileSync(join(c.dir, `${c.id}-json.log.2.gz`), Buffer.concat([chunk, chunk, chunk, chunk, chunk, chunk]));
    const r = await read(root, ['logs', 'jsonlog', '--tail', 'all'], { code: [1], shows: 'LOG_DECOMPRESSED_TOO_LARGE' }, 30_000);
    expect(r.stdout).toContain('the end, no newline');
    expect(r.ms).toBeLessThan(30_000);
  }, 60_000);

  it('journald and none keep nothing in the root: the driver is named, exit 1', async () => {
    const root = H.root('after-logs');
    const c = container(root, 'jsonlog');
    const hc = join(c.dir, 'hostconfig.json');
    const cfg = JSON.parse(readFileSync(hc, 'utf8')) as { LogConfig: { Type: string; Config: Record<string, string> } };
    for (const driver of ['journald', 'none']) {
      cfg.LogConfig = { Type: driver, Config: {} };
      writeFileSync(hc, JSON.stringify(cfg));
      const r = await read(root, ['logs', 'jsonlog'], { code: [1], shows: `the ${driver} driver` });
      expect(r.stderr).toMatch(/^dataroot: LOGS_NOT_ON_DISK: /);
    }
    cfg.LogConfig = { Type: 'fluentd', Config: { 'cache-disabled': 'true' } };
    writeFileSync(hc, JSON.stringify(cfg));
    await read(root, ['logs', 'jsonlog'], { code: [1], shows: 'cache is disabled' });
  });
});

describe('timeline and which on hostile roots', () => {
  it('a FIFO in a volume and a symlink out of the root in a rw layer: listed as what they are, never opened or followed', async () => {
    const root = H.root('after-logs');
    mknod(join(root, 'volumes', 'logvol', '_data', 'pipe'), S_IFIFO | 0o600, 0, 0);
    const rw = readdirSync(join(root, 'overlay2')).find((n) => n !== 'l' && readdirSync(join(root, 'overlay2', n, 'diff')).includes('planted.txt'))!;
    symlinkSync(H.canaryFile, join(root, 'overlay2', rw, 'diff', 'escape'));
    symlinkSync(H.canaryDir, join(root, 'volumes', 'logvol', '_data', 'escape-dir'));
    const r = await read(root, ['timeline', '--format', 'jsonl'], { code: [0] });
    const ev = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { path?: string; file?: { type: string } });
    expect(ev.find((e) => e.path === '/pipe')?.file?.type).toBe('fifo');
    expect(ev.find((e) => e.path === '/escape')?.file?.type).toBe('symlink');
    expect(ev.some((e) => (e.path ?? '').startsWith('/escape-dir/'))).toBe(false);
    const body = await read(root, ['timeline', '--format', 'bodyfile'], { code: [0] });
    expect(body.stdout).toContain('|p/prw-------|');
  });

  it('names with | % and control characters stay one body-file field each', async () => {
    const root = H.root('after-logs');
    writeFileSync(join(root, 'volumes', 'logvol', '_data', 'a|b%c\nd'), 'x');
    const r = await read(root, ['timeline', '--format', 'bodyfile'], { code: [0] });
    const line = r.stdout.split('\n').find((l) => l.includes('a%7Cb%25c%0Ad'))!;
    expect(line.split('|')).toHaveLength(11);
  });

  it.runIf(needs('mactime'))('mactime -b reads the body file of a hostile root', async () => {
    const root = H.root('after-logs');
    writeFileSync(join(root, 'volumes', 'logvol', '_data', 'x|y'), 'x');
    const r = await read(root, ['timeline', '--format', 'bodyfile'], { code: [0] });
    const file = join(H.work, 'hostile.body');
    writeFileSync(file, r.stdout);
    const m = spawnSync('mactime', ['-b', file, '-d', '-y'], { encoding: 'utf8' });
    expect(m.status).toBe(0);
    expect(m.stdout).toContain('/x|y [volume logvol]');
  });

  it('which: an l/ link that points out of the root is reported, not followed; a path leaving the root is a usage error', async () => {
    const root = H.root('after-logs');
    symlinkSync(H.outside, join(root, 'overlay2', 'l', 'AAAAAAAAAAAAAAAAAAAAAAAAAA'));
    const r = await read(root, ['--json', 'which', 'overlay2/l/AAAAAAAAAAAAAAAAAAAAAAAAAA/canary.txt'], { code: [0, 1] });
    expect(JSON.parse(r.stdout)[0].summary).toContain('is not a link to ../<id>/diff');
    expect(codedFailure(await read(root, ['which', '../outside/canary.txt'], { code: [2] }))).toBe('USAGE_PATH_OUTSIDE_ROOT');
    expect(codedFailure(await read(root, ['which', H.canaryFile], { code: [2] }))).toBe('USAGE_PATH_OUTSIDE_ROOT');
  });

  it("which on a containerd root: a snapshot's fs and a directory of the container's view as symlinks out of the root, a FIFO in a layer", async () => {
    const root = H.root('containerd');
    const OV = join(root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    rmSync(join(OV, '1', 'fs'), { recursive: true });
    symlinkSync(H.outside, join(OV, '1', 'fs'));
    rmSync(join(OV, '5', 'fs', 'proc'), { recursive: true });
    symlinkSync(H.outside, join(OV, '5', 'fs', 'proc'));
    mkdirSync(join(OV, '2', 'fs', 'run'));
    mknod(join(OV, '2', 'fs', 'run', 'pipe'), S_IFIFO | 0o600, 0, 0);
    const rel = 'io.containerd.snapshotter.v1.overlayfs/snapshots';
    const a = await read(root, ['--json', 'which', `${rel}/1/fs/canary.txt`], { code: [0, 1] });
    expect(JSON.parse(a.stdout)[0].exists).toBe(false);
    const b = await read(root, ['--json', 'which', `${rel}/5/fs/proc/canary.txt`], { code: [0, 1] });
    expect(JSON.parse(b.stdout)[0].exists).toBe(false);
    const c = await read(root, ['--json', 'which', `${rel}/2/fs/run/pipe`], { code: [0] });
    expect(JSON.parse(c.stdout)[0]).toMatchObject({ type: 'fifo', owner: 'image-layer' });
    expect(codedFailure(await read(root, ['which', `${rel}/../../../outside`], { code: [2] }))).toBe('USAGE_PATH_OUTSIDE_ROOT');
  });

  it('timeline on a containerd root: a snapshot as a symlink out, a snapshot directory not named by an id, a FIFO blob', async () => {
    const root = H.root('containerd');
    const OV = join(root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
    rmSync(join(OV, '5'), { recursive: true });
    symlinkSync(H.canaryDir, join(OV, '5'));
    mkdirSync(join(OV, 'x'));
    writeFileSync(join(OV, 'x', 'y'), 'not a snapshot');
    mknod(join(root, 'io.containerd.content.v1.content', 'blobs', 'sha256', 'ab'.repeat(32)), S_IFIFO | 0o600, 0, 0);
    const r = await read(root, ['timeline', '--format', 'jsonl', '--layers'], { code: [0, 1] });
    const ev = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { source: string; file?: { type: string } });
    expect(ev.find((e) => e.source === 'io.containerd.snapshotter.v1.overlayfs/snapshots/5')?.file?.type).toBe('symlink');
    expect(ev.some((e) => e.source.startsWith('io.containerd.snapshotter.v1.overlayfs/snapshots/5/'))).toBe(false);
    expect(ev.some((e) => e.source.startsWith('io.containerd.snapshotter.v1.overlayfs/snapshots/x'))).toBe(false);
    expect(r.stderr).toContain('CONTAINERD_SNAPSHOT_ID_INVALID');
    expect(ev.find((e) => e.source.endsWith(`blobs/sha256/${'ab'.repeat(32)}`))?.file?.type).toBe('fifo');
    const body = await read(root, ['timeline', '--format', 'bodyfile'], { code: [0, 1] });
    expect(body.stdout).toContain('|p/prw-------|');
  });
});

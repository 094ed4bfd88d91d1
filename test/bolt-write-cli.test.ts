import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { untar as unpackTar } from './support/untar.js';
import { probeLock } from '../src/io/lock.js';
import { buildBolt } from '../src/formats/bolt/write.js';
import { needs } from './support/env.js';
import { oracle } from './support/gobolt.js';
import { run, runBin, SAMPLES } from './support/cli.js';

/**
 * The writing bolt commands as a user runs them: results, file modes, the old file left alone,
 * and bad input refused with one coded line, exit 2, no output file and no temporary file left.
 */
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

let tmp: string;
let after: { dir: string; cleanup(): void };
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dataroot-boltwrite-'));
  after = unpackTar(join(SAMPLES, 'after-build.tar.gz'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  after.cleanup();
});

/** A fresh directory holding a copy of a sample file. */
function copyOf(rel: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmp, 'case-'));
  const file = join(dir, 'f.db');
  copyFileSync(join(after.dir, rel), file);
  return { dir, file };
}

/** Everything in a directory (temporary files of an aborted write would show here). */
const listing = (dir: string): string[] => readdirSync(dir).sort();

function expectRefused(r: { code: number | null; stderr: string }, code: string): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(new RegExp(`^dataroot: ${code}: `));
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
}

describe('bolt put, delete, compact, load on the sample files', () => {
  it('put then get: a new volume record; delete removes it; the mode is kept; the old inode is left as it was', async () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    chmodSync(file, 0o640);
    const before = readFileSync(file);
    linkSync(file, join(dir, 'old.db'));
    const ino = statSync(file).ino;
    const put = await run(['bolt', 'put', file, 'volumes', 'newvol', '{"Name":"newvol","Driver":"local","Labels":null,"Options":null}']);
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toMatch(/^put volumes\/newvol: .* rewritten, \d+ pages of 4096 bytes/);
    const got = await run(['--json', 'bolt', 'get', file, 'volumes', 'newvol']);
    expect(JSON.parse(got.stdout).value).toEqual({ json: { Name: 'newvol', Driver: 'local', Labels: null, Options: null } });
    expect(statSync(file).mode & 0o7777).toBe(0o640);
    expect(statSync(file).ino).not.toBe(ino);
    expect(readFileSync(join(dir, 'old.db')).equals(before)).toBe(true);
    const del = await run(['bolt', 'delete', file, 'volumes', 'newvol']);
    expect(del.code, del.stderr).toBe(0);
    expect((await run(['bolt', 'keys', file, 'volumes'])).stdout).toBe('samplevol\n');
    expect(listing(dir)).toEqual(['f.db', 'old.db']);
  });

  it('put --json prints one document; -p creates the buckets; --bucket creates an empty one; the owner is kept when root', async () => {
    const { file } = copyOf('network/files/local-kv.db');
    if (process.geteuid?.() === 0) chownSync(file, 1234, 4321);
    const r = await run(['--json', 'bolt', 'put', file, '-p', 'extra', 'deeper', 'k', 'v']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ key: 'k', path: ['extra', 'deeper'], createdBuckets: ['extra', 'deeper'], replaced: false, pageSize: 4096 });
    expect((await run(['bolt', 'put', file, '--bucket', 'extra', 'empty'])).code).toBe(0);
    expect((await run(['bolt', 'keys', file, 'extra'])).stdout).toBe('deeper\nempty\n');
    if (process.geteuid?.() === 0) expect([statSync(file).uid, statSync(file).gid]).toEqual([1234, 4321]);
  });

  it('compact keeps the source mode and reports the sizes as bbolt compact does', async () => {
    const { dir, file } = copyOf('containerd/daemon/io.containerd.metadata.v1.bolt/meta.db');
    chmodSync(file, 0o600);
    const out = join(dir, 'small.db');
    const r = await run(['bolt', 'compact', file, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\d+ -> \d+ bytes \(gain=\d+\.\d\dx\): /);
    expect(statSync(out).mode & 0o7777).toBe(0o600);
    expect((await run(['bolt', 'diff', file, out])).stdout).toBe('no differences\n');
  });

  it('dump -> edit -> load round-trips: a changed value and a line appended out of order', async () => {
    const { dir, file } = copyOf('network/files/local-kv.db');
    const dump = runBin(['bolt', 'dump', '--format', 'ndjson', file]).stdout;
    const lines = dump.trimEnd().split('\n');
    const i = lines.findIndex((l) => l.includes('"value"'));
    const rec = JSON.parse(lines[i]!) as { path: string[]; key: string; value: string };
    lines[i] = JSON.stringify({ ...rec, value: '00ff' });
    lines.push(JSON.stringify({ path: rec.path, key: '00', value: '' }));
    const out = join(dir, 'loaded.db');
    const r = runBin(['bolt', 'load', out], {}, `${lines.join('\n')}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^loaded \d+ records/);
    const back = runBin(['bolt', 'dump', '--format', 'ndjson', out]).stdout.trimEnd().split('\n');
    expect(back).toContain(JSON.stringify({ ...rec, value: '00ff' }).replace(/^\{"path":\[(.*?)\]/, '{"path":[$1]'));
    expect(back).toContain(`{"path":[${rec.path.map((p) => `"${p}"`).join(',')}],"key":"00","value":""}`);
    expect(back.length).toBe(lines.length);
    expect(statSync(out).mode & 0o7777).toBe(0o600);
    // the same dump loaded over the existing file replaces it, keeping its page size
    const again = runBin(['bolt', 'load', out], {}, dump);
    expect(again.code, again.stderr).toBe(0);
    expect(runBin(['bolt', 'dump', '--format', 'ndjson', out]).stdout).toBe(dump);
  });

  it('an empty dump on standard input builds an empty database', () => {
    const out = join(mkdtempSync(join(tmp, 'case-')), 'empty.db');
    const r = runBin(['bolt', 'load', out, '--page-size', '16384'], {}, '');
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(out).size).toBe(4 * 16384);
    expect(runBin(['bolt', 'check', out]).stdout).toBe('OK\n');
  });
});

describe.runIf(needs('go'))('Go reads what the commands write', () => {
  it('put of a value from a 1 MiB file and of an empty value, into a nested bucket', async () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const vf = join(dir, 'value.bin');
    const v = Buffer.alloc(1 << 20, 0xab);
    writeFileSync(vf, v);
    expect((await run(['bolt', 'put', file, '-p', 'a', 'b', 'big', '--value-file', vf])).code).toBe(0);
    expect((await run(['bolt', 'put', file, 'a', 'b', 'empty', ''])).code).toBe(0);
    expect(oracle(['check', file]).stdout).toBe('OK\n');
    const dump = oracle(['dump', file]).stdout;
    expect(dump).toContain(`{"path":["61","62"],"key":"626967","value":"${v.toString('hex')}"}`);
    expect(dump).toContain('{"path":["61","62"],"key":"656d707479","value":""}');
  });
});

describe('bad input: one coded line, exit 2, nothing written', () => {
  it('load: a line that is not JSON (line number given); the new file is not created', () => {
    const dir = mkdtempSync(join(tmp, 'case-'));
    const r = runBin(['bolt', 'load', join(dir, 'x.db')], {}, '{"path":[],"key":"61","bucket":true}\n{"path":[],"key":\n');
    expectRefused(r, 'BOLT_LOAD_BAD_LINE');
    expect(r.stderr).toContain('line 2');
    expect(listing(dir)).toEqual([]);
  });

  it('load: duplicate keys; the existing file is left as it was', () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const before = readFileSync(file);
    const text = '{"path":[],"key":"61","bucket":true}\n{"path":["61"],"key":"6b","value":"00"}\n{"path":["61"],"key":"6b","value":"01"}\n';
    expectRefused(runBin(['bolt', 'load', file], {}, text), 'BOLT_LOAD_DUPLICATE_KEY');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(listing(dir)).toEqual(['f.db']);
  });

  it('load over a file that is not a bbolt file is refused', () => {
    const dir = mkdtempSync(join(tmp, 'case-'));
    const f = join(dir, 'notes.txt');
    writeFileSync(f, 'x'.repeat(5000));
    expectRefused(runBin(['bolt', 'load', f], {}, ''), 'BOLT_NOT_BOLT');
    expect(readFileSync(f, 'utf8')).toBe('x'.repeat(5000));
    expect(listing(dir)).toEqual(['notes.txt']);
  });

  it('put and delete on a file a running process holds locked (flock)', async () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const before = readFileSync(file);
    const holder: ChildProcess = spawn('flock', ['--exclusive', file, 'sleep', '60'], { stdio: 'ignore' });
    onTestFinished(() => {
      if (holder.pid !== undefined && holder.exitCode === null) process.kill(holder.pid, 'SIGTERM');
    });
    for (let i = 0; i < 100 && probeLock(file) !== 'held'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(probeLock(file)).toBe('held');
    expectRefused(runBin(['bolt', 'put', file, 'volumes', 'k', 'v']), 'BOLT_FILE_LOCKED');
    expectRefused(runBin(['bolt', 'delete', file, 'volumes', 'samplevol']), 'BOLT_FILE_LOCKED');
    expectRefused(runBin(['bolt', 'load', file], {}, ''), 'BOLT_FILE_LOCKED');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(listing(dir)).toEqual(['f.db']);
  });

  it('a value file that is a FIFO is refused at once (no hang)', () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const t0 = Date.now();
    expectRefused(runBin(['bolt', 'put', file, 'volumes', 'k', '--value-file', fifo]), 'IO_NOT_A_FILE');
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(listing(dir)).toEqual(['f.db', 'fifo']);
  });

  it('compact -o into a missing directory', () => {
    const { file } = copyOf('volumes/metadata.db');
    expectRefused(runBin(['bolt', 'compact', file, '-o', join(tmp, 'no', 'such', 'dir', 'out.db')]), 'USAGE_OUTPUT_DIR_MISSING');
  });

  it('compact -o onto an existing file without --force; with --force it is replaced', () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const out = join(dir, 'out.db');
    writeFileSync(out, 'keep me');
    expectRefused(runBin(['bolt', 'compact', file, '-o', out]), 'BOLT_OUTPUT_EXISTS');
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    expect(runBin(['bolt', 'compact', file, '-o', out, '--force']).code).toBe(0);
    expect(runBin(['bolt', 'check', out]).stdout).toBe('OK\n');
  });

  it('compact of a corrupt source stops with BOLT_CORRUPT midway and leaves neither output nor temporary file', () => {
    const dir = mkdtempSync(join(tmp, 'case-'));
    const src = join(dir, 'src.db');
    const entries = Array.from({ length: 3000 }, (_, i) => ({ key: enc(`key-${String(i).padStart(6, '0')}`), value: new Uint8Array(50) }));
    const bytes = new Uint8Array(
      buildBolt(
        {
          entries: [
            { key: enc('b'), bucket: { entries } },
            { key: enc('c'), bucket: { entries: entries.slice(0, 500) } },
          ],
        },
        { pageSize: 4096 },
      ),
    );
    // the last leaf of bucket b (read late in the walk) gets an element pointing past its page
    const v = new DataView(bytes.buffer);
    let last = 0;
    for (let id = 3; id * 4096 < bytes.length; id++) if (v.getUint16(id * 4096 + 8, true) === 2 && v.getUint16(id * 4096 + 10, true) > 10) last = id;
    v.setUint32(last * 4096 + 16 + 4, 100000, true);
    writeFileSync(src, bytes);
    expectRefused(runBin(['bolt', 'compact', src, '-o', join(dir, 'out.db')]), 'BOLT_CORRUPT');
    expect(listing(dir)).toEqual(['src.db']);
  });

  it('put on a symbolic link is refused (the rename would replace the link)', () => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const link = join(dir, 'link.db');
    symlinkSync(file, link);
    expectRefused(runBin(['bolt', 'put', link, 'volumes', 'k', 'v']), 'BOLT_TARGET_SYMLINK');
  });

  it('a file named inside --root: written in place; a symlinked directory or file of the root that leads outside is named as such (SYMLINK_OUT_OF_ROOT) and not followed', async () => {
    const root = mkdtempSync(join(tmp, 'root-'));
    const outside = mkdtempSync(join(tmp, 'outside-'));
    spawnSync('mkdir', ['-p', join(root, 'volumes'), join(root, 'image'), join(outside, 'files')]);
    copyFileSync(join(after.dir, 'volumes/metadata.db'), join(root, 'volumes', 'metadata.db'));
    copyFileSync(join(after.dir, 'network/files/local-kv.db'), join(outside, 'files', 'local-kv.db'));
    symlinkSync(outside, join(root, 'network'));
    symlinkSync(join(outside, 'files', 'local-kv.db'), join(root, 'volumes', 'link.db'));
    const before = readFileSync(join(outside, 'files', 'local-kv.db'));
    const ok = await run(['--root', root, 'bolt', 'put', 'volumes/metadata.db', 'volumes', 'k', 'v']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await run(['bolt', 'get', join(root, 'volumes/metadata.db'), 'volumes', 'k'])).stdout).toBe('v\n');
    expectRefused(runBin(['--root', root, 'bolt', 'put', 'network/files/local-kv.db', 'libnetwork', 'k', 'v']), 'SYMLINK_OUT_OF_ROOT');
    expectRefused(runBin(['--root', root, 'bolt', 'delete', '../outside/files/local-kv.db', 'libnetwork', 'k']), 'PATH_INVALID');
    expectRefused(runBin(['--root', root, 'bolt', 'compact', 'network/files/local-kv.db', '-o', join(tmp, 'c1.db')]), 'SYMLINK_OUT_OF_ROOT');
    expectRefused(runBin(['--root', root, 'bolt', 'compact', 'volumes/link.db', '-o', join(tmp, 'c2.db')]), 'SYMLINK_NOT_FOLLOWED');
    expectRefused(runBin(['--root', root, 'bolt', 'load', 'network/files/local-kv.db'], {}, ''), 'SYMLINK_OUT_OF_ROOT');
    expect(readFileSync(join(outside, 'files', 'local-kv.db')).equals(before)).toBe(true);
    expect(listing(join(outside, 'files'))).toEqual(['local-kv.db']);
  });

  it.each<[string, string[], string]>([
    ['put without a value', ['volumes', 'k'], 'USAGE_MISSING_VALUE'],
    ['put of a key and a value only', ['k', 'v'], 'USAGE_MISSING_VALUE'],
    ['put of a value at the top level', ['k', '--value-file', '/etc/hostname'], 'USAGE_MISSING_BUCKET'],
    ['put into a missing bucket without -p', ['nope', 'k', 'v'], 'BOLT_BUCKET_NOT_FOUND'],
    ['put --bucket of an existing bucket', ['--bucket', 'volumes'], 'BOLT_BUCKET_EXISTS'],
    ['put --bucket with --value-file', ['--bucket', 'volumes', 'x', '--value-file', '/etc/hostname'], 'USAGE_CONFLICTING_OPTIONS'],
    ['put with bad hex', ['--hex', '76', 'zz', '00'], 'USAGE_BAD_HEX'],
  ])('%s', (_n, args, code) => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const before = readFileSync(file);
    expectRefused(runBin(['bolt', 'put', file, ...args]), code);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(listing(dir)).toEqual(['f.db']);
  });

  it.each<[string, string[], string]>([
    ['a missing key', ['volumes', 'nope'], 'BOLT_KEY_NOT_FOUND'],
    ['a bucket without --bucket', ['volumes'], 'BOLT_KEY_IS_BUCKET'],
    ['a value with --bucket', ['volumes', 'samplevol', '--bucket'], 'BOLT_NOT_A_BUCKET'],
    ['a key in a missing bucket', ['nope', 'k'], 'BOLT_BUCKET_NOT_FOUND'],
  ])('delete of %s', (_n, args, code) => {
    const { dir, file } = copyOf('volumes/metadata.db');
    const before = readFileSync(file);
    expectRefused(runBin(['bolt', 'delete', file, ...args]), code);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(listing(dir)).toEqual(['f.db']);
  });

  it('a put of a value over a bucket, and a path through a value', () => {
    const { dir, file } = copyOf('containerd/daemon/io.containerd.metadata.v1.bolt/meta.db');
    const before = readFileSync(file);
    expectRefused(runBin(['bolt', 'put', file, 'v1', 'moby', 'v']), 'BOLT_KEY_IS_BUCKET');
    expectRefused(runBin(['bolt', 'put', file, '-p', 'v1', 'version', 'k', 'v']), 'BOLT_NOT_A_BUCKET');
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(listing(dir)).toEqual(['f.db']);
  });

  it('--page-size that is not a power of two', () => {
    const { file } = copyOf('volumes/metadata.db');
    expectRefused(runBin(['bolt', 'compact', file, '-o', join(tmp, 'x.db'), '--page-size', '3000']), 'USAGE_INVALID_ARGUMENT');
    expect(existsSync(join(tmp, 'x.db'))).toBe(false);
  });
});

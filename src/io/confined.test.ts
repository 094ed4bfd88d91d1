import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DatarootError } from '../formats/errors.js';
import { Confined, pathParts, removeTree, symlinkTargetInside } from './confined.js';

const work = mkdtempSync(join(tmpdir(), 'dataroot-confined-'));
afterAll(() => removeTree(work));

const base = join(work, 'base');
mkdirSync(join(base, 'a/b'), { recursive: true });
writeFileSync(join(base, 'a/b/file'), 'inside\n');
writeFileSync(join(work, 'outside'), 'outside\n');
symlinkSync('/etc', join(base, 'etc-link'));
symlinkSync('../../outside', join(base, 'a/up-link'));
symlinkSync('b', join(base, 'a/in-link'));
/** A FIFO made by coreutils, not the addon: this file also runs with DATAROOT_NO_NATIVE=1. */
function mkfifo(path: string): void {
  execFileSync('mkfifo', ['-m', '600', path]);
}
mkfifo(join(base, 'fifo'));
writeFileSync(join(base, 'big'), Buffer.alloc(100));

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof DatarootError) return e.code;
    throw e;
  }
  return undefined;
}

// The same cases with the kernel's openat2 (the addon) and with the walk alone.
describe.each([
  ['openat2 through the addon', ''],
  ['the component walk (no addon)', '1'],
])('Confined, %s', (_name, noNative) => {
  const fs = Confined.open(base);
  const withEnv = <T>(f: () => T): T => {
    const before = process.env['DATAROOT_NO_NATIVE'];
    process.env['DATAROOT_NO_NATIVE'] = noNative;
    try {
      return f();
    } finally {
      if (before === undefined) delete process.env['DATAROOT_NO_NATIVE'];
      else process.env['DATAROOT_NO_NATIVE'] = before;
    }
  };

  it('reads a file beneath its base', () => {
    expect(withEnv(() => fs.readText('a/b/file', { max: 100 }))).toBe('inside\n');
    expect(withEnv(() => fs.readText('a/b/absent', { max: 100 }))).toBeUndefined();
  });

  it('never goes through a symlink, inside the base or out of it, and names which', () => {
    expect(withEnv(() => code(() => fs.readFile('etc-link/passwd', { max: 1 << 20 })))).toBe('SYMLINK_OUT_OF_ROOT');
    expect(withEnv(() => code(() => fs.readFile('a/up-link', { max: 1 << 20 })))).toBe('SYMLINK_OUT_OF_ROOT');
    expect(withEnv(() => code(() => fs.readFile('a/in-link/file', { max: 1 << 20 })))).toBe('SYMLINK_NOT_FOLLOWED');
    expect(withEnv(() => code(() => fs.list('etc-link')))).toBe('SYMLINK_OUT_OF_ROOT');
  });

  it('opens a FIFO without blocking and refuses it; a directory and an oversized file too', () => {
    expect(withEnv(() => code(() => fs.readFile('fifo', { max: 100 })))).toBe('FILE_NOT_REGULAR');
    expect(withEnv(() => code(() => fs.readFile('a', { max: 100 })))).toBe('FILE_NOT_REGULAR');
    expect(withEnv(() => code(() => fs.readFile('big', { max: 99 })))).toBe('FILE_TOO_LARGE');
    expect(withEnv(() => fs.readFile('big', { max: 100 })?.length)).toBe(100);
  });

  it('refuses a FIFO without opening it: a writer blocked in open(2) on it stays blocked', async () => {
    const fifo = join(base, `fifo-writer${noNative}`);
    mkfifo(fifo);
    // open(2) for writing blocks until some reader opens the FIFO; then the shell exits.
    const writer = spawn('sh', ['-c', `exec 3>'${fifo}'`], { stdio: 'ignore' });
    const exited = new Promise<void>((res) => writer.on('exit', () => res()));
    let woke = false;
    void exited.then(() => (woke = true));
    try {
      await new Promise((res) => setTimeout(res, 200));
      expect(withEnv(() => code(() => fs.readFile(basename(fifo), { max: 100 })))).toBe('FILE_NOT_REGULAR');
      expect(withEnv(() => code(() => fs.readHead(basename(fifo), 10)))).toBe('FILE_NOT_REGULAR');
      await new Promise((res) => setTimeout(res, 300));
      expect(woke, 'the FIFO was opened').toBe(false);
      // The control: a reader's open does wake it.
      closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
      await exited;
      expect(woke).toBe(true);
    } finally {
      writer.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses paths that leave the base before touching anything', () => {
    for (const p of ['../outside', 'a/../../outside', '/etc/passwd', 'a/\0b'])
      expect(
        code(() => fs.readFile(p, { max: 100 })),
        p,
      ).toBe('PATH_INVALID');
    expect(pathParts('a/./b//c/')).toEqual(['a', 'b', 'c']);
    expect(pathParts('..weird')).toEqual(['..weird']);
  });
});

describe('Confined walks', () => {
  it('walks a tree 3,000 directories deep without recursion, listing symlinks as entries', () => {
    const deep = join(work, 'deep');
    let p = deep;
    mkdirSync(p);
    const parts: string[] = [];
    for (let i = 0; i < 3000; i++) {
      parts.push('d');
      p = join(p, 'd');
      // mkdir one level at a time, relative to the last: paths longer than PATH_MAX are fine this way only up to the limit
      if (p.length > 4000) break;
      mkdirSync(p);
    }
    symlinkSync('/', join(deep, 'root-link'));
    const fs = Confined.open(deep);
    const entries = [...fs.walk()];
    expect(entries.some((e) => e.rel === 'root-link' && e.stat.isSymbolicLink())).toBe(true);
    expect(entries.filter((e) => e.stat.isDirectory()).length).toBeGreaterThan(1000);
    expect(entries.some((e) => e.rel.startsWith('root-link/'))).toBe(false);
    // Removed without recursion (Node's recursive rm overflows the stack on such a tree), the link as a link.
    Confined.open(work).remove('deep');
    expect(existsSync(deep)).toBe(false);
    expect(existsSync('/etc/passwd')).toBe(true);
  });

  it('tells where a relative symlink leads, lexically', () => {
    expect(symlinkTargetInside('a/b/link', '../c')).toBe('a/c');
    expect(symlinkTargetInside('a/link', '../../x')).toBeUndefined();
    expect(symlinkTargetInside('link', '/etc')).toBeUndefined();
  });
});

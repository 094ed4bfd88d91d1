import { closeSync, constants, fstatSync, mkdirSync, mkdtempSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAvailable, openBeneath } from '../src/io/native.js';

/** openBeneath: openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, for the confined access layer. */
describe.runIf(nativeAvailable())('openBeneath', () => {
  let base: string;
  let outside: string;
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'dataroot-beneath-'));
    outside = mkdtempSync(join(tmpdir(), 'dataroot-outside-'));
    writeFileSync(join(outside, 'canary'), 'outside');
    mkdirSync(join(base, 'd'));
    writeFileSync(join(base, 'd', 'f'), 'inside');
    symlinkSync(outside, join(base, 'out'));
    symlinkSync('f', join(base, 'd', 'inner'));
  });
  afterAll(() => {
    rmSync(base, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  const errno = (rel: string, flags = constants.O_RDONLY): string => {
    try {
      const fd = openBeneath(base, rel, flags, 0)!;
      closeSync(fd);
      return 'opened';
    } catch (e) {
      return (e as NodeJS.ErrnoException).code ?? 'uncoded';
    }
  };

  it('opens a file beneath the base', () => {
    const fd = openBeneath(base, 'd/f', constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0)!;
    try {
      expect(fstatSync(fd).isFile()).toBe(true);
      const b = Buffer.alloc(16);
      expect(b.toString('utf8', 0, readSync(fd, b, 0, 16, 0))).toBe('inside');
    } finally {
      closeSync(fd);
    }
  });

  it('creates beneath the base with the mode given', () => {
    const fd = openBeneath(base, 'd/new', constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o640)!;
    try {
      expect(fstatSync(fd).mode & 0o777).toBe(0o640 & ~process.umask());
    } finally {
      closeSync(fd);
    }
  });

  it.each([
    ['a symlink component leaving the base', 'out/canary', 'ELOOP'],
    ['a symlink inside the base', 'd/inner', 'ELOOP'],
    ['..', '../x', 'EXDEV'],
    ['.. after a component', 'd/../../x', 'EXDEV'],
    ['an absolute path', '/etc/passwd', 'EXDEV'],
  ])('refuses %s', (_, rel, code) => {
    expect(errno(rel)).toBe(code);
  });

  it('refuses a magic link (/proc/self/root: a base of /proc)', () => {
    let code: string;
    try {
      closeSync(openBeneath('/proc', 'self/root/etc/passwd', constants.O_RDONLY, 0)!);
      code = 'opened';
    } catch (e) {
      code = (e as NodeJS.ErrnoException).code ?? 'uncoded';
    }
    // self is a symlink and root a magic link: either refusal keeps the walk inside /proc
    expect(['ELOOP', 'EXDEV']).toContain(code);
    try {
      closeSync(openBeneath('/proc/self', 'root/etc/passwd', constants.O_RDONLY, 0)!);
      code = 'opened';
    } catch (e) {
      code = (e as NodeJS.ErrnoException).code ?? 'uncoded';
    }
    expect(['ELOOP', 'EXDEV']).toContain(code);
  });

  it('is undefined without the addon', () => {
    process.env['DATAROOT_NO_NATIVE'] = '1';
    try {
      expect(openBeneath(base, 'd/f', constants.O_RDONLY, 0)).toBeUndefined();
    } finally {
      delete process.env['DATAROOT_NO_NATIVE'];
    }
  });
});

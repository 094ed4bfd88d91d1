import { spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mknod, S_IFCHR } from '../src/io/native.js';
import { BIN, SAMPLES } from './support/cli.js';
import { needs } from './support/env.js';
import { listTar, listTree } from './support/tarlist.js';
import { untar } from './support/untar.js';

/**
 * `export -o DIR` without privileges (run as nobody with setpriv on a copy of the overlay2 sample
 * made readable): the tree is written with what an ordinary user may set, and stderr says what it
 * could not (owners, a device, a setuid bit), and that opaque directories cannot be read.
 */

const work = mkdtempSync(join(tmpdir(), 'dataroot-unpriv-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const MOUNT = 'a84d8821ca20a96678e10220948dcbbcb9273a19bd16b00d68f2de8535d69a5c';

describe.runIf(process.getuid?.() === 0 && needs('setpriv'))('export -o DIR without root', () => {
  it('writes what the user may, and says what it could not', () => {
    const u = untar(join(SAMPLES, 'after-build.tar.gz'));
    const root = join(work, 'root');
    spawnSync('mv', [u.dir, root]);
    const diff = join(root, 'overlay2', MOUNT, 'diff');
    mknod(join(diff, 'null'), S_IFCHR | 0o666, 1, 3);
    writeFileSync(join(diff, 'suid'), '#!/bin/sh\n');
    // chown first: Linux clears the setuid bit when a file's owner changes, root's chown included.
    spawnSync('chown', ['1234:1234', join(diff, 'suid')]);
    chmodSync(join(diff, 'suid'), 0o4755);
    expect(lstatSync(join(diff, 'suid')).mode & 0o7777).toBe(0o4755);
    spawnSync('chmod', ['-R', 'a+rX', root]);
    chmodSync(work, 0o755);
    const outParent = join(work, 'out');
    mkdirSync(outParent);
    spawnSync('chown', ['65534:65534', outParent]);
    const as = (args: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args], { encoding: 'utf8' });
    const dir = join(outParent, 'tree');
    const r = as(['export', 'sample', '-o', `${dir}/`, '--root', root]);
    expect(r.stderr).toContain('dataroot: note: not root: the owners of');
    expect(r.stderr).toContain('dataroot: note: setuid/setgid bits dropped from 1 entries whose owner could not be set');
    expect(r.stderr).toContain('dataroot: note: not root: 1 device nodes not made');
    expect(r.stderr).toMatch(/XATTR_TRUSTED_UNREADABLE/);
    expect(r.status).toBe(1);
    const st = lstatSync(join(dir, 'suid'));
    expect([st.uid, st.mode & 0o7777]).toEqual([65534, 0o755]);
    expect(() => lstatSync(join(dir, 'null'))).toThrow(/ENOENT/);
    // Everything else is there, with the archive's modes, sizes and contents.
    const tar = join(outParent, 'x.tar');
    expect(as(['export', 'sample', '-o', tar, '--root', root]).status).toBe(1);
    const want = listTar(tar)
      .filter((e) => e.name !== 'null' && e.name !== 'suid')
      .map((e) => [e.name, e.mode, e.size, e.sha256, e.link]);
    const got = listTree(dir)
      .filter((e) => e.name !== 'suid')
      .map((e) => [e.name, e.mode, e.size, e.sha256, e.link]);
    expect(got).toEqual(want);
    u.cleanup();
  });
});

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Unpacks a sample archive with the system's GNU tar (owners, modes, devices, xattrs kept): an
 * answer independent of dataroot's own unpacker, for tests that compare with it or need a
 * writable copy of a sample root.
 */
export function untar(archive: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'dataroot-test-root-'));
  const r = spawnSync('tar', ['--numeric-owner', '--same-permissions', '--xattrs', '--xattrs-include=*', '-xf', archive, '-C', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -xf ${archive} failed: ${r.stderr}`);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

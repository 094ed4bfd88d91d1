import { closeSync, fsyncSync, lstatSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** fsync of a directory, so a rename in it is durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.dataroot-${process.pid}-${Date.now().toString(36)}`);
}

/**
 * Writes a file atomically: into a temp file in the same directory, fsync, rename over the target,
 * fsync the directory. If the content stream fails, the temp file is removed and the target is
 * untouched.
 */
export async function writeFileAtomic(path: string, content: AsyncIterable<Uint8Array> | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempName(path);
  const fh = await open(tmp, 'wx', mode);
  try {
    if (content instanceof Uint8Array) await fh.write(content);
    else for await (const c of content) await fh.write(c);
    await fh.chmod(mode);
    await fh.sync();
    await fh.close();
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (e) {
    await fh.close().catch(() => {});
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** The synchronous form for small files (metadata, repositories.json). */
export function writeFileAtomicSync(path: string, content: Uint8Array | string, mode = 0o644): void {
  const tmp = tempName(path);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** Refuses an output path whose directory does not exist (or is not one), or that is a directory itself. */
export function requireOutputDir(path: string): void {
  const dir = dirname(path);
  let ok = false;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new DatarootError('OUTPUT_DIR_MISSING', `the directory of ${path} does not exist`, { file: path });
  try {
    if (lstatSync(path).isDirectory()) throw new DatarootError('OUTPUT_IS_DIRECTORY', `${path} is a directory`, { file: path });
  } catch (e) {
    if (e instanceof DatarootError) throw e;
  }
}

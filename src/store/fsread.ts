import { DatarootError } from '../formats/errors.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import type { Confined, ReadOptions } from '../io/confined.js';
import { problem, type Problem } from './problems.js';
import type { ErrorCode } from '../formats/errorcodes.js';

/**
 * Reads of evidence that keep going: a file that is absent is `undefined`; one that cannot be
 * read as a file (a symlink, a FIFO or device, too large) is a problem with its code, listed by
 * the caller with the item it belongs to.
 */
export type Read<T> = { value: T; problem?: undefined } | { value?: undefined; problem?: Problem };

export function readBytes(fs: Confined, rel: string, o: ReadOptions): Read<Buffer> {
  try {
    const b = fs.readFile(rel, o);
    return b === undefined ? {} : { value: b };
  } catch (e) {
    if (e instanceof DatarootError) return { problem: problem(e.code, e.message, rel) };
    throw e;
  }
}

export function readText(fs: Confined, rel: string, o: ReadOptions): Read<string> {
  const r = readBytes(fs, rel, o);
  return r.value === undefined ? r : { value: r.value.toString('utf8') };
}

/** A small metadata file's text, or undefined; problems go to `out`. */
export function metaText(fs: Confined, rel: string, max: number, out: Problem[]): string | undefined {
  const r = readText(fs, rel, { max });
  if (r.problem !== undefined) out.push(r.problem);
  return r.value;
}

export type JsonResult = { ok: true; value: unknown } | { ok: false; error: string; code?: ErrorCode };

/** A JSON file: undefined when absent; parse errors and unreadable files as `{ok: false}`. */
export function readJson(fs: Confined, rel: string, o: ReadOptions): JsonResult | undefined {
  const r = readText(fs, rel, o);
  if (r.problem !== undefined) return { ok: false, error: r.problem.message, code: r.problem.code };
  if (r.value === undefined) return undefined;
  try {
    return { ok: true, value: parseJsonBounded(r.value) };
  } catch (e) {
    return { ok: false, error: (e as Error).message, ...(e instanceof DatarootError ? { code: e.code } : {}) };
  }
}

import type { ErrorCode } from '../formats/errorcodes.js';

/** A damaged or missing piece of one item: listings report it and go on. */
export interface Problem {
  code: ErrorCode;
  message: string;
  path?: string;
}

export function problem(code: ErrorCode, message: string, path?: string): Problem {
  return path === undefined ? { code, message } : { code, message, path };
}

/** A problem from an error met while reading an item: a coded error keeps its code, anything else takes `code`. */
export function problemFrom(e: unknown, code: ErrorCode, path?: string): Problem {
  const err = e as { code?: unknown; message?: unknown; name?: unknown };
  if (err !== null && typeof err === 'object' && err.name === 'DatarootError' && typeof err.code === 'string')
    return problem(err.code as ErrorCode, String(err.message), path);
  return problem(code, e instanceof Error ? e.message : String(e), path);
}

import { DatarootError } from '../../src/formats/errors.js';

/** The code of the DatarootError `fn` throws, or 'no error'; any other error is thrown again. */
export function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof DatarootError) return e.code;
    throw e;
  }
  return 'no error';
}

/** errorCode of an async `fn`. */
export async function errorCodeAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof DatarootError) return e.code;
    throw e;
  }
  return 'no error';
}

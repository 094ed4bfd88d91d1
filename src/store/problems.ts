/** A damaged or missing piece of one item: listings report it and go on. */
export interface Problem {
  code: string;
  message: string;
  path?: string;
}

export function problem(code: string, message: string, path?: string): Problem {
  return path === undefined ? { code, message } : { code, message, path };
}

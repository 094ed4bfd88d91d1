import { DatarootError } from '../errors.js';

/** Deepest nesting of arrays and objects accepted in JSON read from evidence. */
export const MAX_JSON_DEPTH = 1000;

/**
 * The deepest nesting of `[` and `{` in JSON text (outside strings), stopping as soon as it passes
 * `limit`. Linear, without recursion, so a hostile file cannot overflow the stack of whatever
 * later walks the parsed value (JSON.stringify, comparisons, renderers).
 */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/**
 * JSON.parse with a nesting bound (JSON_TOO_DEEP past it); syntax errors are thrown as by
 * JSON.parse. V8 parses any depth without recursion, so text that is not JSON fails there first,
 * fast, and only valid JSON is scanned for its depth.
 */
export function parseJsonBounded(text: string, limit = MAX_JSON_DEPTH): unknown {
  const value: unknown = JSON.parse(text);
  if (value !== null && typeof value === 'object' && jsonDepth(text, limit) > limit)
    throw new DatarootError('JSON_TOO_DEEP', `JSON nested deeper than ${limit} levels`);
  return value;
}

import { parseJsonBounded } from './bounded.js';

/**
 * JSON kept as raw text, the way Go keeps a `json.RawMessage`: the members of an object with the
 * exact text of each value, so that a number is decoded later with the precision its Go type has
 * (an int64 of Unix nanoseconds does not survive a JavaScript number).
 */
export interface RawMember {
  key: string;
  /** The value's JSON text, exactly as written. */
  raw: string;
}

const isWs = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** Index just past the JSON string that starts at `i` (a `"`). */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return text.length;
}

/** Index just past the JSON value that starts at `i`. Iterative: nesting costs a counter, not stack. */
function valueEnd(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return stringEnd(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j);
      if (d === 0x22) j = stringEnd(text, j) - 1;
      else if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        if (--depth === 0) return j + 1;
      }
    }
    return text.length;
  }
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === 0x2c || d === 0x7d || d === 0x5d || isWs(d)) break;
    j++;
  }
  return j;
}

/**
 * The members of a JSON object in document order, each value as its raw text; `undefined` when the
 * text is not JSON or not an object (`null` gives no members, as Go's decoder treats it).
 * Syntax and nesting depth are checked first (parseJsonBounded), so the scan itself meets only
 * valid JSON.
 */
export function rawMembers(text: string): RawMember[] | 'null' | undefined {
  let parsed: unknown;
  try {
    parsed = parseJsonBounded(text);
  } catch {
    return undefined;
  }
  if (parsed === null) return 'null';
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const out: RawMember[] = [];
  let i = 0;
  const skip = (): void => {
    while (i < text.length && isWs(text.charCodeAt(i))) i++;
  };
  skip();
  i++; // {
  for (;;) {
    skip();
    if (i >= text.length || text.charCodeAt(i) === 0x7d) break;
    const kEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, kEnd)) as string;
    i = kEnd;
    skip();
    i++; // :
    skip();
    const vEnd = valueEnd(text, i);
    out.push({ key, raw: text.slice(i, vEnd) });
    i = vEnd;
    skip();
    if (text.charCodeAt(i) === 0x2c) i++;
  }
  return out;
}

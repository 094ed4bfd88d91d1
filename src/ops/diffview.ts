import type { BoltChange } from './bolt.js';
import { jsonDiff, type JsonChange } from './snapdiff.js';

/**
 * The text view of a value difference in `diff`: meaning, not blobs. An added or removed JSON
 * value (a file, or a decoded BoltDB value) is shown as its leaf fields, one `path = value` line
 * each; a changed one as the changes by JSON path. Strings that hold JSON themselves (libnetwork
 * keeps `ipamV4Config` so) are decoded and shown by path too (`json.ipamV4Config<json>[0].PreferredPool`).
 * Only very long strings are shortened, with their length said.
 */

/** Lines per changed entry at most (the rest is counted). */
export const MAX_LINES = 200;
/** A string longer than this is shortened in the view. */
const MAX_STRING = 300;
/** Strings up to this size are tried as embedded JSON. */
const MAX_EMBEDDED = 1 << 20;

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function key(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
}

function join(path: string, k: string): string {
  return path === '' ? key(k) : `${path}.${key(k)}`;
}

/** A string holding a JSON object or array, decoded; undefined otherwise. */
export function embeddedJson(v: unknown): unknown {
  if (typeof v !== 'string' || v.length < 2 || v.length > MAX_EMBEDDED) return undefined;
  const c = v.trimStart()[0];
  if (c !== '{' && c !== '[') return undefined;
  try {
    const p = JSON.parse(v) as unknown;
    return p !== null && typeof p === 'object' ? p : undefined;
  } catch {
    return undefined;
  }
}

/** A scalar (or empty container) as shown. */
export function scalarText(v: unknown): string {
  if (typeof v === 'string' && v.length > MAX_STRING) return `${JSON.stringify(v.slice(0, MAX_STRING))}… (${v.length} characters)`;
  if (v === undefined) return 'undefined';
  const s = JSON.stringify(v);
  return s ?? `<${typeof v}>`;
}

/** The leaves of a value with their paths (iterative; embedded JSON strings expanded). */
export function leaves(v: unknown, path = ''): [string, string][] {
  const out: [string, string][] = [];
  const stack: [unknown, string][] = [[v, path]];
  while (stack.length > 0) {
    const [x, p] = stack.pop()!;
    const inner = embeddedJson(x);
    if (inner !== undefined) {
      stack.push([inner, `${p}<json>`]);
      continue;
    }
    if (Array.isArray(x) && x.length > 0) {
      for (let i = x.length - 1; i >= 0; i--) stack.push([x[i], `${p}[${i}]`]);
      continue;
    }
    if (isObj(x) && Object.keys(x).length > 0) {
      const ks = Object.keys(x);
      for (let i = ks.length - 1; i >= 0; i--) stack.push([x[ks[i]!], join(p, ks[i]!)]);
      continue;
    }
    out.push([p === '' ? '.' : p, scalarText(x)]);
  }
  return out;
}

/** The changes between two values by JSON path, embedded JSON strings compared by their content. */
export function changesOf(left: unknown, right: unknown, path = ''): JsonChange[] {
  const out: JsonChange[] = [];
  for (const c of jsonDiff(left, right, path)) {
    const l = c.change === 'changed' ? embeddedJson(c.left) : undefined;
    const r = c.change === 'changed' ? embeddedJson(c.right) : undefined;
    if (l !== undefined && r !== undefined) out.push(...changesOf(l, r, `${c.path === '.' ? '' : c.path}<json>`));
    else out.push(c);
  }
  return out;
}

/** `+ path = value` lines for a whole value (added or removed). */
export function valueLines(sign: '+' | '-', v: unknown, path = ''): string[] {
  return leaves(v, path).map(([p, t]) => `${sign} ${p} = ${t}`);
}

/** Lines for JSON changes: added and removed subtrees by their leaves, changed leaves as `old → new`. */
export function jsonChangeLines(changes: JsonChange[]): string[] {
  const out: string[] = [];
  for (const c of changes) {
    const p = c.path === '.' ? '' : c.path;
    if (c.change === 'added') out.push(...valueLines('+', c.right, p));
    else if (c.change === 'removed') out.push(...valueLines('-', c.left, p));
    else if (c.left === undefined) out.push(...valueLines('+', c.right, p));
    else if (c.right === undefined) out.push(...valueLines('-', c.left, p));
    else if (
      isObj(c.left) ||
      Array.isArray(c.left) ||
      embeddedJson(c.left) !== undefined ||
      isObj(c.right) ||
      Array.isArray(c.right) ||
      embeddedJson(c.right) !== undefined
    ) {
      // A type change between a container and something else: both sides in full.
      out.push(...valueLines('-', c.left, p), ...valueLines('+', c.right, p));
    } else out.push(`~ ${p === '' ? '.' : p}: ${scalarText(c.left)} → ${scalarText(c.right)}`);
  }
  return out;
}

/** Lines for the changes of a JSON file (or of a JSON value). */
export function jsonDetailLines(changes: JsonChange[]): string[] {
  const out: string[] = [];
  for (const c of changes) {
    if (c.change === 'changed' && embeddedJson(c.left) !== undefined && embeddedJson(c.right) !== undefined)
      out.push(...jsonChangeLines(changesOf(c.left, c.right, c.path === '.' ? '' : c.path)));
    else out.push(...jsonChangeLines([c]));
  }
  return out;
}

function isBucketShown(v: unknown): boolean {
  return isObj(v) && v['bucket'] === true;
}

/** Lines for BoltDB key changes: the key, then its decoded value's fields (or changes) indented under it. */
export function boltDetailLines(changes: BoltChange[]): string[] {
  const out: string[] = [];
  const sign = { added: '+', removed: '-', changed: '~' } as const;
  for (const c of changes) {
    const where = [...c.path, c.key].join(' / ');
    out.push(`${sign[c.change]} ${where}${c.bucket === true ? ' (bucket)' : ''}`);
    if (c.bucket === true) continue;
    let sub: string[] = [];
    if (c.change === 'changed') {
      if (isBucketShown(c.left) || isBucketShown(c.right)) sub = [`~ ${scalarText(c.left)} → ${scalarText(c.right)}`];
      else sub = jsonChangeLines(changesOf(c.left, c.right));
    } else {
      const v = c.change === 'added' ? c.right : c.left;
      if (v !== undefined) sub = leaves(v).map(([p, t]) => `${p} = ${t}`);
    }
    for (const l of sub) out.push(`    ${l}`);
  }
  return out;
}

/**
 * The shape of a JSON document as a Go struct decodes it, for evidence read into typed views: a
 * field of the wrong type (a number where Go has a string, an array where it has a struct) fails
 * Go's json.Unmarshal, and dataroot must not trip over it either. `null` decodes to Go's zero
 * value anywhere, so it passes unless a shape says `nonNull` (where dataroot would have to guess).
 * Fields a shape does not name are not looked at. The walk is bounded by the shape's own depth.
 */
export type Shape =
  | 'string'
  | 'number'
  | 'bool'
  | 'any'
  /** Docker's strslice.StrSlice: a string or an array of strings. */
  | 'strslice'
  | { obj: Record<string, Shape> }
  | { arr: Shape }
  | { map: Shape }
  | { nonNull: Shape };

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** The first place where `v` does not have `shape` ("State.Pid is a string, where a number is expected"), or undefined. */
export function shapeError(v: unknown, shape: Shape, path = ''): string | undefined {
  const at = path === '' ? 'the document' : path;
  const want = (what: string): string => `${at} is ${typeName(v)}, where ${what} is expected`;
  if (shape === 'any') return undefined;
  if (typeof shape === 'object' && 'nonNull' in shape) return v === null ? want('a value') : shapeError(v, shape.nonNull, path);
  if (v === null) return undefined;
  if (shape === 'string') return typeof v === 'string' ? undefined : want('a string');
  if (shape === 'number') return typeof v === 'number' ? undefined : want('a number');
  if (shape === 'bool') return typeof v === 'boolean' ? undefined : want('a boolean');
  if (shape === 'strslice') {
    if (typeof v === 'string') return undefined;
    if (!Array.isArray(v)) return want('a string or an array of strings');
    const i = v.findIndex((x) => typeof x !== 'string');
    return i < 0 ? undefined : `${path}.${i} is ${typeName(v[i])}, where a string is expected`;
  }
  const sub = (k: string | number): string => (path === '' ? String(k) : `${path}.${k}`);
  if ('arr' in shape) {
    if (!Array.isArray(v)) return want('an array');
    for (let i = 0; i < v.length; i++) {
      const e = shapeError(v[i], shape.arr, sub(i));
      if (e !== undefined) return e;
    }
    return undefined;
  }
  if (typeof v !== 'object' || Array.isArray(v)) return want('an object');
  const o = v as Record<string, unknown>;
  if ('map' in shape) {
    for (const k of Object.keys(o)) {
      const e = shapeError(o[k], shape.map, sub(k));
      if (e !== undefined) return e;
    }
    return undefined;
  }
  for (const [k, s] of Object.entries(shape.obj)) {
    if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
    const e = shapeError(o[k], s, sub(k));
    if (e !== undefined) return e;
  }
  return undefined;
}

/**
 * Stored JSON read as Go's encoding/json decodes it into a struct, for the helpers that reproduce
 * what dockerd encodes again (apitypes.ts, legacyapi.ts): a field is found by its exact key, else
 * the first key equal ignoring case; a value of another type reads as the field's zero value.
 */

export type Json = unknown;
export type Obj = Record<string, Json>;

export function isObj(v: Json): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** encoding/json's field lookup: the exact key, else the first key equal ignoring case. */
export function goField(o: Obj, name: string): Json {
  if (Object.prototype.hasOwnProperty.call(o, name)) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

/** A string field: '' unless the value is a string. */
export const goString = (v: Json): string => (typeof v === 'string' ? v : '');
/** A bool field: true only for true. */
export const goBool = (v: Json): boolean => v === true;
/** A []string field: null unless the value is an array (its non-strings dropped). */
export const goStrings = (v: Json): string[] | null => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null);
/** strslice.StrSlice: a JSON string decodes to a one-element list; a nil slice encodes as null. */
export const goStrSlice = (v: Json): string[] | null => (typeof v === 'string' ? [v] : goStrings(v));

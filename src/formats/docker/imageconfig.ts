/**
 * Image configs as `pack` writes them and `edit` changes them: pure functions over JSON values.
 * The field names and their order follow what dockerd writes for a built image (image/image.go,
 * api/types/container/config.go), so a packed config reads like one `docker build` made.
 */
import { DatarootError } from '../errors.js';
import { parseJsonBounded } from '../json/bounded.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** What the command-line flags say about an image (each absent field is left out). */
export interface ConfigSpec {
  architecture: string;
  os: string;
  variant?: string;
  created: string;
  author?: string;
  entrypoint?: string[];
  cmd?: string[];
  env: string[];
  labels: [string, string][];
  exposed: string[];
  volumes: string[];
  workdir?: string;
  user?: string;
  stopSignal?: string;
  /** One per layer: the `created_by` of its history entry. */
  history: string[];
  diffIds: string[];
}

/** RFC 3339 of seconds since the epoch, as Go prints a UTC time with no fraction. */
export function rfc3339(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** `80`, `80/tcp`, `53/udp` → `80/tcp` …; a clear error for anything else. */
export function portKey(spec: string): string {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(spec);
  if (m === null || Number(m[1]) > 65535 || Number(m[1]) === 0)
    throw new DatarootError('USAGE_BAD_PORT', `--expose ${JSON.stringify(spec)}: use PORT or PORT/tcp|udp|sctp`);
  return `${Number(m[1])}/${m[2] ?? 'tcp'}`;
}

/** `K=V` → [K, V]; the value may be empty, the key may not. */
export function keyValue(flag: string, s: string): [string, string] {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new DatarootError('USAGE_BAD_KEY_VALUE', `${flag} ${JSON.stringify(s)}: use KEY=VALUE`);
  return [s.slice(0, eq), s.slice(eq + 1)];
}

/**
 * A command as an exec array: a JSON array of strings as written (`["/hello","-v"]`), otherwise
 * words split as a POSIX shell would split them (quotes and backslashes, no expansion).
 */
export function commandWords(flag: string, s: string): string[] {
  const t = s.trim();
  if (t.startsWith('[')) {
    let v: unknown;
    try {
      v = parseJsonBounded(t);
    } catch {
      throw new DatarootError('USAGE_BAD_COMMAND', `${flag} ${JSON.stringify(s)} starts with [ but is not a JSON array`);
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
      throw new DatarootError('USAGE_BAD_COMMAND', `${flag}: the JSON form must be an array of strings`);
    return v;
  }
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1]!)) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new DatarootError('USAGE_BAD_COMMAND', `${flag} ${JSON.stringify(s)}: unterminated ${quote}`);
  if (inWord) words.push(cur);
  return words;
}

/** Env entries with later values of a key replacing earlier ones, in first-seen order. */
export function mergeEnv(base: readonly string[], add: readonly string[]): string[] {
  const out = [...base];
  for (const e of add) {
    const k = e.includes('=') ? e.slice(0, e.indexOf('=')) : e;
    const i = out.findIndex((x) => (x.includes('=') ? x.slice(0, x.indexOf('=')) : x) === k);
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The config document of a packed image (serialize with `configBytes`). */
export function buildConfig(s: ConfigSpec): JsonObject {
  const config: JsonObject = {};
  if (s.user !== undefined) config['User'] = s.user;
  if (s.exposed.length > 0) config['ExposedPorts'] = Object.fromEntries([...new Set(s.exposed.map(portKey))].sort().map((p) => [p, {}]));
  config['Env'] = mergeEnv([DEFAULT_PATH], s.env);
  if (s.cmd !== undefined) config['Cmd'] = s.cmd;
  if (s.volumes.length > 0) config['Volumes'] = Object.fromEntries([...new Set(s.volumes)].sort().map((v) => [v, {}]));
  if (s.workdir !== undefined) config['WorkingDir'] = s.workdir;
  if (s.entrypoint !== undefined) config['Entrypoint'] = s.entrypoint;
  if (s.labels.length > 0) config['Labels'] = Object.fromEntries([...new Map(s.labels)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  if (s.stopSignal !== undefined) config['StopSignal'] = s.stopSignal;
  const doc: JsonObject = { architecture: s.architecture };
  if (s.author !== undefined) doc['author'] = s.author;
  doc['config'] = config;
  doc['created'] = s.created;
  doc['history'] = s.history.map((h) => ({ created: s.created, created_by: h }));
  doc['os'] = s.os;
  doc['rootfs'] = { type: 'layers', diff_ids: s.diffIds };
  if (s.variant !== undefined) doc['variant'] = s.variant;
  return doc;
}

/** The bytes of a config: compact JSON, as dockerd stores it. */
export function configBytes(doc: JsonObject): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc));
}

/** A config file given verbatim: it must be a JSON object with rootfs.diff_ids. */
export function parseConfigFile(bytes: Uint8Array, file: string): JsonObject {
  let v: unknown;
  try {
    v = parseJsonBounded(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new DatarootError('PACK_CONFIG_INVALID', `${file} is not JSON (${(e as Error).message})`, { file });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new DatarootError('PACK_CONFIG_INVALID', `${file} is not a JSON object`, { file });
  const rootfs = (v as JsonObject)['rootfs'];
  const ids = rootfs !== null && typeof rootfs === 'object' && !Array.isArray(rootfs) ? rootfs['diff_ids'] : undefined;
  if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string' && /^sha256:[a-f0-9]{64}$/.test(x))) {
    throw new DatarootError('PACK_CONFIG_INVALID', `${file} has no rootfs.diff_ids list of sha256 digests: docker load would refuse it`, { file });
  }
  return v as JsonObject;
}

/** The diff_ids of a config document. */
export function diffIdsOf(doc: JsonObject): string[] {
  const rootfs = doc['rootfs'] as JsonObject | undefined;
  const ids = rootfs?.['diff_ids'];
  return Array.isArray(ids) ? (ids as string[]) : [];
}

/** An edit of a config, applied in the order given on the command line. */
export type ConfigEdit =
  | { op: 'set-label'; key: string; value: string }
  | { op: 'rm-label'; key: string }
  | { op: 'set-env'; entry: string }
  | { op: 'entrypoint'; words: string[] }
  | { op: 'cmd'; words: string[] };

function section(doc: JsonObject): JsonObject {
  const c = doc['config'];
  if (c !== null && typeof c === 'object' && !Array.isArray(c)) return c;
  const made: JsonObject = {};
  doc['config'] = made;
  return made;
}

/** Applies one edit to a config document (in place); keys keep their place, new ones are added. */
export function applyConfigEdit(doc: JsonObject, e: ConfigEdit): void {
  const c = section(doc);
  switch (e.op) {
    case 'set-label': {
      const labels = c['Labels'] !== null && typeof c['Labels'] === 'object' && !Array.isArray(c['Labels']) ? c['Labels'] : {};
      labels[e.key] = e.value;
      c['Labels'] = labels;
      break;
    }
    case 'rm-label': {
      const labels = c['Labels'];
      if (labels === null || typeof labels !== 'object' || Array.isArray(labels) || !(e.key in labels)) {
        throw new DatarootError('EDIT_NO_SUCH_LABEL', `the image has no label ${JSON.stringify(e.key)}`);
      }
      delete labels[e.key];
      break;
    }
    case 'set-env': {
      const env = Array.isArray(c['Env']) ? (c['Env'] as string[]) : [];
      c['Env'] = mergeEnv(env, [e.entry]);
      break;
    }
    case 'entrypoint':
      c['Entrypoint'] = e.words.length === 0 ? null : e.words;
      break;
    case 'cmd':
      c['Cmd'] = e.words.length === 0 ? null : e.words;
      break;
  }
}

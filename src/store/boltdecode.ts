import { createRequire } from 'node:module';

/** node:crypto on first use (only --values redacted needs it): short commands start faster. */
const sha256Hex = (b: Uint8Array): string =>
  (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).createHash('sha256').update(b).digest('hex');
import { printableText, utf8, utf8OrUndefined } from '../formats/bytes.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { decodeAny, decodeAnyValue } from '../formats/containerd/any.js';
import { uvarintAt } from '../formats/containerd/values.js';

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** How `bolt dump --format json` shows values. */
export type ValueMode = 'auto' | 'hex' | 'base64' | 'utf8' | 'json' | 'redacted';
export const VALUE_MODES: readonly ValueMode[] = ['auto', 'hex', 'base64', 'utf8', 'json', 'redacted'];

/** Which Docker component wrote a file, judged from its top-level buckets. */
export type BoltKind = 'libnetwork' | 'volumes' | 'containerd' | 'buildkit' | 'generic';

export function kindOf(topLevel: readonly string[]): BoltKind {
  if (topLevel.includes('libnetwork')) return 'libnetwork';
  if (topLevel.includes('volumes')) return 'volumes';
  if (topLevel.includes('v1')) return 'containerd';
  if (topLevel.some((b) => ['_result', '_links', '_main', '_records', '_index'].includes(b))) return 'buildkit';
  return 'generic';
}

export type Shown = string | number | boolean | null | { [k: string]: unknown } | unknown[];

/** A key as text when printable UTF-8, else `hex:<hex>`. */
export function showKey(k: Uint8Array): string {
  return printableText(k) ?? `hex:${toHex(k)}`;
}

function tryJson(b: Uint8Array): { ok: true; value: unknown } | { ok: false } {
  const first = b[0];
  if (first !== 0x7b && first !== 0x5b && first !== 0x22) return { ok: false };
  const s = utf8OrUndefined(b);
  if (s === undefined) return { ok: false };
  try {
    return { ok: true, value: parseJsonBounded(s) };
  } catch {
    return { ok: false };
  }
}

export function showValue(v: Uint8Array, mode: ValueMode): Shown {
  switch (mode) {
    case 'hex':
      return { hex: toHex(v) };
    case 'base64':
      return { base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
    case 'utf8':
      return utf8(v);
    case 'redacted':
      return `<redacted len:${v.length} sha256:${sha256Hex(v)}>`;
    case 'json': {
      const j = tryJson(v);
      if (j.ok) return { json: j.value };
      return showValue(v, 'auto');
    }
    case 'auto': {
      const t = printableText(v);
      return t !== undefined ? t : { hex: toHex(v) };
    }
  }
}

/** Go's binary.Varint (zig-zag LEB128); undefined unless it consumes exactly the bytes. */
export function goVarint(b: Uint8Array): number | undefined {
  const u = goUvarint(b);
  if (u === undefined) return undefined;
  const x = u >> 1n;
  const n = (u & 1n) === 0n ? x : -(x + 1n);
  return Number.isSafeInteger(Number(n)) ? Number(n) : undefined;
}

export function goUvarint(b: Uint8Array): bigint | undefined {
  if (b.length === 0 || b.length > 10) return undefined;
  let x = 0n;
  let s = 0n;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x80) {
      if (i !== b.length - 1) return undefined;
      return x | (BigInt(c) << s);
    }
    x |= BigInt(c & 0x7f) << s;
    s += 7n;
  }
  return undefined;
}

/** Go time.MarshalBinary (version 1 or 2) as an RFC 3339 string with nanoseconds. */
export function goBinaryTime(b: Uint8Array): string | undefined {
  if (!((b.length === 15 && b[0] === 1) || (b.length === 16 && b[0] === 2))) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const sec = v.getBigInt64(1, false) - 62135596800n;
  const nsec = v.getInt32(9, false);
  const zoneMin = v.getInt16(13, false);
  if (nsec < 0 || nsec >= 1e9) return undefined;
  const ms = Number(sec) * 1000;
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return undefined;
  const iso = d.toISOString().replace(/\.\d{3}Z$/, '');
  const frac = nsec === 0 ? '' : `.${String(nsec).padStart(9, '0').replace(/0+$/, '')}`;
  const zone =
    zoneMin === -1 || zoneMin === 0
      ? 'Z'
      : `${zoneMin < 0 ? '-' : '+'}${String(Math.floor(Math.abs(zoneMin) / 60)).padStart(2, '0')}:${String(Math.abs(zoneMin) % 60).padStart(2, '0')}`;
  return `${iso}${frac}${zone}`;
}

const TIME_KEYS = new Set(['createdat', 'updatedat', 'expireat']);
const VARINT_KEYS = new Set(['size', 'version', 'inodes']);
const SNAPSHOT_KINDS = ['unknown', 'view', 'active', 'committed'];

/**
 * Docker-aware decoding of one value, given the file kind and the bucket path (as text).
 * Falls back to `showValue(v, 'auto')` where the format is not known.
 */
export function decodeDockerValue(kind: BoltKind, path: readonly string[], key: string, v: Uint8Array): Shown {
  // libnetwork values: an 8-byte little-endian dbIndex, then JSON (just the index for counters).
  if (kind === 'libnetwork' && v.length === 8) return { index: Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true)) };
  if (kind === 'libnetwork' && v.length > 8 && (v[8] === 0x7b || v[8] === 0x5b)) {
    const j = tryJson(v.subarray(8));
    if (j.ok) {
      const idx = new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
      return { index: Number.isSafeInteger(Number(idx)) ? Number(idx) : idx.toString(), json: j.value };
    }
  }
  if (kind === 'volumes' || kind === 'buildkit' || kind === 'generic') {
    const j = tryJson(v);
    if (j.ok) return { json: j.value };
  }
  if (kind === 'containerd') {
    if (TIME_KEYS.has(key)) {
      const t = goBinaryTime(v);
      if (t !== undefined) return { time: t };
    }
    if (VARINT_KEYS.has(key)) {
      const n = goVarint(v);
      if (n !== undefined) return { varint: n };
    }
    if (key === 'id' && path.includes('snapshots')) {
      const n = goUvarint(v);
      if (n !== undefined) return { uvarint: Number(n) };
    }
    if (key === 'kind' && v.length === 1 && v[0]! < SNAPSHOT_KINDS.length) return { kind: SNAPSHOT_KINDS[v[0]!]! };
    const any = containerdAny(path, key, v);
    if (any !== undefined) return any;
    if (path[path.length - 1] === 'parents' && key.startsWith('hex:')) {
      const link = parentLink(key.slice(4));
      if (link !== undefined) return { ...link, child: showValue(v, 'auto') };
    }
    const j = tryJson(v);
    if (j.ok) return { json: j.value };
  }
  return showValue(v, 'auto');
}

/**
 * containerd's protobuf `Any` values (a container's or sandbox's `spec`, `runtime/options`,
 * `extensions/*`): the type URL and the decoded value (JSON for the runtime-spec types, Go field
 * names for runc's options, field numbers otherwise).
 */
function containerdAny(path: readonly string[], key: string, v: Uint8Array): Shown | undefined {
  const inRecord = path.includes('containers') || path.includes('sandboxes');
  if (!inRecord) return undefined;
  const isAny = key === 'spec' || (key === 'options' && path[path.length - 1] === 'runtime') || path[path.length - 1] === 'extensions';
  if (!isAny) return undefined;
  try {
    const a = decodeAny(v);
    const d = decodeAnyValue(a);
    return {
      any: { typeUrl: a.typeUrl, [d.decoded === 'json' ? 'json' : d.decoded === 'proto' ? 'fields' : d.decoded === 'fields' ? 'protobuf' : 'empty']: d.value },
    };
  } catch {
    return undefined;
  }
}

/** A key of a snapshotter's `v1/parents` index: `<uvarint parent id>\0<uvarint child id>`. */
function parentLink(hex: string): { parentId: number; childId: number } | undefined {
  const b = Uint8Array.from(Buffer.from(hex, 'hex'));
  const p = uvarintAt(b, 0);
  if (p === undefined || b[p.next] !== 0) return undefined;
  const c = uvarintAt(b, p.next + 1);
  if (c === undefined || c.next !== b.length) return undefined;
  return { parentId: Number(p.value), childId: Number(c.value) };
}

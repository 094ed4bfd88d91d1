import { DatarootError } from '../errors.js';
import { toHex, utf8OrUndefined } from '../bytes.js';
import { readFields, type WireField } from './wire.js';

/**
 * `google.protobuf.Any` as containerd stores it (a container's spec, runtime options and
 * extensions): field 1 the type URL, field 2 the value. containerd's typeurl registers the OCI
 * runtime-spec types as JSON (`types.containerd.io/opencontainers/runtime-spec/1/Spec`), so their
 * value is JSON text; runtime options are protobuf messages, decoded here for the runtimes
 * containerd ships.
 */
export interface AnyValue {
  typeUrl: string;
  value: Uint8Array;
}

export function decodeAny(b: Uint8Array): AnyValue {
  let typeUrl: string | undefined;
  let value: Uint8Array = new Uint8Array(0);
  for (const f of readFields(b)) {
    if (f.field === 1 && f.wire === 2) {
      typeUrl = utf8OrUndefined(f.bytes);
      if (typeUrl === undefined) throw new DatarootError('PROTO_INVALID', 'the type URL of an Any is not UTF-8');
    } else if (f.field === 2 && f.wire === 2) value = f.bytes;
  }
  if (typeUrl === undefined) throw new DatarootError('PROTO_INVALID', 'an Any without a type URL');
  return { typeUrl, value };
}

/** containerd.runc.v1.Options (io.containerd.runc.v1/v2 shims), field numbers → Go field names. */
const RUNC_OPTIONS: Record<number, [string, 'bool' | 'string' | 'uint32']> = {
  1: ['NoPivotRoot', 'bool'],
  2: ['NoNewKeyring', 'bool'],
  3: ['ShimCgroup', 'string'],
  4: ['IoUid', 'uint32'],
  5: ['IoGid', 'uint32'],
  6: ['BinaryName', 'string'],
  7: ['Root', 'string'],
  8: ['CriuPath', 'string'],
  9: ['SystemdCgroup', 'bool'],
  10: ['CriuImagePath', 'string'],
  11: ['CriuWorkPath', 'string'],
  12: ['TaskApiAddress', 'string'],
  13: ['TaskApiVersion', 'uint32'],
};

/** containerd.linux.runc.RuncOptions (the io.containerd.runtime.v1.linux runtime). */
const LINUX_RUNC_OPTIONS: Record<number, [string, 'bool' | 'string' | 'uint32']> = {
  1: ['Runtime', 'string'],
  2: ['RuntimeRoot', 'string'],
  3: ['CriuPath', 'string'],
  4: ['SystemdCgroup', 'bool'],
};

const MESSAGES: Record<string, Record<number, [string, 'bool' | 'string' | 'uint32']>> = {
  'containerd.runc.v1.Options': RUNC_OPTIONS,
  'io.containerd.runc.v1.Options': RUNC_OPTIONS,
  'containerd.linux.runc.RuncOptions': LINUX_RUNC_OPTIONS,
};

function scalar(f: WireField, kind: 'bool' | 'string' | 'uint32'): unknown {
  if (kind === 'string') return f.wire === 2 ? (utf8OrUndefined(f.bytes) ?? toHex(f.bytes)) : undefined;
  if (f.wire !== 0) return undefined;
  return kind === 'bool' ? f.varint !== 0n : Number(f.varint & 0xffffffffn);
}

/** A protobuf message of unknown type: its fields by number (strings when UTF-8, else hex). */
export function genericFields(b: Uint8Array): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of readFields(b)) {
    let v: unknown;
    if (f.wire === 0) v = Number.isSafeInteger(Number(f.varint)) ? Number(f.varint) : f.varint.toString();
    else if (f.wire === 1) v = f.fixed64.toString();
    else if (f.wire === 5) v = f.fixed32;
    else v = utf8OrUndefined(f.bytes) ?? { hex: toHex(f.bytes) };
    const k = String(f.field);
    if (k in out) out[k] = [...(Array.isArray(out[k]) ? (out[k] as unknown[]) : [out[k]]), v];
    else out[k] = v;
  }
  return out;
}

/**
 * The value of an Any, decoded: JSON for the JSON-registered types (and any value that is JSON),
 * the Go field names of the runtime options containerd knows, else the generic field list.
 * `decoded` says which.
 */
export function decodeAnyValue(a: AnyValue): { decoded: 'json' | 'proto' | 'fields' | 'empty'; value: unknown } {
  if (a.value.length === 0) return { decoded: 'empty', value: null };
  const first = a.value[0];
  if (a.typeUrl.startsWith('types.containerd.io/') || first === 0x7b || first === 0x5b) {
    const s = utf8OrUndefined(a.value);
    if (s !== undefined) {
      try {
        return { decoded: 'json', value: JSON.parse(s) as unknown };
      } catch {
        /* not JSON after all */
      }
    }
  }
  const msg = MESSAGES[a.typeUrl];
  if (msg !== undefined) {
    const out: Record<string, unknown> = {};
    for (const f of readFields(a.value)) {
      const d = msg[f.field];
      if (d === undefined) continue;
      const v = scalar(f, d[1]);
      if (v !== undefined) out[d[0]] = v;
    }
    return { decoded: 'proto', value: out };
  }
  return { decoded: 'fields', value: genericFields(a.value) };
}

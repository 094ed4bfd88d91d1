/**
 * The API shapes and CLI formatting of Docker 1.9 (API 1.21), for data-roots written before the
 * 1.10 content-addressed store. Each helper names the moby v1.9.1 source it follows. Like
 * apitypes.ts, a Go struct is reproduced as dockerd encodes it after decoding the stored JSON:
 * every field in struct order, zero values where the input had none, `omitempty` fields dropped
 * when empty, keys matched case-insensitively (an exact match first), unknown keys dropped.
 */

import { containerConfigHead } from './apitypes.js';
import { goBool, goField, goStrings, goStrSlice, goString, isObj, type Json, type Obj } from './godecode.js';

const num = (v: Json): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
/** A Go map: encoding/json writes its keys sorted. */
export function goMap(v: Json): Obj | null {
  if (!isObj(v)) return null;
  const out: Obj = {};
  for (const k of Object.keys(v).sort()) out[k] = v[k];
  return out;
}
const map = goMap;

/** runconfig.Config of v1.9.1 (runconfig/config.go), as json.Marshal writes it. */
export function v19Config(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  const out = containerConfigHead(o);
  const exposed = goField(o, 'ExposedPorts');
  if (isObj(exposed) && Object.keys(exposed).length > 0) out['ExposedPorts'] = goMap(exposed);
  const publish = goString(goField(o, 'PublishService'));
  if (publish !== '') out['PublishService'] = publish;
  out['Tty'] = goBool(goField(o, 'Tty'));
  out['OpenStdin'] = goBool(goField(o, 'OpenStdin'));
  out['StdinOnce'] = goBool(goField(o, 'StdinOnce'));
  out['Env'] = goStrings(goField(o, 'Env'));
  out['Cmd'] = goStrSlice(goField(o, 'Cmd'));
  out['Image'] = goString(goField(o, 'Image'));
  out['Volumes'] = map(goField(o, 'Volumes'));
  out['WorkingDir'] = goString(goField(o, 'WorkingDir'));
  out['Entrypoint'] = goStrSlice(goField(o, 'Entrypoint'));
  if (goBool(goField(o, 'NetworkDisabled'))) out['NetworkDisabled'] = true;
  const mac = goString(goField(o, 'MacAddress'));
  if (mac !== '') out['MacAddress'] = mac;
  out['OnBuild'] = goStrings(goField(o, 'OnBuild'));
  out['Labels'] = map(goField(o, 'Labels'));
  const stop = goString(goField(o, 'StopSignal'));
  if (stop !== '') out['StopSignal'] = stop;
  return out;
}

function objList(v: Json, fields: [string, 'str' | 'num'][]): Obj[] | null {
  if (!Array.isArray(v)) return null;
  return v.map((e) => {
    const o = isObj(e) ? e : {};
    const out: Obj = {};
    for (const [k, t] of fields) out[k] = t === 'str' ? goString(goField(o, k)) : num(goField(o, k));
    return out;
  });
}

/** runconfig.LxcConfig (v1.9.1 runconfig/hostconfig.go:158): a list of {Key, Value}, or a map on input. */
function lxcConf(v: Json): Obj[] | null {
  if (Array.isArray(v))
    return objList(v, [
      ['Key', 'str'],
      ['Value', 'str'],
    ]);
  if (isObj(v))
    return Object.keys(v)
      .sort()
      .map((k) => ({ Key: k, Value: goString(v[k]) }));
  return null;
}

/**
 * runconfig.HostConfig of v1.9.1 (runconfig/hostconfig.go), as json.Marshal writes it. `links`
 * replaces Links (inspect appends the links of linkgraph.db, `daemon/inspect.go:getInspectData`).
 */
export function v19HostConfig(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  const rp = isObj(goField(o, 'RestartPolicy')) ? (goField(o, 'RestartPolicy') as Obj) : {};
  const lc = isObj(goField(o, 'LogConfig')) ? (goField(o, 'LogConfig') as Obj) : {};
  const swappiness = goField(o, 'MemorySwappiness');
  const cs = goField(o, 'ConsoleSize');
  return {
    Binds: goStrings(goField(o, 'Binds')),
    ContainerIDFile: goString(goField(o, 'ContainerIDFile')),
    LxcConf: lxcConf(goField(o, 'LxcConf')),
    Memory: num(goField(o, 'Memory')),
    MemoryReservation: num(goField(o, 'MemoryReservation')),
    MemorySwap: num(goField(o, 'MemorySwap')),
    KernelMemory: num(goField(o, 'KernelMemory')),
    CpuShares: num(goField(o, 'CpuShares')),
    CpuPeriod: num(goField(o, 'CpuPeriod')),
    CpusetCpus: goString(goField(o, 'CpusetCpus')),
    CpusetMems: goString(goField(o, 'CpusetMems')),
    CpuQuota: num(goField(o, 'CpuQuota')),
    BlkioWeight: num(goField(o, 'BlkioWeight')),
    OomKillDisable: goBool(goField(o, 'OomKillDisable')),
    MemorySwappiness: typeof swappiness === 'number' ? swappiness : null,
    Privileged: goBool(goField(o, 'Privileged')),
    PortBindings: map(goField(o, 'PortBindings')),
    Links: goStrings(goField(o, 'Links')),
    PublishAllPorts: goBool(goField(o, 'PublishAllPorts')),
    Dns: goStrings(goField(o, 'Dns')),
    DnsOptions: goStrings(goField(o, 'DnsOptions')),
    DnsSearch: goStrings(goField(o, 'DnsSearch')),
    ExtraHosts: goStrings(goField(o, 'ExtraHosts')),
    VolumesFrom: goStrings(goField(o, 'VolumesFrom')),
    Devices: objList(goField(o, 'Devices'), [
      ['PathOnHost', 'str'],
      ['PathInContainer', 'str'],
      ['CgroupPermissions', 'str'],
    ]),
    NetworkMode: goString(goField(o, 'NetworkMode')),
    IpcMode: goString(goField(o, 'IpcMode')),
    PidMode: goString(goField(o, 'PidMode')),
    UTSMode: goString(goField(o, 'UTSMode')),
    CapAdd: goStrSlice(goField(o, 'CapAdd')),
    CapDrop: goStrSlice(goField(o, 'CapDrop')),
    GroupAdd: goStrings(goField(o, 'GroupAdd')),
    RestartPolicy: { Name: goString(goField(rp, 'Name')), MaximumRetryCount: num(goField(rp, 'MaximumRetryCount')) },
    SecurityOpt: goStrings(goField(o, 'SecurityOpt')),
    ReadonlyRootfs: goBool(goField(o, 'ReadonlyRootfs')),
    Ulimits: objList(goField(o, 'Ulimits'), [
      ['Name', 'str'],
      ['Hard', 'num'],
      ['Soft', 'num'],
    ]),
    LogConfig: { Type: goString(goField(lc, 'Type')), Config: map(goField(lc, 'Config')) },
    CgroupParent: goString(goField(o, 'CgroupParent')),
    ConsoleSize: Array.isArray(cs) && cs.length === 2 ? [num(cs[0]), num(cs[1])] : [0, 0],
    VolumeDriver: goString(goField(o, 'VolumeDriver')),
  };
}

/** network.EndpointSettings of v1.9.1 (daemon/network/settings.go). */
export function v19EndpointSettings(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  return {
    EndpointID: goString(goField(o, 'EndpointID')),
    Gateway: goString(goField(o, 'Gateway')),
    IPAddress: goString(goField(o, 'IPAddress')),
    IPPrefixLen: num(goField(o, 'IPPrefixLen')),
    IPv6Gateway: goString(goField(o, 'IPv6Gateway')),
    GlobalIPv6Address: goString(goField(o, 'GlobalIPv6Address')),
    GlobalIPv6PrefixLen: num(goField(o, 'GlobalIPv6PrefixLen')),
    MacAddress: goString(goField(o, 'MacAddress')),
  };
}

/** pkg/units HumanDuration of v1.9.1 (pkg/units/duration.go): hours are truncated, weeks last three months. */
export function humanDuration19(seconds: number): string {
  const s = Math.trunc(seconds);
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${s} seconds`;
  const m = Math.trunc(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.trunc(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.trunc(h / 24)} days`;
  if (h < 24 * 30 * 3) return `${Math.trunc(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.trunc(h / 24 / 30)} months`;
  return `${Math.trunc(h / 24 / 365)} years`;
}

/** Go's `%.4g` of a value in [0, 1000]: four significant digits, trailing zeros dropped, no exponent there. */
function g4(v: number): string {
  if (v === 0) return '0';
  const p = v.toPrecision(4);
  return p.includes('.') ? p.replace(/0+$/, '').replace(/\.$/, '') : p;
}

/** pkg/units HumanSize of v1.9.1 (pkg/units/size.go): `%.4g %s`, decimal units: "2.746 MB", "796 kB". */
export function humanSize19(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${g4(v)} ${units[i]}`;
}

/** pkg/parsers.ParseRepositoryTag of v1.9.1: `repo@digest`, `repo:tag` (a tag holds no `/`), or `repo`. */
export function parseRepositoryTag19(s: string): { repo: string; ref: string } {
  const at = s.indexOf('@');
  if (at >= 0) {
    const parts = s.split('@');
    return { repo: parts[0]!, ref: parts[1]! };
  }
  const colon = s.lastIndexOf(':');
  if (colon < 0) return { repo: s, ref: '' };
  const tag = s.slice(colon + 1);
  return tag.includes('/') ? { repo: s, ref: '' } : { repo: s.slice(0, colon), ref: tag };
}

/** utils.DigestReference of v1.9.1: a ref is a digest when it holds a `:`. */
export function isDigestRef19(ref: string): boolean {
  return ref.includes(':');
}

/** utils.ImageReference of v1.9.1: `repo@digest` or `repo:tag`. */
export function imageReference19(repo: string, ref: string): string {
  return isDigestRef19(ref) ? `${repo}@${ref}` : `${repo}:${ref}`;
}

/**
 * registry.NormalizeLocalName of v1.9.1 (registry/config.go:384) for the default configuration:
 * the official index's names lose `docker.io/` (or `index.docker.io/`) and `library/`; any other
 * registry's names keep their host.
 */
export function normalizeLocalName19(name: string): string {
  let n = name;
  const slash = n.indexOf('/');
  if (slash >= 0) {
    const first = n.slice(0, slash);
    if (first === 'docker.io' || first === 'index.docker.io') n = n.slice(slash + 1);
    else if (first.includes('.') || first.includes(':') || first === 'localhost') return n;
  }
  return n.startsWith('library/') ? n.slice('library/'.length) : n;
}

/** pkg/stringid.TruncateID of v1.9.1: the first 12 characters (after any `algo:` prefix). */
export function truncateId19(id: string): string {
  const colon = id.indexOf(':');
  const s = colon >= 0 ? id.slice(colon + 1) : id;
  return s.length > 12 ? s.slice(0, 12) : s;
}

/** Go's strconv.Quote for the COMMAND column (printable ASCII kept, the rest escaped). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0x80 && c < 0xa0) out += `\\u00${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/**
 * Docker API shapes that dockerd produces by decoding stored JSON into Go structs and encoding
 * them again: every field present in struct order, zero values where the input had none,
 * `omitempty` fields dropped when empty. Go's decoder matches field names case-insensitively
 * (an exact match first) and drops unknown fields; these helpers do the same.
 */

type Json = unknown;
type Obj = Record<string, Json>;

function isObj(v: Json): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Go's field lookup: the exact key, else the first key equal ignoring case. */
function field(o: Obj, name: string): Json {
  if (Object.prototype.hasOwnProperty.call(o, name)) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

const str = (v: Json): string => (typeof v === 'string' ? v : '');
const bool = (v: Json): boolean => v === true;
const strList = (v: Json): string[] | null => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null);
/** strslice.StrSlice: a JSON string decodes to a one-element list. */
const strSlice = (v: Json): string[] | null => (typeof v === 'string' ? [v] : strList(v));
const map = (v: Json): Obj | null => (isObj(v) ? v : null);
const nonEmptyMap = (v: Json): Obj | undefined => (isObj(v) && Object.keys(v).length > 0 ? v : undefined);

/** api/types/container.Config as dockerd encodes it (image Config/ContainerConfig, container Config). */
export function goContainerConfig(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  const out: Obj = {
    Hostname: str(field(o, 'Hostname')),
    Domainname: str(field(o, 'Domainname')),
    User: str(field(o, 'User')),
    AttachStdin: bool(field(o, 'AttachStdin')),
    AttachStdout: bool(field(o, 'AttachStdout')),
    AttachStderr: bool(field(o, 'AttachStderr')),
  };
  const exposed = nonEmptyMap(field(o, 'ExposedPorts'));
  if (exposed !== undefined) out['ExposedPorts'] = exposed;
  out['Tty'] = bool(field(o, 'Tty'));
  out['OpenStdin'] = bool(field(o, 'OpenStdin'));
  out['StdinOnce'] = bool(field(o, 'StdinOnce'));
  out['Env'] = strList(field(o, 'Env'));
  out['Cmd'] = strSlice(field(o, 'Cmd'));
  const hc = field(o, 'Healthcheck');
  if (isObj(hc)) out['Healthcheck'] = hc;
  if (bool(field(o, 'ArgsEscaped'))) out['ArgsEscaped'] = true;
  out['Image'] = str(field(o, 'Image'));
  out['Volumes'] = map(field(o, 'Volumes'));
  out['WorkingDir'] = str(field(o, 'WorkingDir'));
  out['Entrypoint'] = strSlice(field(o, 'Entrypoint'));
  if (bool(field(o, 'NetworkDisabled'))) out['NetworkDisabled'] = true;
  const mac = str(field(o, 'MacAddress'));
  if (mac !== '') out['MacAddress'] = mac;
  out['OnBuild'] = strList(field(o, 'OnBuild'));
  out['Labels'] = map(field(o, 'Labels'));
  const stopSignal = str(field(o, 'StopSignal'));
  if (stopSignal !== '') out['StopSignal'] = stopSignal;
  const stopTimeout = field(o, 'StopTimeout');
  if (typeof stopTimeout === 'number') out['StopTimeout'] = stopTimeout;
  const shell = strSlice(field(o, 'Shell'));
  if (shell !== null && shell.length > 0) out['Shell'] = shell;
  return out;
}

/** network.EndpointSettings as the API prints it (the stored IPAMOperational is internal). */
export function goEndpointSettings(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  return {
    IPAMConfig: isObj(field(o, 'IPAMConfig')) ? field(o, 'IPAMConfig') : null,
    Links: strList(field(o, 'Links')),
    Aliases: strList(field(o, 'Aliases')),
    NetworkID: str(field(o, 'NetworkID')),
    EndpointID: str(field(o, 'EndpointID')),
    Gateway: str(field(o, 'Gateway')),
    IPAddress: str(field(o, 'IPAddress')),
    IPPrefixLen: typeof field(o, 'IPPrefixLen') === 'number' ? field(o, 'IPPrefixLen') : 0,
    IPv6Gateway: str(field(o, 'IPv6Gateway')),
    GlobalIPv6Address: str(field(o, 'GlobalIPv6Address')),
    GlobalIPv6PrefixLen: typeof field(o, 'GlobalIPv6PrefixLen') === 'number' ? field(o, 'GlobalIPv6PrefixLen') : 0,
    MacAddress: str(field(o, 'MacAddress')),
    DriverOpts: map(field(o, 'DriverOpts')),
  };
}

/** The endpoint summary `docker ps` shows: no links or aliases (they are not copied). */
export function goSummaryEndpoint(raw: Json): Obj {
  const e = goEndpointSettings(raw);
  return { ...e, Links: null, Aliases: null, DriverOpts: null };
}

/**
 * go-units HumanDuration, as `docker ps` prints "Exited (0) 5 minutes ago". Durations are in
 * seconds.
 */
export function humanDuration(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(s / 3600 / 24 / 365)} years`;
}

/** go-units HumanSizeWithPrecision (decimal units); the docker CLI prints image sizes with 3 digits. */
export function humanSize(bytes: number, precision = 3): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(precision))}${units[i]}`;
}

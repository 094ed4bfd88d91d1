/**
 * Docker API shapes that dockerd produces by decoding stored JSON into Go structs and encoding
 * them again: every field present in struct order, zero values where the input had none,
 * `omitempty` fields dropped when empty. Go's decoder matches field names case-insensitively
 * (an exact match first) and drops unknown fields; these helpers do the same.
 */

import { goBool, goField, goStrings, goStrSlice, goString, isObj, type Json, type Obj } from './godecode.js';

const map = (v: Json): Obj | null => (isObj(v) ? v : null);
const nonEmptyMap = (v: Json): Obj | undefined => (isObj(v) && Object.keys(v).length > 0 ? v : undefined);

/** The fields container.Config begins with, the same since Docker 1.9: Hostname … AttachStderr. */
export function containerConfigHead(o: Obj): Obj {
  return {
    Hostname: goString(goField(o, 'Hostname')),
    Domainname: goString(goField(o, 'Domainname')),
    User: goString(goField(o, 'User')),
    AttachStdin: goBool(goField(o, 'AttachStdin')),
    AttachStdout: goBool(goField(o, 'AttachStdout')),
    AttachStderr: goBool(goField(o, 'AttachStderr')),
  };
}

/** api/types/container.Config as dockerd encodes it (image Config/ContainerConfig, container Config). */
export function goContainerConfig(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  const out = containerConfigHead(o);
  const exposed = nonEmptyMap(goField(o, 'ExposedPorts'));
  if (exposed !== undefined) out['ExposedPorts'] = exposed;
  out['Tty'] = goBool(goField(o, 'Tty'));
  out['OpenStdin'] = goBool(goField(o, 'OpenStdin'));
  out['StdinOnce'] = goBool(goField(o, 'StdinOnce'));
  out['Env'] = goStrings(goField(o, 'Env'));
  out['Cmd'] = goStrSlice(goField(o, 'Cmd'));
  const hc = goField(o, 'Healthcheck');
  if (isObj(hc)) out['Healthcheck'] = hc;
  if (goBool(goField(o, 'ArgsEscaped'))) out['ArgsEscaped'] = true;
  out['Image'] = goString(goField(o, 'Image'));
  out['Volumes'] = map(goField(o, 'Volumes'));
  out['WorkingDir'] = goString(goField(o, 'WorkingDir'));
  out['Entrypoint'] = goStrSlice(goField(o, 'Entrypoint'));
  if (goBool(goField(o, 'NetworkDisabled'))) out['NetworkDisabled'] = true;
  const mac = goString(goField(o, 'MacAddress'));
  if (mac !== '') out['MacAddress'] = mac;
  out['OnBuild'] = goStrings(goField(o, 'OnBuild'));
  out['Labels'] = map(goField(o, 'Labels'));
  const stopSignal = goString(goField(o, 'StopSignal'));
  if (stopSignal !== '') out['StopSignal'] = stopSignal;
  const stopTimeout = goField(o, 'StopTimeout');
  if (typeof stopTimeout === 'number') out['StopTimeout'] = stopTimeout;
  const shell = goStrSlice(goField(o, 'Shell'));
  if (shell !== null && shell.length > 0) out['Shell'] = shell;
  return out;
}

/** network.EndpointSettings as the API prints it (the stored IPAMOperational is internal). */
export function goEndpointSettings(raw: Json): Obj {
  const o = isObj(raw) ? raw : {};
  return {
    IPAMConfig: isObj(goField(o, 'IPAMConfig')) ? goField(o, 'IPAMConfig') : null,
    Links: goStrings(goField(o, 'Links')),
    Aliases: goStrings(goField(o, 'Aliases')),
    NetworkID: goString(goField(o, 'NetworkID')),
    EndpointID: goString(goField(o, 'EndpointID')),
    Gateway: goString(goField(o, 'Gateway')),
    IPAddress: goString(goField(o, 'IPAddress')),
    IPPrefixLen: typeof goField(o, 'IPPrefixLen') === 'number' ? goField(o, 'IPPrefixLen') : 0,
    IPv6Gateway: goString(goField(o, 'IPv6Gateway')),
    GlobalIPv6Address: goString(goField(o, 'GlobalIPv6Address')),
    GlobalIPv6PrefixLen: typeof goField(o, 'GlobalIPv6PrefixLen') === 'number' ? goField(o, 'GlobalIPv6PrefixLen') : 0,
    MacAddress: goString(goField(o, 'MacAddress')),
    DriverOpts: map(goField(o, 'DriverOpts')),
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

import { DatarootError } from '../formats/errors.js';
import { GO_ZERO_TIME, goRFC3339Nano } from '../formats/docker/gotime.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';
import type { KvRecord } from '../store/networks.js';
import { parseJsonBounded } from '../formats/json/bounded.js';

type Obj = Record<string, unknown>;

interface IpamConf {
  PreferredPool?: string;
  SubPool?: string;
  Gateway?: string;
  AuxAddresses?: Record<string, string> | null;
}

interface IpamInfo {
  PoolID?: string;
  IPAMData?: string;
}

/** libnetwork keeps ipamV4Config/ipamV4Info as JSON strings inside the network's JSON. */
function parseEmbedded<T>(v: unknown, what: string, problems: Problem[]): T[] {
  if (typeof v !== 'string' || v === '') return [];
  try {
    const parsed = parseJsonBounded(v);
    return Array.isArray(parsed) ? (parsed as T[]) : [];
  } catch {
    problems.push(problem('NETWORK_RECORD_INVALID', `${what} is not JSON`));
    return [];
  }
}

/** buildIpamResources of the daemon: the configured pools, else the allocated ones. */
function ipamConfig(n: Obj, problems: Problem[]): Obj[] {
  const out: Obj[] = [];
  const entry = (subnet: string | undefined, range: string | undefined, gw: string | undefined, aux: Record<string, string> | null | undefined): Obj => {
    const e: Obj = {};
    if (subnet) e['Subnet'] = subnet;
    if (range) e['IPRange'] = range;
    if (gw) e['Gateway'] = gw;
    if (aux && Object.keys(aux).length > 0) e['AuxiliaryAddresses'] = aux;
    return e;
  };
  const fromInfo = (infos: IpamInfo[], v6: boolean): void => {
    for (const i of infos) {
      let data: { Pool?: string; Gateway?: string } = {};
      try {
        data = parseJsonBounded(i.IPAMData ?? '{}') as typeof data;
      } catch {
        problems.push(problem('NETWORK_RECORD_INVALID', 'IPAMData is not JSON'));
      }
      if (v6 && !data.Pool) continue;
      out.push(entry(data.Pool, undefined, data.Gateway?.split('/')[0], undefined));
    }
  };
  const v4 = parseEmbedded<IpamConf>(n['ipamV4Config'], 'ipamV4Config', problems).filter((c) => c.PreferredPool);
  for (const c of v4) out.push(entry(c.PreferredPool, c.SubPool, c.Gateway, c.AuxAddresses));
  if (out.length === 0) fromInfo(parseEmbedded<IpamInfo>(n['ipamV4Info'], 'ipamV4Info', problems), false);
  const v6 = parseEmbedded<IpamConf>(n['ipamV6Config'], 'ipamV6Config', problems).filter((c) => c.PreferredPool);
  for (const c of v6) out.push(entry(c.PreferredPool, c.SubPool, c.Gateway, c.AuxAddresses));
  if (v6.length === 0) fromInfo(parseEmbedded<IpamInfo>(n['ipamV6Info'], 'ipamV6Info', problems), true);
  return out;
}

/** types.NetworkResource as `docker network inspect` prints it, from a libnetwork `network` record. */
export function networkObject(store: Store, rec: KvRecord): Obj {
  const n = rec.value;
  const problems: Problem[] = [];
  const generic = n['generic'] as Record<string, unknown> | undefined;
  const opts = generic?.['com.docker.network.generic'];
  const labels = n['labels'];
  const configFrom = typeof n['configFrom'] === 'string' ? n['configFrom'] : '';
  const id = typeof n['id'] === 'string' ? n['id'] : (rec.ids[0] ?? '');
  const endpoints = store.networkKv.records.filter((r) => r.kind === 'endpoint' && r.ids[0] === id);
  return {
    Name: n['name'] ?? '',
    Id: id,
    Created: typeof n['created'] === 'string' ? goRFC3339Nano(n['created']) : GO_ZERO_TIME,
    Scope: n['scope'] ?? '',
    Driver: n['networkType'] ?? '',
    EnableIPv6: n['enableIPv6'] === true,
    IPAM: { Driver: n['ipamType'] ?? '', Options: n['ipamOptions'] ?? null, Config: ipamConfig(n, problems) },
    Internal: n['internal'] === true,
    Attachable: n['attachable'] === true,
    Ingress: n['ingress'] === true,
    ConfigFrom: { Network: configFrom },
    ConfigOnly: n['configOnly'] === true,
    // Attached containers are those with a live sandbox; a stopped daemon has none.
    Containers: {},
    Options: opts !== null && typeof opts === 'object' ? opts : {},
    Labels: labels !== null && typeof labels === 'object' ? labels : {},
    Dataroot: {
      key: rec.key,
      index: rec.index,
      // Endpoint records left by a daemon that did not stop cleanly (dockerd removes them at start).
      staleEndpoints: endpoints.map((e) => ({ id: e.ids[1] ?? '', name: e.value['name'] ?? '' })),
      problems,
    },
  };
}

export function listNetworks(store: Store): { networks: Obj[]; problems: Problem[] } {
  const { records, problems } = store.networkKv;
  const networks = records.filter((r) => r.kind === 'network').map((r) => networkObject(store, r));
  networks.sort((a, b) => String(a['Name']).localeCompare(String(b['Name'])));
  return { networks, problems };
}

/** By full ID, name, or unique ID prefix (dockerd's order of lookup). */
export function inspectNetwork(store: Store, q: string): Obj {
  const { networks } = listNetworks(store);
  const byId = networks.find((n) => n['Id'] === q);
  if (byId) return byId;
  const byName = networks.filter((n) => n['Name'] === q);
  if (byName.length === 1) return byName[0]!;
  const byPrefix = networks.filter((n) => String(n['Id']).startsWith(q));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byName.length > 1 || byPrefix.length > 1) throw new DatarootError('NETWORK_AMBIGUOUS', `network ${q} is ambiguous`);
  throw new DatarootError('NETWORK_NOT_FOUND', `No such network: ${q}`);
}

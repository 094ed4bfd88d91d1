import type { Confined } from '../io/confined.js';
import type { ContainerRecord } from './containers.js';
import { LAYOUT as L } from './layout.js';

/**
 * Where a container's logs are on disk, as dockerd 20.10's container.StartLogger and the drivers'
 * LogFile find them (daemon/logger/loggerutils/logfile.go):
 *
 * - `json-file`: `containers/<id>/<id>-json.log`, rotated to `.1` … `.<max-file − 1>` (each
 *   possibly `.N.gz`), one JSON object per line;
 * - `local`: `containers/<id>/local-logs/container.log` and its rotations, size-framed protobuf
 *   records (max-file 5 and compression by default);
 * - any driver that cannot read back (syslog, fluentd, gelf, awslogs, splunk, …): the dual-logging
 *   cache `containers/<id>/container-cached.log`, in the local driver's format, unless
 *   `cache-disabled` is true;
 * - `journald` reads back from the host's journal and `none` keeps nothing: no file of the root.
 */
export type LogFormat = 'json-file' | 'local';

export interface LogPlan {
  /** LogConfig.Type of hostconfig.json ('' when absent). */
  driver: string;
  /** How the files are read; undefined when the root holds no logs for this driver. */
  format: LogFormat | undefined;
  /** `driver` (its own files) or `cache` (the dual-logging cache). */
  via: 'driver' | 'cache';
  /** The live file, relative to the root. */
  current: string;
  /** dockerd reads rotations `.1` … `.<maxFiles − 1>`. */
  maxFiles: number;
  /** LogConfig.Config as stored. */
  config: Record<string, string>;
  /** Why nothing can be read (for `format` undefined). */
  why?: string;
  /** Notes (a guessed driver). */
  notes: string[];
}

/** Drivers dockerd 20.10 reads back itself (logger.LogReader). */
const READERS = new Set(['json-file', 'local', 'journald']);

function atoi(s: string | undefined): number | undefined {
  if (s === undefined || !/^[+-]?\d{1,18}$/.test(s)) return undefined;
  return Number(s);
}

function parseBool(s: string | undefined): boolean | undefined {
  // Go's strconv.ParseBool.
  if (s === undefined) return undefined;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

export function logPlanOf(fs: Confined, c: ContainerRecord): LogPlan {
  const dir = `${L.containersDir}/${c.id}`;
  const lc = c.hostConfig?.['LogConfig'] as { Type?: unknown; Config?: unknown } | undefined;
  let driver = typeof lc?.Type === 'string' ? lc.Type : '';
  const config: Record<string, string> = {};
  if (lc?.Config !== null && typeof lc?.Config === 'object' && !Array.isArray(lc.Config)) {
    for (const [k, v] of Object.entries(lc.Config as Record<string, unknown>)) if (typeof v === 'string') config[k] = v;
  }
  const notes: string[] = [];
  if (driver === '') {
    // No driver recorded (a hand-made or very old container): the files decide.
    if (fs.exists(`${dir}/${c.id}-json.log`)) driver = 'json-file';
    else if (fs.exists(`${dir}/local-logs`)) driver = 'local';
    notes.push(`hostconfig.json names no log driver: ${driver === '' ? 'no log file found' : `read as ${driver} (the files present)`}`);
  }
  const base = { driver, via: 'driver' as const, config, notes };
  switch (driver) {
    case 'json-file':
      return { ...base, format: 'json-file', current: `${dir}/${c.id}-json.log`, maxFiles: Math.max(1, atoi(config['max-file']) ?? 1) };
    case 'local':
      return { ...base, format: 'local', current: `${dir}/local-logs/container.log`, maxFiles: atoi(config['max-file']) ?? 5 };
    case 'journald':
      return {
        ...base,
        format: undefined,
        current: '',
        maxFiles: 0,
        why: `the journald driver keeps this container's logs in the host's journal, not in the data-root (journalctl CONTAINER_ID=${c.id.slice(0, 12)} on the host reads them)`,
      };
    case 'none':
      return { ...base, format: undefined, current: '', maxFiles: 0, why: 'the none driver keeps no logs' };
    case '':
      return { ...base, format: undefined, current: '', maxFiles: 0, why: 'no log driver is recorded and no log file is present' };
    default:
      break;
  }
  if (READERS.has(driver)) return { ...base, format: undefined, current: '', maxFiles: 0, why: `the ${driver} driver keeps no file in the data-root` };
  // The dual-logging cache: the local driver's New() with the driver's own options map.
  if (parseBool(config['cache-disabled']) === true) {
    return {
      ...base,
      format: undefined,
      current: '',
      maxFiles: 0,
      why: `the ${driver} driver sends logs elsewhere and its dual-logging cache is disabled (cache-disabled=${config['cache-disabled']}): the data-root keeps none`,
    };
  }
  const cache = `${dir}/container-cached.log`;
  if (!fs.exists(cache) && !fs.exists(`${cache}.1`) && !fs.exists(`${cache}.1.gz`)) {
    return {
      ...base,
      format: undefined,
      current: '',
      maxFiles: 0,
      why: `the ${driver} driver sends logs elsewhere and its dual-logging cache (container-cached.log) is absent`,
    };
  }
  return { ...base, via: 'cache', format: 'local', current: cache, maxFiles: atoi(config['max-file']) ?? 5 };
}

export interface RotatedFile {
  /** The rotation number (1 is the newest rotation). */
  index: number;
  rel: string;
  compressed: boolean;
}

/**
 * The rotations dockerd's openRotatedFiles opens, oldest first: for N from max-file − 1 down to 1,
 * `.N`, else `.N.gz`. With `all`, every rotation present in the directory, whatever max-file says.
 */
export function rotatedFiles(fs: Confined, plan: LogPlan, all: boolean): RotatedFile[] {
  const slash = plan.current.lastIndexOf('/');
  const dir = plan.current.slice(0, slash);
  const name = plan.current.slice(slash + 1);
  const present = new Map<number, { plain: boolean; gz: boolean }>();
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^${esc}\\.([1-9][0-9]{0,5})(\\.gz)?$`);
  for (const n of fs.names(dir)) {
    const m = re.exec(n);
    if (m === null) continue;
    const i = Number(m[1]);
    const p = present.get(i) ?? { plain: false, gz: false };
    if (m[2] === undefined) p.plain = true;
    else p.gz = true;
    present.set(i, p);
  }
  let top = plan.maxFiles - 1;
  if (all) {
    top = 0;
    for (const i of present.keys()) if (i > top) top = i;
  }
  const out: RotatedFile[] = [];
  for (let i = top; i >= 1; i--) {
    const p = present.get(i);
    if (p === undefined) continue;
    out.push(p.plain ? { index: i, rel: `${dir}/${name}.${i}`, compressed: false } : { index: i, rel: `${dir}/${name}.${i}.gz`, compressed: true });
  }
  return out;
}

import { InvalidArgumentError, Option, type Command } from 'commander';
import { compareInstant, dockerTimestamp, formatRFC3339Nano, type Instant } from '../formats/docker/timestamp.js';
import { ExternalSorter } from '../io/extsort.js';
import { fileEvents, objectLabel, timeline, type FileTimes, type TimelineEvent } from '../ops/timeline.js';
import type { Ctx, GlobalOpts } from './context.js';
import { jsonText, safeText } from './render.js';
import { reportProblems } from './storectx.js';
import { withDockerStores } from './cddocker.js';
import { legacyUnsupported } from './legacy.js';
import { timelineContainerd } from '../ops/timelinecd.js';
import { dockerMetaOf } from '../ops/whichcd.js';

/**
 * `dataroot timeline`: every time of the root as one stream sorted by time (sorted runs merged, so
 * a root of millions of files is sorted in bounded memory), as text, CSV, JSON lines, or a TSK 3.x
 * body file for `mactime -b` (one line per file with its four times, one per daemon event).
 */
type Format = 'text' | 'csv' | 'jsonl' | 'bodyfile';

interface TimelineCliOptions {
  format: Format;
  since?: Instant;
  until?: Instant;
  layers: boolean;
  files: boolean;
}

function timeArg(v: string): Instant {
  const r = dockerTimestamp(v, Date.now(), -new Date().getTimezoneOffset() * 60);
  if (!r.ok) throw new InvalidArgumentError(`${r.error} (a duration like 24h, an RFC 3339 time, a date, or Unix seconds)`);
  return { sec: r.sec, nsec: r.nsec, off: 0 };
}

const KEY_BASE = 100_000_000_000;

/** A sortable line: fixed-width time first, then the event as JSON. */
function sortLine(e: TimelineEvent): string {
  return `${String(e.time.sec + KEY_BASE).padStart(13, '0')}${String(e.time.nsec).padStart(9, '0')}\t${JSON.stringify(e)}`;
}

export function eventJson(e: TimelineEvent): Record<string, unknown> {
  return {
    time: formatRFC3339Nano({ ...e.time, off: 0 }),
    unix: `${e.time.sec}.${String(e.time.nsec).padStart(9, '0')}`,
    event: e.event,
    object: e.object,
    ...(e.path !== undefined ? { path: e.path } : {}),
    source: e.source,
    ...(e.detail !== undefined ? { detail: e.detail } : {}),
    ...(e.file !== undefined ? { file: { ...e.file, mode: modeString(e.file.type, e.file.mode) } } : {}),
  };
}

/** ls-style permissions: `rwxr-xr-x` with setuid, setgid and sticky bits. */
export function permString(mode: number): string {
  const r = (b: number, c: string): string => ((mode & b) !== 0 ? c : '-');
  const x = (b: number, special: number, on: string, onNoX: string): string => ((mode & special) !== 0 ? ((mode & b) !== 0 ? on : onNoX) : r(b, 'x'));
  return `${r(0o400, 'r')}${r(0o200, 'w')}${x(0o100, 0o4000, 's', 'S')}${r(0o40, 'r')}${r(0o20, 'w')}${x(0o10, 0o2000, 's', 'S')}${r(0o4, 'r')}${r(0o2, 'w')}${x(0o1, 0o1000, 't', 'T')}`;
}

const TSK_TYPE: Record<string, string> = { file: 'r', dir: 'd', symlink: 'l', fifo: 'p', char: 'c', block: 'b', socket: 's', unknown: '-' };

/** TSK's mode_as_string: `<meta type>/<name type><permissions>`, as `fls -m` writes it. */
export function modeString(type: string, mode: number): string {
  const t = TSK_TYPE[type] ?? '-';
  return `${t}/${t}${permString(mode)}`;
}

/** A body-file name field: `|` and `%` percent-encoded (mactime decodes %XX), control characters too. */
export function bodyName(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[%|\u0000-\u001f\u007f]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

const secs = (t: Instant | undefined): number => (t === undefined || t.sec < 0 ? 0 : t.sec);

/** TSK 3.x body file: MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime. */
export function bodyFileLine(f: FileTimes, keep: (t: Instant) => boolean): string | undefined {
  const k = (t: Instant | undefined): number => (t !== undefined && keep(t) ? secs(t) : 0);
  const a = k(f.atime);
  const m = k(f.mtime);
  const c = k(f.ctime);
  const b = k(f.btime);
  if (a === 0 && m === 0 && c === 0 && b === 0) return undefined;
  const name = f.path !== undefined ? `${f.path} [${objectLabel(f.object)}] (${f.source})` : `${f.source} [${objectLabel(f.object)}]`;
  return `0|${bodyName(name)}|${f.file.inode}|${modeString(f.file.type, f.file.mode)}|${f.file.uid}|${f.file.gid}|${f.file.size}|${a}|${m}|${c}|${b}\n`;
}

/** A daemon event as a body-file line: its time in all four columns (one `macb` line in mactime). */
export function bodyEventLine(e: TimelineEvent): string | undefined {
  const s = secs(e.time);
  if (s === 0) return undefined;
  const name = `[${e.event}] ${objectLabel(e.object)}${e.detail !== undefined ? `: ${e.detail}` : ''} (${e.source})`;
  return `0|${bodyName(name)}|0|-/----------|0|0|0|${s}|${s}|${s}|${s}\n`;
}

function csvField(v: unknown): string {
  const s =
    v === undefined || v === null
      ? ''
      : typeof v === 'string'
        ? v
        : typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint'
          ? v.toString()
          : (JSON.stringify(v) ?? '');
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const CSV_HEADER = 'time,unix,event,object_type,object_id,object_name,path,source,detail,type,mode,uid,gid,size,inode\n';

export function csvLine(e: TimelineEvent): string {
  const f = e.file;
  return `${[
    formatRFC3339Nano({ ...e.time, off: 0 }),
    `${e.time.sec}.${String(e.time.nsec).padStart(9, '0')}`,
    e.event,
    e.object.type,
    e.object.id,
    e.object.name,
    e.path,
    e.source,
    e.detail,
    f?.type,
    f === undefined ? undefined : modeString(f.type, f.mode),
    f?.uid,
    f?.gid,
    f?.size,
    f?.inode,
  ]
    .map(csvField)
    .join(',')}\n`;
}

function textLine(e: TimelineEvent): string {
  const where = e.path !== undefined ? `${e.path}  (${e.source})` : e.source;
  return `${formatRFC3339Nano({ ...e.time, off: 0 })}  ${e.event.padEnd(18)}  ${objectLabel(e.object)}  ${where}${e.detail !== undefined ? `  ${e.detail}` : ''}\n`;
}

export async function runTimeline(g: GlobalOpts, ctx: Ctx, o: TimelineCliOptions): Promise<void> {
  const keep = (t: Instant): boolean =>
    (o.since === undefined || compareInstant(t, o.since) >= 0) && (o.until === undefined || compareInstant(t, o.until) <= 0);
  const format: Format = g.json ? 'jsonl' : o.format;
  await withDockerStores(g, ctx, async (s) => {
    if (s.legacy !== undefined) throw legacyUnsupported(s.legacy.root);
    const cd = s.containerd;
    const run =
      s.graph !== undefined || cd === undefined
        ? timeline(s.graph!(), { layers: o.layers, files: o.files })
        : timelineContainerd(cd.cd, {
            layers: o.layers,
            files: o.files,
            prefix: cd.cd.location.how === 'docker-daemon' ? 'containerd/daemon' : '',
            docker: cd.docker === undefined || cd.cd.location.how === 'root-itself' ? undefined : dockerMetaOf(cd.docker),
          });
    let out = '';
    const write = (line: string): void => {
      out += line;
      if (out.length > 1 << 16) {
        ctx.stdout.write(out);
        out = '';
      }
    };
    if (format === 'bodyfile') {
      for await (const it of run.items) {
        const line = it.kind === 'file' ? bodyFileLine(it.file, keep) : keep(it.event.time) ? bodyEventLine(it.event) : undefined;
        if (line !== undefined) write(line);
      }
    } else {
      const runLines = Number(ctx.env['DATAROOT_TIMELINE_RUN_LINES'] ?? '') || 200_000;
      const sorter = new ExternalSorter(runLines);
      try {
        for await (const it of run.items) {
          for (const e of it.kind === 'file' ? fileEvents(it.file) : [it.event]) if (keep(e.time)) sorter.add(sortLine(e));
        }
        if (format === 'csv') write(CSV_HEADER);
        for (const line of sorter.sorted()) {
          const ev = JSON.parse(line.slice(line.indexOf('\t') + 1)) as TimelineEvent;
          write(format === 'jsonl' ? `${jsonText(eventJson(ev))}\n` : format === 'csv' ? csvLine(ev) : safeText(textLine(ev), '\n'));
        }
      } finally {
        sorter.cleanup();
      }
    }
    if (out !== '') ctx.stdout.write(out);
    reportProblems(ctx, run.problems);
  });
}

export function registerTimeline(program: Command, ctx: Ctx): void {
  program
    .command('timeline')
    .description(
      'every time in the root, sorted: image, container, volume and network events, log ends, and file times of metadata, rw layers and volumes (--layers: image layers too)',
    )
    .addOption(
      new Option('--format <format>', 'text, csv, jsonl (also --json), or bodyfile (TSK 3.x, for mactime -b)')
        .choices(['text', 'csv', 'jsonl', 'bodyfile'])
        .default('text'),
    )
    .addOption(new Option('--since <time>', 'events at or after a time: 24h, 2024-01-02T15:04:05Z, 2024-01-02, or Unix seconds').argParser(timeArg))
    .addOption(new Option('--until <time>', 'events at or before a time (same forms)').argParser(timeArg))
    .option('--layers', 'also the files of image layers (every driver layer directory)', false)
    .option('--no-files', "only the daemon's events (images, containers, volumes, networks, log ends), no file times")
    .action(async (o: TimelineCliOptions, cmd: Command) => {
      await runTimeline(cmd.optsWithGlobals<GlobalOpts>(), ctx, o);
    });
}

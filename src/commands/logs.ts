import { InvalidArgumentError, Option, type Command } from 'commander';
import { dockerTimestamp, formatRFC3339NanoFixed, formatRFC3339Nano, queryEscape } from '../formats/docker/timestamp.js';
import { parseSize } from '../io/archive.js';
import { readContainerLogs, type LogRecord, type LogsOptions } from '../ops/logs.js';
import type { Ctx, GlobalOpts, Out } from './context.js';
import { jsonText, safeText } from './render.js';
import { dockerMetaOf } from '../ops/whichcd.js';
import type { LogSource } from '../ops/logs.js';
import { withDockerStores } from './cddocker.js';
import { legacyUnsupported } from './legacy.js';
import { reportProblems } from './storectx.js';

/** The containers of the root: its graphdriver store, or on Docker's containerd image store its containers/ (logs are the same files). */
export async function withLogSource<T>(g: GlobalOpts, ctx: Ctx, fn: (s: LogSource) => Promise<T>): Promise<T> {
  return withDockerStores(g, ctx, async (s) => {
    if (s.legacy !== undefined) throw legacyUnsupported(s.legacy.root);
    if (s.graph !== undefined || s.containerd?.docker === undefined) return fn(s.graph!());
    return fn(dockerMetaOf(s.containerd.docker));
  });
}

/**
 * `dataroot logs <container>`: what `docker logs` prints for the same flags on the live daemon,
 * byte for byte (container stdout on stdout, stderr on stderr; a TTY container's all on stdout).
 * On a terminal the bytes are escaped as text; piped or redirected they are written as they are.
 * `--json`: one NDJSON record per message.
 */
export interface LogsCliOptions {
  since?: { sec: number; nsec: number };
  until?: { sec: number; nsec: number };
  tail: number;
  timestamps: boolean;
  details: boolean;
  stream?: 'stdout' | 'stderr';
  allRotated: boolean;
  maxDecompressed?: number;
}

function timeArg(v: string): { sec: number; nsec: number } {
  const r = dockerTimestamp(v, Date.now(), -new Date().getTimezoneOffset() * 60);
  if (!r.ok) throw new InvalidArgumentError(`${r.error} (a duration like 10m, an RFC 3339 time, a date, or Unix seconds)`);
  return { sec: r.sec, nsec: r.nsec };
}

function sizeArg(v: string): number {
  try {
    return parseSize(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** `--tail`: `all` or an integer (negative means all, as for dockerd). */
export function tailArg(v: string): number {
  if (v === 'all') return -1;
  if (!/^[+-]?\d{1,18}$/.test(v)) throw new InvalidArgumentError('expected a number of lines or "all"');
  const n = Number(v);
  return n < 0 ? -1 : n;
}

const enc = new TextEncoder();
const TD = new TextDecoder();

/** The attrs prefix of `--details`: sorted by key, key=value query-escaped, joined by commas. */
export function detailsPrefix(attrs: [string, string][]): string {
  const sorted = [...attrs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return sorted.map(([k, v]) => `${queryEscape(enc.encode(k))}=${queryEscape(enc.encode(v))}`).join(',');
}

/** The bytes `docker logs` writes for one message. */
export function messageBytes(r: LogRecord, o: { timestamps: boolean; details: boolean }): Uint8Array {
  let prefix = '';
  if (o.timestamps) prefix += `${formatRFC3339NanoFixed(r.time)} `;
  if (o.details) prefix += `${detailsPrefix(r.attrs)} `;
  if (prefix === '') return r.line;
  const p = enc.encode(prefix);
  const out = new Uint8Array(p.length + r.line.length);
  out.set(p);
  out.set(r.line, p.length);
  return out;
}

/** Writes raw bytes, or escaped text on a terminal. Consecutive bytes of one stream are batched. */
export class StreamWriter {
  private buf: Uint8Array[] = [];
  private size = 0;
  private to: 'out' | 'err' | undefined;
  /** The last byte written to stderr did not end a line (dataroot's own lines then start on a new one). */
  errOpen = false;
  constructor(private readonly ctx: Ctx) {}
  write(to: 'out' | 'err', b: Uint8Array): void {
    if (this.to !== to) this.flush();
    this.to = to;
    this.buf.push(b);
    this.size += b.length;
    if (this.size >= 1 << 16) this.flush();
  }
  flush(): void {
    if (this.to === undefined || this.buf.length === 0) return;
    const out: Out = this.to === 'out' ? this.ctx.stdout : this.ctx.stderr;
    const tty = this.to === 'out' ? this.ctx.stdoutTTY === true : this.ctx.stderrTTY;
    const all = Buffer.concat(this.buf);
    if (this.to === 'err' && all.length > 0) this.errOpen = all[all.length - 1] !== 0x0a;
    if (tty) out.write(safeText(TD.decode(all), '\n\t'));
    else out.write(all);
    this.buf = [];
    this.size = 0;
  }
}

function recordJson(r: LogRecord): Record<string, unknown> {
  const text = TD.decode(r.line);
  const exact = Buffer.from(text, 'utf8').equals(Buffer.from(r.line));
  return {
    stream: r.stream,
    time: formatRFC3339Nano(r.time),
    line: text,
    ...(exact ? {} : { lineBase64: Buffer.from(r.line).toString('base64') }),
    ...(r.attrs.length > 0 ? { attrs: Object.fromEntries(r.attrs) } : {}),
    ...(r.partial !== undefined ? { partial: r.partial } : {}),
    file: r.file,
    offset: r.offset,
  };
}

export async function runLogs(g: GlobalOpts, ctx: Ctx, q: string, o: LogsCliOptions): Promise<void> {
  await withLogSource(g, ctx, async (s) => {
    const opts: LogsOptions = { tail: o.tail, allRotated: o.allRotated };
    if (o.maxDecompressed !== undefined) opts.maxDecompressed = o.maxDecompressed;
    if (o.since !== undefined) opts.since = o.since;
    if (o.until !== undefined) opts.until = o.until;
    const r = await readContainerLogs(s, q, opts);
    const w = new StreamWriter(ctx);
    for await (const batch of r.records) {
      for (const rec of batch) {
        const isOut = rec.stream === 'stdout';
        const isErr = rec.stream === 'stderr';
        if (o.stream !== undefined && rec.stream !== o.stream) continue;
        if (g.json) {
          w.write('out', enc.encode(`${jsonText(recordJson(rec))}\n`));
          continue;
        }
        // dockerd writes only these two streams; a TTY container's come out on stdout.
        if (!isOut && !isErr) continue;
        w.write(isOut || r.tty ? 'out' : 'err', messageBytes(rec, o));
      }
    }
    w.flush();
    const own = r.notes.length > 0 || r.problems.length > 0 || r.files.some((f) => f.skipped !== undefined && f.skipped !== 'absent');
    if (own && w.errOpen) ctx.stderr.write('\n');
    for (const n of r.notes) ctx.stderr.write(`dataroot: note: ${safeText(n)}\n`);
    for (const f of r.files)
      if (f.skipped !== undefined && f.skipped !== 'absent') ctx.stderr.write(`dataroot: note: ${safeText(`${f.file} is not read: ${f.skipped}`)}\n`);
    reportProblems(ctx, r.problems);
  });
}

export function registerLogs(program: Command, ctx: Ctx): void {
  program
    .command('logs')
    .argument('<container>', 'ID, name or unique ID prefix')
    .description(
      "a container's logs as docker logs prints them (json-file, local, and the dual-logging cache of other drivers), from the files on disk; --json: one NDJSON record per message",
    )
    .addOption(
      new Option('--since <time>', 'messages since a time: 10m, 2024-01-02T15:04:05Z, 2024-01-02, or Unix seconds (as docker logs)').argParser(timeArg),
    )
    .addOption(new Option('--until <time>', 'messages up to a time (same forms)').argParser(timeArg))
    .addOption(
      new Option('-n, --tail <N>', 'the last N messages (counted over both streams, as dockerd counts them), or all').argParser(tailArg).default(-1, 'all'),
    )
    .option('-t, --timestamps', 'prefix each message with its time (RFC 3339, nanoseconds)', false)
    .option('--details', 'prefix each message with its attributes (labels, env, tag), as docker logs --details', false)
    .addOption(new Option('--stream <name>', 'only this stream').choices(['stdout', 'stderr']))
    .option('--all-rotated', 'also read rotations dockerd 20.10 would not (beyond max-file, or before an old compressed one with --since)', false)
    .addOption(
      new Option(
        '--max-decompressed <size>',
        'most bytes a compressed rotation may decompress to (default: its max-size and room for one message; 1G without max-size)',
      ).argParser(sizeArg),
    )
    .action(async (q: string, o: LogsCliOptions, cmd: Command) => {
      await runLogs(cmd.optsWithGlobals<GlobalOpts>(), ctx, q, o);
    });
}

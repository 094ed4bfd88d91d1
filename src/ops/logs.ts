import { DatarootError } from '../formats/errors.js';
import { parseGzipHeader, GZIP_HEADER_MAX } from '../formats/gzip/header.js';
import { decodeJsonLogLine } from '../formats/logs/jsonlog.js';
import { decodeLogEntry, LogEntryError, type PartialMeta } from '../formats/logs/logentry.js';
import { frames, lines } from '../formats/logs/stream.js';
import { compareInstant, instantFromNanos, parseRFC3339, type Instant } from '../formats/docker/timestamp.js';
import type { OpenFile } from '../io/confined.js';
import { fileReader, gunzipChunks, rangeChunks, tailFrames, tailLines } from '../io/logfiles.js';
import type { ContainerRecord } from '../store/containers.js';
import { logPlanOf, rotatedFiles, type LogPlan } from '../store/logs.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';
import { requireContainer } from './containers.js';

/**
 * `docker logs` offline: the messages dockerd 20.10's log readers (jsonfilelog, local, the
 * dual-logging cache) would send for the same request, in the same order, from the same files —
 * tail counted per file from the newest as `tailFiles` counts it, `--since` skipping and `--until`
 * stopping as there, compressed rotations skipped as `openRotatedFiles` skips them. Everything is
 * streamed: a file of any size costs one line (json-file) or one record (local) of memory, and a
 * compressed rotation is bounded in what it may decompress to.
 */
export interface LogsOptions {
  since?: { sec: number; nsec: number };
  until?: { sec: number; nsec: number };
  /** Lines from the end (counted over both streams, as dockerd counts them); -1 for all, 0 for none. */
  tail: number;
  /** Read every rotation present, also those dockerd 20.10 does not (beyond max-file, or before an old compressed one with --since). */
  allRotated?: boolean;
  /** Most bytes one compressed rotation may decompress to (default: max-size and room for one message, or 1 GiB without max-size). */
  maxDecompressed?: number;
}

export interface LogRecord {
  stream: string;
  time: Instant;
  /** The bytes `docker logs` prints for this message (json-file's `log`; local's line, with the newline dockerd adds). */
  line: Uint8Array;
  attrs: [string, string][];
  partial?: PartialMeta;
  /** The file it came from (relative to the root) and its offset there (in the decompressed stream for .gz). */
  file: string;
  offset: number;
}

export interface LogFileUse {
  file: string;
  compressed: boolean;
  read: boolean;
  /** Why dockerd does not read it. */
  skipped?: string;
}

export interface LogsRead {
  container: ContainerRecord;
  plan: LogPlan;
  /** Config.Tty: dockerd does not multiplex, everything goes to stdout. */
  tty: boolean;
  files: LogFileUse[];
  notes: string[];
  /** Findings while reading (filled as the records are consumed). */
  problems: Problem[];
  /** The messages, in batches. */
  records: AsyncGenerator<LogRecord[]>;
}

/** A line longer than this is not one dockerd wrote (16 KiB of output escaped, plus attrs). */
const MAX_LINE = 64 << 20;

/** units.FromHumanSize, generously (binary multipliers): the bound for decompressed rotations. */
function maxSizeOf(plan: LogPlan): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(plan.config['max-size'] ?? '');
  if (m === null) return undefined;
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't' | 'p'];
  return Number(m[1]) * mult;
}

interface Source {
  file: string;
  f: OpenFile;
  compressed: boolean;
  /** Plain: [start, end) of the file; compressed: the first `skip` units are passed over, bytes from `end` on are not read. */
  start: number;
  end: number;
  skip: number;
}

const before = (t: Instant, x: { sec: number; nsec: number }): boolean => compareInstant(t, { ...x, off: 0 }) < 0;

/** Where logs are read: a Store, or the Docker side of a root on the containerd image store. */
export type LogSource = Pick<Store, 'fs' | 'lookupContainer'>;

export async function readContainerLogs(store: LogSource, q: string, o: LogsOptions): Promise<LogsRead> {
  const c = requireContainer(store, q);
  const plan = logPlanOf(store.fs, c);
  const name = c.config?.Name ?? c.id.slice(0, 12);
  if (plan.format === undefined) {
    throw new DatarootError(
      'LOGS_NOT_ON_DISK',
      `container ${name.replace(/^\//, '')} (${c.id.slice(0, 12)}) logs with ${plan.driver === '' ? 'no driver' : `the ${plan.driver} driver`}: ${plan.why ?? 'nothing on disk'}`,
      { driver: plan.driver },
    );
  }
  const notes = [...plan.notes];
  const st = c.config?.State;
  if (st?.Dead === true || st?.RemovalInProgress === true)
    notes.push(`dockerd refuses the logs of a container that is ${st.Dead === true ? 'dead' : 'being removed'}; they are shown anyway`);
  if (plan.via === 'cache') notes.push(`read from the dual-logging cache (${plan.current}): the ${plan.driver} driver itself sent the logs elsewhere`);
  const problems: Problem[] = [];
  const files: LogFileUse[] = [];
  const opened: OpenFile[] = [];
  // dockerd rotates a file once it reached max-size, before the next message: a rotation holds at
  // most max-size plus one message (16 KiB escaped for json-file, 1,000,000 bytes for local).
  const maxSize = maxSizeOf(plan);
  const maxDecompressed = o.maxDecompressed ?? (maxSize === undefined ? 2 ** 30 : Math.min(64 * 2 ** 30, Math.ceil(maxSize) + (2 << 20)));
  const sources: Source[] = [];
  try {
    // Rotations, oldest first, as openRotatedFiles opens them.
    let stop = false;
    for (const r of rotatedFiles(store.fs, plan, o.allRotated === true)) {
      if (stop) {
        files.push({
          file: r.rel,
          compressed: r.compressed,
          read: false,
          skipped: 'an older compressed rotation ended before --since, and dockerd 20.10 stops there (--all-rotated reads it)',
        });
        continue;
      }
      if (r.compressed && o.since !== undefined && o.allRotated !== true) {
        const head = store.fs.readHead(r.rel, GZIP_HEADER_MAX);
        const h = head === undefined ? undefined : parseGzipHeader(head);
        if (h?.ok === true && h.header.extra !== undefined) {
          let last: Instant | undefined;
          try {
            const v = JSON.parse(new TextDecoder().decode(h.header.extra)) as { lastTime?: unknown };
            if (typeof v?.lastTime === 'string') last = parseRFC3339(v.lastTime);
          } catch {
            last = undefined;
          }
          if (last !== undefined && before(last, o.since)) {
            stop = true;
            files.push({
              file: r.rel,
              compressed: true,
              read: false,
              skipped: `its last entry (${v2s(last)}) is before --since: dockerd 20.10 stops reading rotations here (--all-rotated reads it and the newer ones)`,
            });
            continue;
          }
        }
      }
      const f = store.fs.openFile(r.rel, 'log file');
      if (f === undefined) continue;
      opened.push(f);
      files.push({ file: r.rel, compressed: r.compressed, read: true });
      sources.push({ file: r.rel, f, compressed: r.compressed, start: 0, end: r.compressed ? Infinity : f.size, skip: 0 });
    }
    if (!o.allRotated) {
      const extra = rotatedFiles(store.fs, plan, true).filter((r) => !files.some((x) => x.file === r.rel));
      for (const r of extra)
        files.push({
          file: r.rel,
          compressed: r.compressed,
          read: false,
          skipped: `rotation ${r.index} is beyond max-file (${plan.maxFiles}): dockerd does not read it (--all-rotated does)`,
        });
    }
    const cur = store.fs.openFile(plan.current, 'log file');
    if (cur !== undefined) {
      opened.push(cur);
      files.push({ file: plan.current, compressed: false, read: true });
      if (cur.size > 0) sources.push({ file: plan.current, f: cur, compressed: false, start: 0, end: cur.size, skip: 0 });
    } else files.push({ file: plan.current, compressed: false, read: false, skipped: 'absent' });
    if (o.tail > 0) await applyTail(sources, plan, o.tail, maxDecompressed);
  } catch (e) {
    for (const f of opened) f.close();
    throw e;
  }
  const use = o.tail === 0 ? [] : sources.filter((s) => s.skip >= 0);
  const records = decodeAll(use, plan, o, problems, maxDecompressed, opened);
  return { container: c, plan, tty: c.config?.Config?.['Tty'] === true, files, notes, problems, records };
}

function v2s(t: Instant): string {
  return `${t.sec}.${String(t.nsec).padStart(9, '0')}`;
}

/** The decompressed stream of a source (or its plain range). */
function chunksOf(s: Source, maxDecompressed: number): AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  return s.compressed ? gunzipChunks(s.f, maxDecompressed, s.file) : rangeChunks(s.f, s.start, s.end);
}

/**
 * tailFiles: from the newest file back, each file gives the section holding as many of the
 * remaining lines (records) as it has; files before are not read. Sources not read get skip −1.
 */
async function applyTail(sources: Source[], plan: LogPlan, req: number, maxDecompressed: number): Promise<void> {
  let left = req;
  for (let i = sources.length - 1; i >= 0; i--) {
    const s = sources[i]!;
    if (left <= 0) {
      s.skip = -1;
      continue;
    }
    if (!s.compressed) {
      const t = plan.format === 'json-file' ? tailLines(fileReader(s.f), s.f.size, left) : tailFrames(fileReader(s.f), s.f.size, left, s.file);
      s.start = t.start;
      s.end = t.end;
      left -= t.found;
      continue;
    }
    // A compressed rotation: one pass counts, the reading pass skips (dockerd tails a decompressed copy).
    let count = 0;
    let lastEnd = 0;
    if (plan.format === 'json-file') {
      let pos = 0;
      for await (const c of gunzipChunks(s.f, maxDecompressed, s.file)) {
        for (let k = c.indexOf(0x0a); k >= 0; k = c.indexOf(0x0a, k + 1)) {
          count++;
          lastEnd = pos + k + 1;
        }
        pos += c.length;
      }
      if (pos <= 1) count = 0;
    } else {
      count: for await (const items of frames(gunzipChunks(s.f, maxDecompressed, s.file))) {
        for (const it of items) {
          if (it.kind !== 'record') break count;
          count++;
          lastEnd = it.offset + it.message.length + 8;
        }
      }
    }
    const found = Math.min(count, left);
    s.skip = count - found;
    s.end = found === 0 ? 0 : lastEnd;
    left -= found;
  }
}

async function* decodeAll(
  sources: Source[],
  plan: LogPlan,
  o: LogsOptions,
  problems: Problem[],
  maxDecompressed: number,
  opened: OpenFile[],
): AsyncGenerator<LogRecord[]> {
  try {
    for (const s of sources) {
      if (s.end <= s.start) continue;
      const out = plan.format === 'json-file' ? jsonRecords(s, problems, maxDecompressed) : localRecords(s, problems, maxDecompressed);
      for await (const batch of out) {
        let keep = batch;
        if (o.since !== undefined) keep = keep.filter((r) => !before(r.time, o.since!));
        if (o.until !== undefined) {
          const stop = keep.findIndex((r) => compareInstant(r.time, { ...o.until!, off: 0 }) > 0);
          if (stop >= 0) {
            if (stop > 0) yield keep.slice(0, stop);
            return;
          }
        }
        if (keep.length > 0) yield keep;
      }
    }
  } finally {
    for (const f of opened) f.close();
  }
}

async function* jsonRecords(s: Source, problems: Problem[], maxDecompressed: number): AsyncGenerator<LogRecord[]> {
  let n = 0;
  try {
    for await (const items of lines(chunksOf(s, maxDecompressed), MAX_LINE, s.start)) {
      const out: LogRecord[] = [];
      for (const it of items) {
        if (it.offset >= s.end) {
          if (out.length > 0) yield out;
          return;
        }
        if (it.kind === 'blank') {
          n += it.count;
          continue;
        }
        if (s.compressed && n++ < s.skip) continue;
        if (it.kind === 'too-long') {
          problems.push(problem('LOG_LINE_TOO_LONG', `a line of ${it.length} bytes at offset ${it.offset} is longer than any dockerd writes: skipped`, s.file));
          continue;
        }
        // Go's decoder skips whitespace between values.
        if (it.bytes.every((c) => c === 0x20 || c === 0x09 || c === 0x0d)) continue;
        const d = decodeJsonLogLine(it.bytes);
        if (!d.ok) {
          problems.push(
            problem(
              it.terminated ? 'LOG_LINE_INVALID' : 'LOG_LINE_TRUNCATED',
              `${it.terminated ? '' : 'the last line is cut short: '}offset ${it.offset}: ${d.message}`,
              s.file,
            ),
          );
          continue;
        }
        out.push({ stream: d.line.stream, time: d.line.time, line: d.line.log, attrs: d.line.attrs, file: s.file, offset: it.offset });
      }
      if (out.length > 0) yield out;
    }
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    problems.push(problem(e.code, e.message, s.file));
  }
}

async function* localRecords(s: Source, problems: Problem[], maxDecompressed: number): AsyncGenerator<LogRecord[]> {
  let n = 0;
  try {
    for await (const items of frames(chunksOf(s, maxDecompressed), s.start)) {
      const out: LogRecord[] = [];
      for (const it of items) {
        if (it.offset >= s.end) {
          if (out.length > 0) yield out;
          return;
        }
        if (it.kind === 'too-large') {
          if (out.length > 0) yield out;
          problems.push(
            problem(
              'LOG_RECORD_TOO_LARGE',
              `the record at offset ${it.offset} claims ${it.size} bytes, more than dockerd's 1000000: dockerd stops reading here, and so does dataroot for this file`,
              s.file,
            ),
          );
          return;
        }
        if (it.kind === 'truncated') {
          if (out.length > 0) yield out;
          problems.push(
            problem(
              'LOG_RECORD_TRUNCATED',
              `the file ends inside a record at offset ${it.offset} (${it.have} of ${it.need} bytes): dockerd ignores it`,
              s.file,
            ),
          );
          return;
        }
        if (s.compressed && n++ < s.skip) continue;
        if (it.footerMismatch)
          problems.push(
            problem(
              'LOG_FRAME_MISMATCH',
              `the record at offset ${it.offset} has a footer that differs from its size (dockerd reads it forwards anyway; --tail would fail on it)`,
              s.file,
            ),
          );
        let e;
        try {
          e = decodeLogEntry(it.message);
        } catch (err) {
          if (!(err instanceof LogEntryError)) throw err;
          problems.push(problem('LOG_RECORD_INVALID', `the record at offset ${it.offset}: ${err.message} (dockerd stops reading at such a record)`, s.file));
          continue;
        }
        const line = e.partial ? e.line : appendNewline(e.line);
        out.push({
          stream: e.source,
          time: instantFromNanos(e.timeNano),
          line,
          attrs: [],
          ...(e.partialMeta !== undefined && e.partial ? { partial: e.partialMeta } : {}),
          file: s.file,
          offset: it.offset,
        });
      }
      if (out.length > 0) yield out;
    }
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    problems.push(problem(e.code, e.message, s.file));
  }
}

function appendNewline(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  out[b.length] = 0x0a;
  return out;
}

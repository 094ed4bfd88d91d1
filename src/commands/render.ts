import { randomBytes } from 'node:crypto';
import { DatarootError } from '../formats/errors.js';
import type { Ctx } from './context.js';

/**
 * JSON text safe for a terminal: JSON.stringify leaves DEL and the C1 controls (U+007F–U+009F)
 * raw; they are written as \u escapes here, which is the same JSON value.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Exactly one JSON document on stdout. bigint values become decimal strings. */
export function emitJson(ctx: Ctx, value: unknown): void {
  ctx.stdout.write(`${jsonText(value, 2)}\n`);
}

export function emitError(ctx: Ctx, e: DatarootError, json: boolean): void {
  if (json) ctx.stderr.write(`${jsonText({ error: e.toJSON() })}\n`);
  else ctx.stderr.write(`dataroot: ${safeText(e.oneLine())}\n`);
}

export function warn(ctx: Ctx, message: string): void {
  ctx.stderr.write(`dataroot: warning: ${safeText(message)}\n`);
}

const C_ESCAPES: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };

/**
 * Text from evidence made safe for a terminal, as `ls -b` prints names: control characters (C0,
 * DEL, C1) become C escapes (`\n`, `\033`); `keep` lists characters left as they are (newlines
 * in multi-line text). Backslashes stay as they are, so ordinary text prints as docker prints it.
 */
export function safeText(s: string, keep = ''): string {
  const re = keep === '\n\t' ? CONTROL_BUT_NL_TAB : keep === '' ? CONTROL : new RegExp(`[^\\P{Cc}${keep.replace(/[\\\]^-]/g, '\\$&')}]`, 'gu');
  re.lastIndex = 0;
  if (!re.test(s)) return s;
  re.lastIndex = 0;
  return s.replace(re, (ch) => {
    const c = ch.charCodeAt(0);
    return C_ESCAPES[c] ?? `\\${c.toString(8).padStart(3, '0')}`;
  });
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_NL_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/**
 * Control characters that dataroot itself writes (colours, the progress bar's carriage return)
 * travel as a marker no evidence can contain (a per-process nonce), so that the one filter on
 * the way out (`terminalSafe`) escapes every other control character, from whatever file, name
 * or message it came.
 */
const MARK = `\u{F8FF}${randomBytes(6).toString('hex')}:`;
const MARK_RE = new RegExp(`${MARK}([0-9a-f]{2})`, 'g');

/** Control characters to write as they are (only for dataroot's own sequences). */
export function ctl(s: string): string {
  let out = '';
  for (const c of s) out += `${MARK}${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  return out;
}

/** What reaches the terminal: control characters of text escaped (newlines and tabs kept), dataroot's own sequences restored. */
export function terminalSafe(chunk: string): string {
  const escaped = safeText(chunk, '\n\t');
  return escaped.includes(MARK) ? escaped.replace(MARK_RE, (_m, h: string) => String.fromCharCode(parseInt(h, 16))) : escaped;
}

const CODES = { bold: [1, 22], dim: [2, 22], red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39] } as const;

export function paint(ctx: Ctx, style: keyof typeof CODES, s: string): string {
  if (!ctx.color) return s;
  const [a, b] = CODES[style];
  return `${ctl('\u001b')}[${a}m${s}${ctl('\u001b')}[${b}m`;
}

type Table3 = typeof import('cli-table3');
type StringWidth = (s: string) => number;

let tableModules: Promise<{ Table: Table3; stringWidth: StringWidth }> | undefined;

/**
 * cli-table3 and the string-width it measures cells with, loaded when the first table is printed:
 * a command that prints no table never loads them. Our widths come from the same string-width, so
 * the widths we fix and the padding cli-table3 adds agree on every character (wide CJK, emoji such
 * as U+1F680–1F6FF, combining marks).
 */
function loadTable(): Promise<{ Table: Table3; stringWidth: StringWidth }> {
  tableModules ??= Promise.all([import('cli-table3'), import('string-width')]).then(([t, w]) => ({
    Table: ((t as { default?: Table3 }).default ?? t) as Table3,
    stringWidth: ((w as { default?: StringWidth }).default ?? w) as StringWidth,
  }));
  return tableModules;
}

// eslint-disable-next-line no-control-regex -- the colour codes this module writes itself
const ESC_SGR = /\u001b\[[0-9;]*m/g;

/** Columns a cell takes, as cli-table3 measures it: colour codes, control characters and combining marks none, wide characters and emoji two. */
export async function displayWidth(s: string): Promise<number> {
  const { stringWidth } = await loadTable();
  return stringWidth(s.replace(MARK_RE, (_m, h: string) => String.fromCharCode(parseInt(h, 16))).replace(ESC_SGR, ''));
}

/**
 * Rows per cli-table3 table when a long table is printed: each chunk has the same fixed widths and
 * no borders, so the chunks make one table. cli-table3's layout is quadratic in a table's rows (it
 * looks for span conflicts against every earlier row), and it costs much per cell besides; measured
 * on 100,000 five-column rows: chunks of 25 took 44 s, 100 took 30 s, 200 took 31 s, 1,000 took 61 s.
 */
export const TABLE_CHUNK_ROWS = 100;

/** No borders: four spaces between columns, as docker prints its tables. */
const DOCKER_CHARS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '    ',
} as const;

/**
 * Columns as `docker` prints them, rendered by cli-table3: a bold header, cells left-aligned,
 * four spaces between columns, no trailing blanks; a cell with newlines takes as many lines.
 * Cells from evidence are escaped for the terminal.
 */
export async function table(ctx: Ctx, head: string[], rows: (string | number)[][]): Promise<string> {
  let out = '';
  await writeTable(ctx, head, rows, (s) => void (out += s));
  return out;
}

/**
 * Rows cli-table3 renders itself; past them, single-line rows are padded here to the same fixed
 * widths, with the same string-width, giving the same bytes (a test holds the two to it). cli-table3
 * costs about 0.3 ms a row even in chunks: 100,000 rows took 30 s where padding takes about 1 s.
 */
export const CLI_TABLE3_ROWS = 2000;

/**
 * The same table written in chunks, for listings of any length: the column widths are measured
 * in one pass over every row, then cli-table3 renders TABLE_CHUNK_ROWS rows at a time with those
 * fixed widths (no borders, so the chunks join into one seamless table); past `tableRows` rows,
 * single-line rows are padded directly. Loops only: no spread of rows into arguments, no
 * recursion, time linear in the rows.
 */
export async function writeTable(
  ctx: Ctx,
  head: string[],
  rows: (string | number)[][],
  write: (s: string) => void = (s) => void ctx.stdout.write(s),
  tableRows = CLI_TABLE3_ROWS,
): Promise<void> {
  const { Table, stringWidth } = await loadTable();
  // Cells escaped line by line (a cell's newlines are line breaks, other control characters are escaped).
  const cell = (v: string | number | undefined): string => {
    const t = String(v ?? '');
    return t.includes('\n')
      ? t
          .split('\n')
          .map((x) => safeText(x))
          .join('\n')
      : safeText(t);
  };
  const widths = head.map((h) => stringWidth(h));
  const prepared: string[][] = new Array<string[]>(rows.length);
  const multiline: boolean[] = new Array<boolean>(rows.length).fill(false);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    const c = new Array<string>(head.length);
    for (let i = 0; i < head.length; i++) {
      const t = cell(row[i]);
      c[i] = t;
      if (t.includes('\n')) {
        multiline[r] = true;
        for (const line of t.split('\n')) widths[i] = Math.max(widths[i]!, stringWidth(line));
      } else widths[i] = Math.max(widths[i]!, stringWidth(t));
    }
    prepared[r] = c;
  }
  // Real SGR codes in the header (cli-table3 measures without them); turned into dataroot's own
  // marked sequences below, which the output filter restores. Cells hold no ESC: they are escaped.
  const headCells = ctx.color ? head.map((h) => `\u001b[1m${h}\u001b[22m`) : head;
  const style = { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true };
  const render = (at: number, end: number): void => {
    const t = new Table({ ...(at === 0 ? { head: headCells } : {}), chars: DOCKER_CHARS, style, colWidths: widths, truncate: '' });
    for (let r = at; r < end; r++) t.push(prepared[r]!);
    let text = t.toString();
    if (ctx.color) text = text.replaceAll('\u001b', ctl('\u001b'));
    let out = '';
    for (const line of text.split('\n')) out += `${line.trimEnd()}\n`;
    write(out);
  };
  const direct = Math.min(tableRows, prepared.length);
  for (let at = 0; at === 0 || at < direct; at += TABLE_CHUNK_ROWS) render(at, Math.min(direct, at + TABLE_CHUNK_ROWS));
  let out = '';
  for (let r = direct; r < prepared.length; r++) {
    if (multiline[r]) {
      write(out);
      out = '';
      render(r, r + 1);
      continue;
    }
    const c = prepared[r]!;
    let line = '';
    for (let i = 0; i < c.length; i++) {
      const t = c[i]!;
      line += i + 1 < c.length ? t + ' '.repeat(widths[i]! - stringWidth(t) + 4) : t;
    }
    out += `${line.trimEnd()}\n`;
    if (out.length > 1 << 16) {
      write(out);
      out = '';
    }
  }
  if (out !== '') write(out);
}

export function bytesHuman(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

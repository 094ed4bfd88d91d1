import { randomBytes } from 'node:crypto';
import { DatarootError } from '../formats/errors.js';
import type { Ctx } from './context.js';

/**
 * JSON text safe for a terminal: JSON.stringify leaves DEL and the C1 controls (U+007F–U+009F)
 * raw; they are written as \u escapes here, which is the same JSON value.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
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

/** East Asian wide and fullwidth characters, and emoji: two columns in a terminal (first, last code point). */
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf], [0xac00, 0xd7a3],
  [0xf900, 0xfaff], [0xfe30, 0xfe4f], [0xff00, 0xff60], [0xffe0, 0xffe6], [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff], [0x20000, 0x3fffd],
];

function isWide(c: number): boolean {
  return c >= 0x1100 && WIDE.some(([lo, hi]) => c >= lo && c <= hi);
}

/** Columns a cell takes: colour codes, control characters and combining marks none, wide characters two. */
export function displayWidth(s: string): number {
  let w = 0;
  // eslint-disable-next-line no-control-regex -- strips the colour escapes this module itself writes
  for (const ch of s.replace(MARK_RE, (_m, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\u001b\[[0-9;]*m/g, '')) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c < 0xa0) || (c >= 0x300 && c <= 0x36f) || c === 0x200b || (c >= 0xfe00 && c <= 0xfe0f)) continue;
    w += isWide(c) ? 2 : 1;
  }
  return w;
}

/**
 * Columns as `docker` prints them: a bold header, cells left-aligned, four spaces between
 * columns, no trailing blanks; a cell with newlines takes as many lines. Cells from evidence are
 * escaped for the terminal. Loops only (no spread of rows into arguments), so a table of any
 * number of rows renders.
 */
export function table(ctx: Ctx, head: string[], rows: (string | number)[][]): string {
  let out = '';
  writeTable(ctx, head, rows, (s) => void (out += s));
  return out;
}

/** The same table written a line at a time (large listings are not joined into one string). */
export function writeTable(ctx: Ctx, head: string[], rows: (string | number)[][], write: (s: string) => void = (s) => void ctx.stdout.write(s)): void {
  const cells = (r: (string | number)[]): string[][] => head.map((_, i) => String(r[i] ?? '').split('\n').map((t) => safeText(t)));
  const widths = head.map((h) => displayWidth(h));
  for (const r of rows) {
    const c = cells(r);
    for (let i = 0; i < c.length; i++) for (const t of c[i]!) widths[i] = Math.max(widths[i]!, displayWidth(t));
  }
  const line = (c: string[][]): string => {
    let height = 0;
    for (const x of c) height = Math.max(height, x.length);
    let s = '';
    for (let k = 0; k < height; k++) s += `${c.map((x, i) => { const t = x[k] ?? ''; return t + ' '.repeat(widths[i]! - displayWidth(t)); }).join('    ').trimEnd()}\n`;
    return s;
  };
  write(line(head.map((h) => [paint(ctx, 'bold', h)])));
  let buf = '';
  for (const r of rows) {
    buf += line(cells(r));
    if (buf.length > 1 << 16) {
      write(buf);
      buf = '';
    }
  }
  if (buf !== '') write(buf);
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

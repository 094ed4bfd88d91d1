import { DatarootError } from '../formats/errors.js';
import type { Ctx } from './context.js';

/** Exactly one JSON document on stdout. bigint values become decimal strings. */
export function emitJson(ctx: Ctx, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

export function emitError(ctx: Ctx, e: DatarootError, json: boolean): void {
  if (json) ctx.stderr.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
  else ctx.stderr.write(`dataroot: ${e.oneLine()}\n`);
}

export function warn(ctx: Ctx, message: string): void {
  ctx.stderr.write(`dataroot: warning: ${message}\n`);
}

const CODES = { bold: [1, 22], dim: [2, 22], red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39] } as const;

export function paint(ctx: Ctx, style: keyof typeof CODES, s: string): string {
  if (!ctx.color) return s;
  const [a, b] = CODES[style];
  return `\u001b[${a}m${s}\u001b[${b}m`;
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
  for (const ch of s.replace(/\u001b\[[0-9;]*m/g, '')) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c < 0xa0) || (c >= 0x300 && c <= 0x36f) || c === 0x200b || (c >= 0xfe00 && c <= 0xfe0f)) continue;
    w += isWide(c) ? 2 : 1;
  }
  return w;
}

/**
 * Columns as `docker` prints them: a bold header, cells left-aligned, four spaces between
 * columns, no trailing blanks; a cell with newlines takes as many lines.
 */
export function table(ctx: Ctx, head: string[], rows: (string | number)[][]): string {
  const lines = [head.map((h) => [paint(ctx, 'bold', h)]), ...rows.map((r) => head.map((_, i) => String(r[i] ?? '').split('\n')))];
  const widths = head.map((_, i) => Math.max(...lines.map((r) => Math.max(...r[i]!.map(displayWidth)))));
  let out = '';
  for (const r of lines) {
    const height = Math.max(...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out += `${r.map((c, i) => { const t = c[k] ?? ''; return t + ' '.repeat(widths[i]! - displayWidth(t)); }).join('    ').trimEnd()}\n`;
  }
  return out;
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

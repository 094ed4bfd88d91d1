import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
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

/** cli-table3, loaded on first use: commands that print no table do not pay for it. */
let TableCtor: typeof TableType | undefined;

export function table(ctx: Ctx, head: string[], rows: (string | number)[][]): string {
  TableCtor ??= createRequire(import.meta.url)('cli-table3') as typeof TableType;
  const t = new TableCtor({
    head: head.map((h) => paint(ctx, 'bold', h)),
    style: { head: [], border: [], compact: true },
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' },
  });
  for (const r of rows) t.push(r.map(String));
  return `${t.toString().split('\n').map((l) => l.replace(/^ /, '').trimEnd()).join('\n')}\n`;
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

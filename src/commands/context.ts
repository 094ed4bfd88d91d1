import { resolve, isAbsolute, join } from 'node:path';
import { parseSize } from '../io/archive.js';
import type { OpenRootOptions } from '../store/root.js';
import { pauseAsync } from './testhooks.js';

export interface Out {
  write(chunk: string | Uint8Array): unknown;
}

/** What every command receives: where to write, how to render, and the global options. */
export interface Ctx {
  stdout: Out;
  stderr: Out;
  /** Colour allowed (stdout is a TTY, no NO_COLOR, no --no-color). */
  color: boolean;
  /** stderr is a TTY (progress bars allowed). */
  stderrTTY: boolean;
  /** stdout is a TTY: bytes from evidence (container logs) are escaped as text, else written as they are; binary output such as a tar is refused there. */
  stdoutTTY?: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Standard input, for commands that read it (bolt load); isTTY when it is a terminal. */
  stdin?: AsyncIterable<Uint8Array> & { isTTY?: boolean };
  /** Set by a command: 0 clean, 1 found differences/problems, 2 could not run. */
  exitCode: number;
  /** Runs another dataroot command line with this context (set by cli/main.ts; the demo uses it). */
  invoke?: (args: string[]) => Promise<void>;
}

export interface GlobalOpts {
  root?: string;
  json?: boolean;
  color?: boolean;
  driver?: string;
  unpackLimit?: string;
  /** --containerd-root: containerd's root (default <root>/containerd/daemon or /var/lib/containerd). */
  containerdRoot?: string;
}

export const DEFAULT_ROOT = '/var/lib/docker';

/** The data-root the user asked for: --root, else DATAROOT_ROOT, else /var/lib/docker. */
export function rootOf(g: GlobalOpts, ctx: Ctx): { root: string; explicit: boolean } {
  if (g.root !== undefined) return { root: resolve(ctx.cwd, g.root), explicit: true };
  const env = ctx.env['DATAROOT_ROOT'];
  if (env !== undefined && env !== '') return { root: resolve(ctx.cwd, env), explicit: true };
  return { root: DEFAULT_ROOT, explicit: false };
}

/** A file argument: absolute as given, relative to the root when one was named, else to cwd. */
export function fileArg(p: string, base: string | undefined, ctx: Ctx): string {
  if (isAbsolute(p)) return p;
  return base !== undefined ? join(base, p) : resolve(ctx.cwd, p);
}

/**
 * How to open the root named by the global options. Test-only hook (environment, never a flag):
 * DATAROOT_UNPACK_PAUSE_AT=entry|done with DATAROOT_UNPACK_PAUSE_FILE pauses an archive's
 * unpacking after its first entry or at its end (writing the temp dir's path into the file) until
 * the file is removed; signals are handled meanwhile.
 */
export function rootOptions(g: GlobalOpts, ctx?: Ctx): OpenRootOptions {
  const o: OpenRootOptions = g.unpackLimit !== undefined ? { unpackLimit: parseSize(g.unpackLimit) } : {};
  const at = ctx?.env['DATAROOT_UNPACK_PAUSE_AT'];
  const file = ctx?.env['DATAROOT_UNPACK_PAUSE_FILE'];
  if (file !== undefined && (at === 'entry' || at === 'done')) {
    o.unpackHooks =
      at === 'entry' ? { entry: async (n, dir) => (n === 1 ? pauseAsync(file, dir) : undefined) } : { done: async (dir) => pauseAsync(file, dir) };
  }
  return o;
}

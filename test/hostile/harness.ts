import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, run, SAMPLES, type CliResult } from '../support/cli.js';
import { fingerprint } from '../support/tree.js';
import { untar } from '../support/untar.js';

/**
 * The hostile-evidence harness: a work dir holding, outside every root,
 * - a canary file and a canary directory with unique content that must never appear in any output;
 * - a sentinel tree (the canary and a victim directory) whose listing (sha256, mode, owner, size,
 *   mtime) must be equal before and after every command;
 * and copies of the shipped sample roots to tamper with.
 */
export class Hostile {
  readonly work = mkdtempSync(join(tmpdir(), 'dataroot-hostile-'));
  readonly outside = join(this.work, 'outside');
  readonly canaryText = `DATAROOT-CANARY-${randomBytes(12).toString('hex')}`;
  readonly canaryFile = join(this.outside, 'canary.txt');
  readonly canaryDir = join(this.outside, 'canary-dir');
  readonly victim = join(this.outside, 'victim');
  private samples = new Map<string, string>();
  private n = 0;
  private sentinel: Map<string, string>;

  constructor() {
    mkdirSync(this.canaryDir, { recursive: true });
    mkdirSync(this.victim);
    writeFileSync(this.canaryFile, `${this.canaryText}\n`);
    for (let i = 0; i < 3; i++) writeFileSync(join(this.canaryDir, `${this.canaryText}-${i}`), `${this.canaryText} file ${i}\n`);
    writeFileSync(join(this.victim, 'precious'), 'do not delete\n');
    mkdirSync(join(this.victim, 'diff'));
    writeFileSync(join(this.victim, 'diff', 'x'), 'victim layer\n');
    this.sentinel = fingerprint(this.outside);
  }

  /** A fresh writable copy of a sample root (`after-build`, `after-build-vfs`, `fresh`). */
  root(sample = 'after-build'): string {
    let base = this.samples.get(sample);
    if (base === undefined) {
      base = untar(join(SAMPLES, `${sample}.tar.gz`)).dir;
      this.samples.set(sample, base);
    }
    const dir = join(this.work, 'roots', String(this.n++), 'root');
    mkdirSync(join(dir, '..'), { recursive: true });
    const r = spawnSync('cp', ['-a', base, dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cp -a ${base} failed: ${r.stderr}`);
    chmodSync(dir, 0o710);
    return dir;
  }

  /** The same relative path a symlink inside `root` needs to reach `target` (root is <work>/roots/N/root). */
  relTo(depth: number, target: string): string {
    return `${'../'.repeat(depth + 3)}${target.slice(this.work.length + 1)}`;
  }

  /** Output must not carry the canary (as text, hex or base64) nor the canary dir's file names. */
  leaked(r: { stdout: string; stderr: string }): string | undefined {
    const both = r.stdout + r.stderr;
    const forms = [this.canaryText, Buffer.from(this.canaryText).toString('hex'), Buffer.from(this.canaryText).toString('base64').slice(0, 24)];
    return forms.find((f) => both.includes(f));
  }

  /** Whether the sentinel tree is as it was (nothing outside written or deleted). */
  sentinelChanged(): string | undefined {
    const now = fingerprint(this.outside);
    for (const [k, v] of this.sentinel) if (now.get(k) !== v) return `${k} changed`;
    for (const k of now.keys()) if (!this.sentinel.has(k)) return `${k} appeared`;
    return undefined;
  }

  cleanup(): void {
    rmSync(this.work, { recursive: true, force: true });
    for (const d of this.samples.values()) rmSync(d, { recursive: true, force: true });
  }
}

export interface Outcome extends CliResult {
  ms: number;
}

/** Runs the CLI in-process, failing (not hanging) when it does not finish in `ms`. */
export async function bounded(args: string[], ms = 20_000, env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`dataroot ${args.join(' ')} did not finish in ${ms} ms (a hang)`)), ms);
  });
  try {
    const r = await Promise.race([run(args, env), timeout]);
    return { ...r, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the built binary (a real process: real file descriptors, signals), killed after `ms`. */
export function spawnBin(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  ms = 60_000,
): { done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>; pid: number; kill(sig: NodeJS.Signals): void } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { done, pid: child.pid!, kill: (sig) => child.kill(sig) };
}

/** Exit 2 with exactly one coded line, or with --json one `{"error":{"code"…}}` (no stack trace, never INTERNAL). */
export function codedFailure(r: { code: number | null; stderr: string }): string | undefined {
  if (r.code !== 2) return undefined;
  if (r.stderr.startsWith('{')) {
    try {
      const code = (JSON.parse(r.stderr.split('\n')[0]!) as { error?: { code?: string } }).error?.code;
      return code === 'INTERNAL' ? undefined : code;
    } catch {
      return undefined;
    }
  }
  const m = /^dataroot: ([A-Z][A-Z0-9_]+): /.exec(r.stderr);
  if (m === null || m[1] === 'INTERNAL' || /\n\s+at /.test(r.stderr)) return undefined;
  return m[1];
}

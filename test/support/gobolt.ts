import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ORACLE_SRC = fileURLToPath(new URL('../oracle/boltoracle/main.go', import.meta.url));

/** Where a Go program is built (cached by source hash) and the environment of its GOPATH-mode build. */
function goBuild(src: string, name: string): { dir: string; bin: string; env: NodeJS.ProcessEnv } {
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `dataroot-go-${name}-${hash}`);
  return {
    dir,
    bin: join(dir, name),
    env: { ...process.env, GOPATH: `${dir}/gopath:/usr/share/gocode`, GO111MODULE: 'off', GOCACHE: join(dir, 'cache'), GOFLAGS: '' },
  };
}

/**
 * Builds (once, cached by source hash in a temp dir) a Go oracle from test/oracle/<name>/main.go
 * against Debian's Go packages (golang-github-coreos-bbolt-dev, golang-github-vbatts-tar-split-dev)
 * in GOPATH mode. Returns the binary's path.
 */
export function buildGoProgram(src: string, name: string): string {
  const { dir, bin, env } = goBuild(src, name);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  const r = spawnSync('go', ['build', '-o', tmp, src], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the Go oracle ${name} failed:\n${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

/** The Go bbolt oracle (test/oracle/boltoracle). */
export function buildOracle(): string {
  return buildGoProgram(ORACLE_SRC, 'boltoracle');
}

let oracleBuild: Promise<string> | undefined;

/** buildOracle without blocking the event loop while Go compiles (a minute on a busy machine). */
export function buildOracleAsync(): Promise<string> {
  return (oracleBuild ??= (async () => {
    const { dir, bin, env } = goBuild(ORACLE_SRC, 'boltoracle');
    if (existsSync(bin)) return bin;
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.async`;
    await new Promise<void>((resolve, reject) => {
      const child = spawn('go', ['build', '-o', tmp, ORACLE_SRC], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`building the Go oracle boltoracle failed:\n${err}`))));
    });
    renameSync(tmp, bin);
    return bin;
  })());
}

const TARSPLIT_SRC = fileURLToPath(new URL('../oracle/tarsplit/main.go', import.meta.url));

/** Runs the tar-split oracle (test/oracle/tarsplit): tar-split 0.11.2 and Go's archive/tar. */
export function tarsplitOracle(args: string[], opts: { check?: boolean } = {}): OracleRun {
  const r = spawnSync(buildGoProgram(TARSPLIT_SRC, 'tarsplitoracle'), args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (opts.check !== false && r.status !== 0) throw new Error(`tarsplitoracle ${args.join(' ')} failed: ${r.stderr}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface OracleRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function oracle(args: string[]): OracleRun {
  const r = spawnSync(buildOracle(), args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function gen(out: string, seed: number, scenario: string, pageSize: number): void {
  const r = oracle(['gen', out, String(seed), scenario, String(pageSize)]);
  if (r.status !== 0) throw new Error(`oracle gen ${scenario} failed: ${r.stderr}`);
}

/** gen, returning what the generator printed (the expected decoded values of some scenarios). */
export function genWithOutput(out: string, seed: number, scenario: string, pageSize: number): string {
  const r = oracle(['gen', out, String(seed), scenario, String(pageSize)]);
  if (r.status !== 0) throw new Error(`oracle gen ${scenario} failed: ${r.stderr}`);
  return r.stdout;
}

const BOLTEDIT_SRC = fileURLToPath(new URL('../oracle/boltedit/main.go', import.meta.url));

export type BoltEditOp =
  | { op: 'put'; path: string[]; key: string; value: string }
  | { op: 'delete'; path: string[]; key: string }
  | { op: 'deleteBucket'; path: string[]; key: string }
  | { op: 'createBucket'; path: string[] };

/** Applies ops to a bbolt file (created when absent) with Go's bbolt, in one transaction. */
export function boltEdit(file: string, ops: BoltEditOp[]): void {
  const r = spawnSync(buildGoProgram(BOLTEDIT_SRC, 'boltedit'), [file], { input: JSON.stringify(ops), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`boltedit ${file} failed: ${r.stderr}`);
}

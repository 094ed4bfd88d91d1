import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ORACLE_SRC = fileURLToPath(new URL('../oracle/boltoracle/main.go', import.meta.url));

/**
 * Builds (once, cached by source hash in a temp dir) a Go oracle from test/oracle/<name>/main.go
 * against Debian's Go packages (golang-github-coreos-bbolt-dev, golang-github-vbatts-tar-split-dev)
 * in GOPATH mode. Returns the binary's path.
 */
export function buildGoProgram(src: string, name: string): string {
  const hash = createHash('sha256').update(readFileSync(src)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `dataroot-go-${name}-${hash}`);
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = `${bin}.${process.pid}`;
  const r = spawnSync('go', ['build', '-o', tmp, src], {
    env: { ...process.env, GOPATH: `${dir}/gopath:/usr/share/gocode`, GO111MODULE: 'off', GOCACHE: join(dir, 'cache'), GOFLAGS: '' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the Go oracle ${name} failed:\n${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

/** The Go bbolt oracle (test/oracle/boltoracle). */
export function buildOracle(): string {
  return buildGoProgram(ORACLE_SRC, 'boltoracle');
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

import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs the CLI in-process with captured output (argv as the user types it, after `dataroot`). */
export async function run(args: string[], env: NodeJS.ProcessEnv = {}, stdin?: Uint8Array | string): Promise<CliResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const sink = (into: Buffer[]) => ({ write: (c: string | Uint8Array) => into.push(Buffer.from(c)) });
  const input =
    stdin === undefined
      ? undefined
      : (async function* () {
          yield typeof stdin === 'string' ? Buffer.from(stdin) : stdin;
        })();
  const code = await main(['node', 'dataroot', ...args], {
    stdout: sink(out),
    stderr: sink(err),
    env: { ...env },
    ...(input !== undefined ? { stdin: input } : {}),
  });
  const stdoutBytes = Buffer.concat(out);
  return { code, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes };
}

export const BIN = fileURLToPath(new URL('../../bin/dataroot.js', import.meta.url));
export const SAMPLES = fileURLToPath(new URL('../../snapshots/', import.meta.url));

/** Runs the built binary as a user would (npm test builds first). */
export function runBin(args: string[], env: NodeJS.ProcessEnv = {}, input?: string | Uint8Array): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 1 << 30,
    ...(input !== undefined ? { input } : {}),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * runBin without blocking the test worker's event loop (vitest's RPC with the main process times out
 * after 60 s of a blocked loop): for tests that run many commands.
 */
export function runBinAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err === null) resolve({ code: 0, stdout, stderr });
      else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
      else reject(new Error(`${BIN}: ${err.message}`));
    });
  });
}

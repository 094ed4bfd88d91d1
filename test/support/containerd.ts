import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private containerd (Debian's 1.6) on a temp dir: its own root, state and socket, the CRI
 * plugin off. Its pid is written to a pidfile at start and it is stopped by that pid, never by name.
 */
export class Containerd {
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  readonly sock: string;
  readonly pidfile: string;
  readonly log: string;

  constructor(dir?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'dataroot-containerd-'));
    this.root = join(this.dir, 'root');
    this.state = join(this.dir, 'state');
    this.sock = join(this.state, 'containerd.sock');
    this.pidfile = join(this.dir, 'containerd.pid');
    this.log = join(this.dir, 'containerd.log');
  }

  async start(timeoutMs = 60_000): Promise<void> {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.state, { recursive: true });
    const config = join(this.dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = "${this.root}"`,
        `state = "${this.state}"`,
        '[grpc]',
        `  address = "${this.sock}"`,
        '[ttrpc]',
        `  address = "${this.sock}.ttrpc"`,
        '[debug]',
        '  address = ""',
        '[metrics]',
        '  address = ""',
        '[plugins."io.containerd.grpc.v1.cri"]',
        '  disable = true',
        '',
      ].join('\n'),
    );
    const out = openSync(this.log, 'a');
    const child = spawn('containerd', ['--config', config], { stdio: ['ignore', out, out], detached: true });
    child.unref();
    writeFileSync(this.pidfile, String(child.pid));
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`containerd exited at start:\n${readFileSync(this.log, 'utf8').slice(-2000)}`);
      if (existsSync(this.sock) && this.ctr(['version'], false).status === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`containerd did not answer within ${timeoutMs} ms`);
  }

  ctr(args: string[], check = true): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ctr', ['-a', this.sock, ...args], { encoding: 'utf8' });
    if (check && r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed: ${r.stderr}`);
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** SIGTERM to the pid in the pidfile, then waits until it is gone. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!existsSync(this.pidfile)) return;
    const pid = Number(readFileSync(this.pidfile, 'utf8'));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(pid, 'SIGKILL');
  }
}

import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './dockerd.js';

/**
 * A private containerd on a temp directory: its own root, state, gRPC and ttrpc sockets, written
 * into a config file; the CRI plugin, the snapshotters that need special file systems, tracing and
 * the `opt` plugin (which would write /opt/containerd) are disabled, so nothing needs the network
 * or touches the host. Stopped by the pid of the process this class started, never by name.
 */
export class Containerd {
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  readonly sock: string;
  readonly config: string;
  readonly log: string;
  /** runc's state directory for containers run here (`ctr run --runc-root`). */
  readonly runcRoot: string;
  private pid: number | undefined;

  constructor(dir?: string, root?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'dataroot-containerd-'));
    this.root = root ?? join(this.dir, 'root');
    this.state = join(this.dir, 'state');
    this.sock = join(this.dir, 'sock');
    this.config = join(this.dir, 'config.toml');
    this.log = join(this.dir, 'containerd.log');
    this.runcRoot = join(this.dir, 'runc');
  }

  private writeConfig(): void {
    const disabled = [
      'io.containerd.grpc.v1.cri',
      'io.containerd.snapshotter.v1.aufs',
      'io.containerd.snapshotter.v1.btrfs',
      'io.containerd.snapshotter.v1.devmapper',
      'io.containerd.snapshotter.v1.zfs',
      'io.containerd.internal.v1.tracing',
      'io.containerd.tracing.processor.v1.otlp',
      'io.containerd.internal.v1.opt',
    ];
    writeFileSync(
      this.config,
      [
        'version = 2',
        `root = ${JSON.stringify(this.root)}`,
        `state = ${JSON.stringify(this.state)}`,
        `disabled_plugins = ${JSON.stringify(disabled)}`,
        '[grpc]',
        `  address = ${JSON.stringify(this.sock)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(`${this.sock}.ttrpc`)}`,
        '[debug]',
        '  address = ""',
        '[metrics]',
        '  address = ""',
        '',
      ].join('\n'),
    );
  }

  /** Starts containerd and waits until `ctr version` answers. */
  async start(timeoutMs = 60_000): Promise<void> {
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    mkdirSync(this.state, { recursive: true, mode: 0o711 });
    mkdirSync(this.runcRoot, { recursive: true, mode: 0o711 });
    this.writeConfig();
    const out = openSync(this.log, 'a');
    const child = spawn('containerd', ['--config', this.config], { stdio: ['ignore', out, out], detached: true });
    child.unref();
    this.pid = child.pid;
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`containerd exited at start:\n${this.tail()}`);
      if (existsSync(this.sock) && this.ctr(['version'], { check: false }).status === 0) return;
      await sleep(100);
    }
    throw new Error(`containerd did not answer within ${timeoutMs} ms:\n${this.tail()}`);
  }

  tail(lines = 30): string {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Runs `ctr -a SOCK [-n NS] args`; throws with its output unless check is false. */
  ctr(args: string[], opts: { ns?: string; check?: boolean; input?: string | Buffer; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
    const r = spawnSync('ctr', ['-a', this.sock, ...(opts.ns !== undefined ? ['-n', opts.ns] : []), ...args], {
      encoding: 'utf8',
      input: opts.input,
      maxBuffer: 256 << 20,
      ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
    });
    if (opts.check !== false && r.status !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  /** `ctr run` of a kept container (no --rm), its runc state under this directory. */
  run(ns: string, image: string, id: string, cmd: string[], extra: string[] = []): SpawnSyncReturns<string> {
    return this.ctr(['run', '--runc-root', this.runcRoot, '--null-io', ...extra, image, id, ...cmd], { ns });
  }

  /** SIGTERM to the process this object started, then waits (SIGKILL after the timeout). */
  async stop(timeoutMs = 30_000): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      this.pid = undefined;
      return;
    }
    const deadline = Date.now() + timeoutMs;
    while (alive(pid)) {
      if (Date.now() > deadline) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(50);
    }
    this.pid = undefined;
    this.unmountLeftovers();
  }

  /** Kills the daemon at once (SIGKILL), as a crash would (for leftovers such as ingests). */
  async kill(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    while (alive(pid)) await sleep(20);
    this.pid = undefined;
    this.unmountLeftovers();
  }

  unmountLeftovers(): void {
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
      .filter((p) => p === this.dir || p.startsWith(`${this.dir}/`) || p === this.root || p.startsWith(`${this.root}/`))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  }

  async cleanup(): Promise<void> {
    await this.stop();
    this.unmountLeftovers();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A busybox-static root file system (the applets as symlinks, passwd and group, /etc/keep and
 * /etc/gone for containers to change and delete), made into a directory for `dataroot pack`.
 */
export function busyboxRootfs(dir: string): void {
  chmodSync(dir, 0o755);
  for (const d of ['bin', 'tmp', 'etc', 'root', 'var', 'opt/dir/sub']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  spawnSync('cp', ['/bin/busybox', join(dir, 'bin', 'busybox')]);
  for (const a of ['sh', 'echo', 'cat', 'rm', 'mkdir', 'ls', 'true', 'mv', 'touch', 'sleep', 'chmod', 'ln'])
    spawnSync('ln', ['-sf', 'busybox', join(dir, 'bin', a)]);
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'etc', 'keep'), 'keep\n');
  writeFileSync(join(dir, 'etc', 'gone'), 'gone\n');
  writeFileSync(join(dir, 'opt', 'dir', 'sub', 'a'), 'a\n');
}

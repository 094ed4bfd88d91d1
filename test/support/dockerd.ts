import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Driver = 'overlay2' | 'vfs' | 'overlay' | 'fuse-overlayfs' | 'btrfs';

/** The drivers dockerd 20.10 runs on this machine (btrfs on a loop-mounted file system the harness makes). */
export const DRIVERS: Driver[] = ['overlay2', 'vfs', 'overlay', 'fuse-overlayfs', 'btrfs'];

/** What a driver needs besides dockerd. */
export function driverTools(d: Driver): string[] {
  return d === 'btrfs' ? ['mkfs.btrfs', 'mount', 'umount'] : d === 'fuse-overlayfs' ? ['fuse-overlayfs'] : [];
}

/**
 * A private dockerd on a temp root: its own data-root, exec-root, pidfile and socket, so
 * several can run at once. Stopped by the pid in its pidfile, never by name.
 */
export class Dockerd {
  readonly dir: string;
  readonly root: string;
  readonly exec: string;
  readonly pidfile: string;
  readonly sock: string;
  readonly log: string;
  private running = false;

  constructor(
    readonly driver: Driver,
    dir?: string,
  ) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'dataroot-dockerd-'));
    this.root = join(this.dir, 'root');
    this.exec = join(this.dir, 'exec');
    this.pidfile = join(this.dir, 'pid');
    this.sock = join(this.dir, 'sock');
    this.log = join(this.dir, 'dockerd.log');
  }

  /** btrfs: the data-root is a btrfs file system in a loop-mounted image file, made once. */
  private mountBtrfs(): void {
    if (this.driver !== 'btrfs' || this.btrfsMounted) return;
    const img = join(this.dir, 'btrfs.img');
    if (!existsSync(img)) {
      spawnSync('truncate', ['-s', '4G', img]);
      const mk = spawnSync('mkfs.btrfs', ['-q', img], { encoding: 'utf8' });
      if (mk.status !== 0) throw new Error(`mkfs.btrfs failed: ${mk.stderr}`);
    }
    const m = spawnSync('mount', ['-o', 'loop', img, this.root], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount -o loop ${img} failed: ${m.stderr}`);
    this.btrfsMounted = true;
  }

  private btrfsMounted = false;

  /** Makes the data-root directory (btrfs: mounts its file system) without starting the daemon. */
  prepare(): void {
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.exec, { recursive: true });
    this.mountBtrfs();
  }

  /** Starts dockerd and waits until it answers (or fails, with its log). */
  async start(timeoutMs = 60_000): Promise<void> {
    this.prepare();
    const out = openSync(this.log, 'a');
    const child = spawn(
      'dockerd',
      [
        '--data-root',
        this.root,
        '--exec-root',
        this.exec,
        '--pidfile',
        this.pidfile,
        '-H',
        `unix://${this.sock}`,
        '--storage-driver',
        this.driver,
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
      ],
      { stdio: ['ignore', out, out], detached: true },
    );
    child.unref();
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`dockerd exited at start:\n${this.tail()}`);
      if (existsSync(this.sock) && this.docker(['version', '--format', '{{.Server.Version}}'], { check: false }).status === 0) {
        this.running = true;
        return;
      }
      await sleep(200);
    }
    throw new Error(`dockerd did not answer within ${timeoutMs} ms:\n${this.tail()}`);
  }

  /** Starts dockerd expecting it to fail; resolves with its log once it has exited. */
  async startExpectingFailure(timeoutMs = 30_000): Promise<string> {
    try {
      await this.start(timeoutMs);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('dockerd started, but a failure was expected');
  }

  tail(lines = 30): string {
    try {
      return readFileSync(this.log, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, DOCKER_HOST: `unix://${this.sock}`, DOCKER_CLI_HINTS: 'false' };
  }

  /** Runs a docker client command against this daemon; throws with its output unless check is false. */
  docker(args: string[], opts: { check?: boolean; input?: string | Buffer; cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
    const r = spawnSync('docker', args, {
      env: { ...this.env(), ...(opts.env ?? {}) },
      encoding: 'utf8',
      input: opts.input,
      cwd: opts.cwd,
      maxBuffer: 256 << 20,
    });
    if (opts.check !== false && r.status !== 0) {
      throw new Error(`docker ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
    return r;
  }

  pid(): number | undefined {
    try {
      const n = Number(readFileSync(this.pidfile, 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** SIGTERM by the pidfile's pid, then waits for the process to exit (SIGKILL after the timeout). */
  async stop(timeoutMs = 30_000): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) {
      this.running = false;
      return;
    }
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      this.running = false;
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
      await sleep(100);
    }
    this.running = false;
    this.unmountLeftovers();
  }

  /** Unmounts anything the daemon left mounted below its directory (deepest first); the btrfs root itself stays. */
  unmountLeftovers(): void {
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .map((p) => p.replace(/\\040/g, ' '))
      .filter((p) => p === this.dir || p.startsWith(`${this.dir}/`))
      .filter((p) => !(this.btrfsMounted && p === this.root))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  }

  /** Stops the daemon if it runs and removes its directory. */
  async cleanup(): Promise<void> {
    if (this.running || this.pid() !== undefined) await this.stop();
    this.unmountLeftovers();
    if (this.btrfsMounted) {
      spawnSync('umount', [this.root], { stdio: 'ignore' });
      this.btrfsMounted = false;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * A base image with a shell, made without a registry: busybox-static's rootfs, `docker import`ed.
   */
  importBusybox(tag = 'base:busybox'): string {
    const rootfs = mkdtempSync(join(tmpdir(), 'dataroot-busybox-'));
    try {
      // mkdtemp makes the dir 0700; as the image's / it would lock out non-root users (USER nobody) on vfs.
      chmodSync(rootfs, 0o755);
      for (const d of ['bin', 'tmp', 'etc', 'root', 'var']) mkdirSync(join(rootfs, d), { recursive: true });
      chmodSync(join(rootfs, 'tmp'), 0o1777);
      spawnSync('cp', ['/bin/busybox', join(rootfs, 'bin', 'busybox')]);
      const applets = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      for (const a of applets) if (a !== 'busybox') spawnSync('ln', ['-sf', 'busybox', join(rootfs, 'bin', a)]);
      writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
      writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
      const tar = spawnSync('tar', ['--numeric-owner', '-C', rootfs, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
      const r = spawnSync('docker', ['import', '-', tag], { env: this.env(), input: tar.stdout, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`docker import failed: ${r.stderr}`);
      return r.stdout.trim();
    } finally {
      rmSync(rootfs, { recursive: true, force: true });
    }
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';

/**
 * The daemon lock. dockerd holds an exclusive flock on `<root>/volumes/metadata.db` for its whole
 * life; a writer takes the same lock, non-blocking, and keeps it while it writes. The lock is
 * taken by util-linux flock(1) held by a child process: a real flock(2) on the file, released
 * when the child exits (including when this process dies).
 */
const BUSY = 75;

export type LockState = 'held' | 'free' | 'absent';

/** Probes the lock without keeping it. Never creates the file. */
export function probeLock(file: string): LockState {
  if (!existsSync(file)) return 'absent';
  const r = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(BUSY), file, 'true'], { stdio: 'ignore' });
  if (r.error !== undefined) {
    throw new DatarootError('IO_FLOCK_UNAVAILABLE', `cannot run flock(1) from util-linux: ${r.error.message}`, { file });
  }
  if (r.status === BUSY) return 'held';
  if (r.status === 0) return 'free';
  throw new DatarootError('IO_FLOCK_FAILED', `flock(1) exited with ${r.status} on ${file}`, { file });
}

export interface HeldLock {
  file: string;
  release(): Promise<void>;
}

/** Takes the exclusive lock and holds it until release(); refuses when a daemon holds it. */
export async function acquireLock(file: string): Promise<HeldLock> {
  if (!existsSync(file)) throw new DatarootError('IO_NOT_FOUND', `${file} does not exist; cannot take the daemon lock`, { file });
  const child: ChildProcess = spawn(
    'flock',
    ['--exclusive', '--nonblock', '--conflict-exit-code', String(BUSY), file, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    { stdio: ['pipe', 'pipe', 'ignore'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked')) resolve();
    });
    child.on('error', (e) => reject(new DatarootError('IO_FLOCK_UNAVAILABLE', `cannot run flock(1): ${e.message}`, { file })));
    child.on('exit', (code) => {
      if (code === BUSY) reject(new DatarootError('STORE_DAEMON_RUNNING', `a running daemon holds ${file}; stop dockerd first`, { file }));
      else reject(new DatarootError('IO_FLOCK_FAILED', `flock(1) exited with ${code}`, { file }));
    });
  });
  return {
    file,
    release: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin?.end();
      }),
  };
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { DatarootError } from '../formats/errors.js';
import { flockHeld } from './native.js';

/**
 * The daemon lock. dockerd holds an exclusive flock on `<root>/volumes/metadata.db` for its whole
 * life; a writer takes the same lock, non-blocking, and keeps it while it writes. (bbolt retries
 * its lock for a second when dockerd opens the file, so a probe's instant hold never fails it.) The lock is
 * taken by util-linux flock(1) held by a child process: a real flock(2) on the file, released
 * when the child exits (including when this process dies).
 */
const BUSY = 75;

export type LockState = 'held' | 'free' | 'absent';

function isRegularFile(file: string): boolean {
  try {
    return lstatSync(file).isFile();
  } catch {
    return false;
  }
}

/** The key /proc/locks uses for a file: MAJOR:MINOR in hex (glibc's dev_t encoding), then the inode. */
function lockKey(dev: bigint, ino: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${ino}`;
}

/** Whether /proc/locks text lists a flock(2) lock held on the key (a waiter line, `->`, is not a holder). */
function listsFlock(text: string, key: string): boolean {
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === 'FLOCK' && f[5] === key) return true;
  }
  return false;
}

/**
 * Whether /proc/locks lists a flock(2) lock on the file (any process, shared or exclusive: either
 * blocks an exclusive lock). Undefined when /proc/locks cannot be read. Reading /proc/locks opens
 * nothing of the data-root and starts no process.
 */
function flockListed(file: string): boolean | undefined {
  try {
    const st = statSync(file, { bigint: true });
    return listsFlock(readFileSync('/proc/locks', 'utf8'), lockKey(st.dev, st.ino));
  } catch {
    return undefined;
  }
}

/**
 * The same question asked in the background (the read of /proc/locks runs on libuv's thread
 * pool while the caller works): true when some process holds a flock on the file.
 */
export async function isFlockedAsync(file: string): Promise<boolean> {
  if (!isRegularFile(file)) return false;
  const quick = nativeProbe(file);
  if (quick !== undefined) return quick === 'held';
  try {
    const [st, text] = await Promise.all([stat(file, { bigint: true }), readFile('/proc/locks', 'utf8')]);
    return listsFlock(text, lockKey(st.dev, st.ino));
  } catch {
    try {
      return probeLock(file) === 'held';
    } catch {
      return false;
    }
  }
}

/** The addon's probe (microseconds; /proc/locks can take tens of milliseconds to read). */
function nativeProbe(file: string): LockState | undefined {
  try {
    const held = flockHeld(file);
    return held === undefined ? undefined : held ? 'held' : 'free';
  } catch {
    return undefined; // unreadable file: the other ways answer or say why
  }
}

/**
 * Probes the lock without keeping it: with the addon, a lock tried on a read-only descriptor and
 * released at once; else /proc/locks; else flock(1). Never creates or writes the file.
 */
export function probeLock(file: string): LockState {
  // Only a regular file is probed: opening a FIFO planted there would block, a symlink leads elsewhere.
  if (!isRegularFile(file)) return 'absent';
  const quick = nativeProbe(file);
  if (quick !== undefined) return quick;
  const listed = flockListed(file);
  if (listed !== undefined) return listed ? 'held' : 'free';
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
  if (!isRegularFile(file))
    throw new DatarootError('FILE_NOT_REGULAR', `${file} is not a regular file (a symlink, FIFO or device there is refused); cannot take the daemon lock`, {
      file,
    });
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

import { rmSync } from 'node:fs';

/**
 * Paths this process must remove however it ends: private temp dirs (an unpacked archive root) and
 * staging. Removed by their owner's `finally`; on SIGINT, SIGTERM or SIGHUP they are removed here
 * before the process exits with 128 + the signal number, and at exit whatever is still listed.
 */
const pending = new Set<string>();
let installed = false;

const SIGNALS: [NodeJS.Signals, number][] = [
  ['SIGINT', 2],
  ['SIGTERM', 15],
  ['SIGHUP', 1],
];

function removeAll(): void {
  for (const p of pending) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      /* best effort at exit */
    }
  }
  pending.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const [sig, n] of SIGNALS) {
    process.on(sig, () => {
      removeAll();
      // Only this process's own handler ran: exit as the signal would have.
      process.exit(128 + n);
    });
  }
  process.on('exit', removeAll);
}

/** Registers a path for removal at any exit; returns the function that removes it now. */
export function removeOnExit(path: string): () => void {
  install();
  pending.add(path);
  return () => {
    pending.delete(path);
    rmSync(path, { recursive: true, force: true });
  };
}

/** Registers a path that a writer is staging; `done()` forgets it (it was committed or removed). */
export function trackStaging(path: string): { done(): void } {
  install();
  pending.add(path);
  return { done: () => void pending.delete(path) };
}

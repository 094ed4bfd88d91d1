import { removeTree } from './confined.js';

/**
 * Cleanup however the process ends. What a writer or reader registers here (removing a private
 * temp dir, a staging directory, a partial pack) runs when the process is stopped by SIGINT,
 * SIGTERM or SIGHUP — synchronously, newest first — and then the signal is raised again with its
 * default action, so the exit status still says which signal ended the process. Paths registered
 * with removeOnExit are also removed at a normal exit. Each registration returns its own removal.
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const tasks = new Set<() => void>();
let installed = false;

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  installed = false;
  process.kill(process.pid, sig);
}

function runAll(): void {
  for (const t of [...tasks].reverse()) {
    try {
      t();
    } catch {
      /* the others still run */
    }
  }
  tasks.clear();
}

let exitHook = false;

/** Runs `task` if a signal stops the process before the returned function is called. */
export function cleanupOnSignal(task: () => void): () => void {
  tasks.add(task);
  if (!installed) {
    for (const s of SIGNALS) process.on(s, onSignal);
    installed = true;
  }
  if (!exitHook) {
    process.on('exit', runAll);
    exitHook = true;
  }
  return () => {
    tasks.delete(task);
    if (tasks.size === 0 && installed) {
      for (const s of SIGNALS) process.removeListener(s, onSignal);
      installed = false;
    }
  };
}

/** Runs a write; on its failure, and on a signal while it runs, `undo` removes what it wrote. */
export async function undoneUnlessDone<T>(undo: () => void, write: () => Promise<T>): Promise<T> {
  const stop = cleanupOnSignal(undo);
  try {
    return await write();
  } catch (e) {
    undo();
    throw e;
  } finally {
    stop();
  }
}

/** Removes a path on a signal or at exit; the returned function removes it now (and forgets it). */
export function removeOnExit(path: string): () => void {
  const remove = (): void => removeTree(path);
  const forget = cleanupOnSignal(remove);
  return () => {
    forget();
    remove();
  };
}

/** A staging path removed on a signal until `done()` (it was committed or removed by its owner). */
export function trackStaging(path: string): { done(): void } {
  const forget = cleanupOnSignal(() => removeTree(path));
  return { done: forget };
}

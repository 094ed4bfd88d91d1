/**
 * Cleanup when the process is stopped by a signal (SIGINT, SIGTERM, SIGHUP): what a writer
 * registers here (removing its temp files, a partial pack, a staging directory) runs
 * synchronously, then the signal is raised again with its default action, so the exit status
 * still says which signal ended the process. Registration returns its own removal.
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const tasks = new Set<() => void>();
let installed = false;

function onSignal(sig: NodeJS.Signals): void {
  for (const t of [...tasks].reverse()) {
    try {
      t();
    } catch {
      /* the others still run */
    }
  }
  tasks.clear();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  installed = false;
  process.kill(process.pid, sig);
}

export function cleanupOnSignal(task: () => void): () => void {
  tasks.add(task);
  if (!installed) {
    for (const s of SIGNALS) process.on(s, onSignal);
    installed = true;
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

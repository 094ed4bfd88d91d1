import { existsSync, renameSync, writeFileSync } from 'node:fs';

/**
 * Test-only hooks, driven by environment variables so they cannot be passed by accident on the
 * command line. `pauseAt` creates the file and waits (the process keeps its locks) until a test
 * removes it; at most 5 minutes.
 */
export function pauseAt(file: string, what: string): void {
  announce(file, what);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 6000 && existsSync(file); i++) Atomics.wait(cell, 0, 0, 50);
}

/** The same without blocking the event loop: signals (SIGTERM, SIGINT) are handled while it waits. */
export async function pauseAsync(file: string, what: string): Promise<void> {
  announce(file, what);
  for (let i = 0; i < 6000 && existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
}

/** The file appears with its content (renamed into place): a test that sees it never reads it empty. */
function announce(file: string, what: string): void {
  writeFileSync(`${file}.tmp`, what);
  renameSync(`${file}.tmp`, file);
}

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildGoProgram } from './gobolt.js';

/** The name each test builds an oracle under (the binary's name in its cache dir). */
const BINARY_NAME: Record<string, string> = { tarsplit: 'tarsplitoracle' };

/**
 * Runs once in vitest's main process before any test file: builds every Go oracle of test/oracle
 * into its cache (by source hash). A worker that compiles Go itself blocks its event loop for as
 * long as the build takes (a minute or more on a busy machine, the first time), and vitest fails
 * the whole run when a worker stops answering for 60 s.
 */
export default function setup(): void {
  if (spawnSync('go', ['version']).status !== 0) return;
  const root = fileURLToPath(new URL('../oracle/', import.meta.url));
  for (const name of readdirSync(root)) {
    const src = `${root}${name}/main.go`;
    if (existsSync(src)) buildGoProgram(src, BINARY_NAME[name] ?? name);
  }
}

import { spawnSync } from 'node:child_process';

/** True when CI asked that tests needing dockerd or Go fail instead of skipping. */
export const REQUIRE_E2E = process.env['DATAROOT_REQUIRE_E2E'] === '1';

export function haveCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether a suite that needs `tools` can run. Absent tools skip the suite locally; with
 * DATAROOT_REQUIRE_E2E=1 (set by .ci/run) they are an error instead.
 */
export function needs(...tools: string[]): boolean {
  const missing = tools.filter((t) => !haveCommand(t));
  if (missing.length === 0) return true;
  if (REQUIRE_E2E) throw new Error(`DATAROOT_REQUIRE_E2E=1 but ${missing.join(', ')} is not installed`);
  return false;
}

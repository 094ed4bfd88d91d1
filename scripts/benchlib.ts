/** What the bench:* scripts share: timing a command with its peak RSS, and medians. */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface Sample {
  wall: number;
  rssKiB: number;
  /** CPU seconds, user + system, of the command and its threads. */
  cpu: number;
}

/**
 * Runs a command with stdout to /dev/null: wall time by hrtime, peak RSS and CPU time by GNU time. A failure
 * stops the benchmark, except exit 1 when `allowStatus1` (diff tools that found differences).
 */
export function measure(cmd: string[], allowStatus1 = false): Sample {
  const devnull = openSync('/dev/null', 'w');
  try {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', ...cmd], { stdio: ['ignore', devnull, 'pipe'], encoding: 'utf8' });
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0 && !(allowStatus1 && r.status === 1)) throw new Error(`${cmd.join(' ')} failed (${r.status}): ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    const [rss, user, sys] = lines[lines.length - 1]!.split(' ').map(Number);
    return { wall, rssKiB: rss!, cpu: user! + sys! };
  } finally {
    closeSync(devnull);
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../src/io/native.js';
import { needs, REQUIRE_E2E } from '../support/env.js';
import type { CaseReport } from '../support/hostile-runner.js';

/**
 * The seeded fuzzer over data-root trees (issue #13). Each case takes a shipped sample root
 * (overlay2 or vfs) and applies 1–3 random hostile mutations (test/support/hostile.ts, MUTATIONS):
 * files and directories swapped for symlinks to a canary tree outside the root (absolute, `../`,
 * too many `../`), symlink loops, FIFOs, devices and sockets, truncation, flipped bytes, ID files
 * rewritten (`../../victim`, absolute paths, control characters, 70 KB strings), JSON with wrong
 * types, nested 100,000 deep, 600 MB sparse, terminal escapes in names and values, image configs
 * rewritten and stored under their new sha256 (so they verify), hostile tar-split names, parent
 * cycles, hostile BoltDB files and names inside them, whiteout and odd names, overlay2 l/ links
 * out, planted containers, volumes opts and staging leftovers. Then one random command (or
 * DATAROOT_FUZZ_CMDS of them) of every read family, `verify`, `verify --deep`, `gc --dry-run`
 * (and now and then a real `gc`), with or without --json; one case in 100 runs it through the
 * real binary (DATAROOT_FUZZ_BIN_EVERY), one in 40 reads its root from a tar (or tar.gz) archive
 * of the mutated root, most with hostile members in front. For every command:
 *
 * - nothing outside the root is read: the canary's content (also as hex and base64, and its
 *   files' sha256) and the names in the canary directory never appear on stdout, stderr or in a
 *   written layer tar; no outside entry's atime moves (they are set in the past, so a read shows);
 * - nothing outside is written or removed: the outside tree's sha256, mtime and ctime are equal;
 *   nothing is left in TMPDIR or next to the root; gc names no path outside the root;
 * - no hang: a command that has not ended after 60 s (DATAROOT_FUZZ_CMD_MS; a verify --deep of a
 *   600 MB sparse file takes a few seconds) fails, and a watchdog kills a child process that
 *   reports no progress for 180 s (a synchronous hang); bounded memory (peak RSS under 2 GB);
 * - exit 0, 1 or 2, never INTERNAL or a stack trace; exit 2 ends with one coded line
 *   (`dataroot: CODE: …`, `{"error":{"code":…}}` with --json); --json prints one JSON document;
 *   no raw control character reaches the terminal; read commands leave the root unchanged (no
 *   entry's ctime, which any write, rename, chmod or utimes moves, passes a tick taken before);
 * - verify does not say OK when evidence it reads was swapped for a symlink, FIFO, device or a
 *   600 MB file, or an ID file was rewritten.
 *
 * The cases run in child processes (test/support/hostile-runner.ts through vite-node), since a
 * synchronous hang cannot be interrupted in-process. Replay a failure with the seed and case
 * number it prints:
 * `DATAROOT_FUZZ_SEED=<seed> DATAROOT_FUZZ_ONLY=<case>[,<case>…] npx vitest run test/hostile/fuzz.test.ts`,
 * or by hand, keeping the mutated root:
 * `DATAROOT_FUZZ_KEEP=1 npx vite-node test/support/hostile-runner.ts <seed> <case>`.
 * DATAROOT_FUZZ_CASES sets the number of cases (default 5000), DATAROOT_FUZZ_JOBS the number of
 * child processes (default 2), DATAROOT_FUZZ_DIR where they work (default /dev/shm when there).
 */

const env = process.env;
const SEED = Number(env['DATAROOT_FUZZ_SEED'] ?? 0x13f022);
const ONLY = env['DATAROOT_FUZZ_ONLY'];
const CASES = Number(env['DATAROOT_FUZZ_CASES'] ?? 5000);
const JOBS = Math.max(1, Number(env['DATAROOT_FUZZ_JOBS'] ?? 2));
/** No message from a child for this long: its case hangs. */
const WATCHDOG_MS = Number(env['DATAROOT_FUZZ_WATCHDOG_MS'] ?? 180_000);

const VITE_NODE = fileURLToPath(new URL('../../node_modules/vite-node/vite-node.mjs', import.meta.url));
const RUNNER = fileURLToPath(new URL('../support/hostile-runner.ts', import.meta.url));

interface Failure {
  i: number;
  base: string;
  mutations: string[];
  what: string;
}

/** Runs the cases of one shard, restarting the child after a hang or a crash. */
async function shard(cases: number[], onReport: (r: CaseReport) => void, onFailure: (f: Failure) => void): Promise<void> {
  let todo = cases;
  while (todo.length > 0) {
    const done = new Set<number>();
    let current: { i: number; args?: string[]; base?: string; mutations?: string[] } | undefined;
    let work: string | undefined;
    const child = spawn(process.execPath, ['--max-old-space-size=3072', VITE_NODE, RUNNER, String(SEED), todo.join(',')], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    let timer: NodeJS.Timeout | undefined;
    let hung = false;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = true;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, WATCHDOG_MS);
    };
    arm();
    let crash: string | undefined;
    child.on('message', (m: { t: string; i?: number; args?: string[]; work?: string; message?: string; base?: string; mutations?: string[] }) => {
      arm();
      if (m.t === 'ready') work = m.work;
      else if (m.t === 'case') current = { i: m.i! };
      else if (m.t === 'mutated') current = { i: m.i!, base: m.base!, mutations: m.mutations! };
      else if (m.t === 'cmd') current = { ...current, i: m.i!, args: m.args! };
      else if (m.t === 'done') {
        done.add(m.i!);
        current = undefined;
        onReport(m as unknown as CaseReport);
      } else if (m.t === 'crash') crash = m.message;
    });
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    clearTimeout(timer);
    if (work !== undefined) spawnSync('rm', ['-rf', '--', work]);
    if (current !== undefined) {
      const what = hung
        ? `no progress for ${WATCHDOG_MS} ms (a hang) in \`${current.args?.join(' ') ?? 'setting up the case'}\``
        : `the child process died (exit ${code}) in \`${current.args?.join(' ') ?? 'setting up the case'}\`: ${crash ?? out.slice(-1500)}`;
      onFailure({ i: current.i, base: current.base ?? '?', mutations: current.mutations ?? [], what });
      done.add(current.i);
    } else if (crash !== undefined) {
      throw new Error(`fuzz runner failed: ${crash}`);
    } else if (done.size === 0) {
      throw new Error(`fuzz runner exited ${code} without running a case: ${out}`);
    }
    todo = todo.filter((i) => !done.has(i));
  }
}

/** Devices and FIFOs are made with mknod (the addon), which needs root. */
function canRun(): boolean {
  const ok = process.getuid?.() === 0 && nativeAvailable();
  if (!ok && REQUIRE_E2E) throw new Error('DATAROOT_REQUIRE_E2E=1 but the hostile fuzzer needs root and the built addon (mknod)');
  return ok && needs('tar', 'rm');
}

describe.runIf(canRun())('hostile data-root fuzzer', () => {
  const cases = ONLY !== undefined ? ONLY.split(',').map(Number) : Array.from({ length: CASES }, (_, i) => i);

  it(`${cases.length} mutated roots (seed ${SEED}): nothing outside read or written, no hang, coded errors only`, async () => {
    const t0 = performance.now();
    const failures: Failure[] = [];
    const reports: CaseReport[] = [];
    const onReport = (r: CaseReport): void => {
      reports.push(r);
      for (const f of r.failures) failures.push({ i: r.i, base: r.base, mutations: r.mutations, what: f });
    };
    const shards = Array.from({ length: JOBS }, (_, k) => cases.filter((_, n) => n % JOBS === k)).filter((s) => s.length > 0);
    await Promise.all(shards.map((s) => shard(s, onReport, (f) => failures.push(f))));
    const seconds = (performance.now() - t0) / 1000;

    // Statistics: what was exercised, and how it ended.
    const families = new Map<string, number>();
    const familyMs = new Map<string, number>();
    const exits = new Map<string, number>();
    const codes = new Map<string, number>();
    const muts = new Map<string, number>();
    let runs = 0;
    let binRuns = 0;
    let archiveRuns = 0;
    const slow: { ms: number; what: string }[] = [];
    let maxRss = 0;
    let overhead = 0;
    let cmdTime = 0;
    let slowestCase = { ms: 0, i: -1 };
    for (const r of reports) {
      const caseMs = r.overheadMs + r.commands.reduce((s, c) => s + c.ms, 0);
      if (caseMs > slowestCase.ms) slowestCase = { ms: caseMs, i: r.i };
      maxRss = Math.max(maxRss, r.maxRssMb);
      overhead += r.overheadMs;
      for (const m of r.mutations) {
        const n = m.slice(0, m.indexOf(':'));
        if (!m.includes('(nothing to mutate)') && !m.includes('(not applied')) muts.set(n, (muts.get(n) ?? 0) + 1);
      }
      for (const c of r.commands) {
        runs++;
        cmdTime += c.ms;
        if (c.bin) binRuns++;
        if (c.archive) archiveRuns++;
        families.set(c.family, (families.get(c.family) ?? 0) + 1);
        familyMs.set(c.family, (familyMs.get(c.family) ?? 0) + c.ms);
        exits.set(String(c.code), (exits.get(String(c.code)) ?? 0) + 1);
        if (c.errorCode !== undefined) codes.set(c.errorCode, (codes.get(c.errorCode) ?? 0) + 1);
        if (slow.length < 5 || c.ms > slow[4]!.ms) {
          slow.push({
            ms: c.ms,
            what: `case ${r.i}: ${c.args.join(' ')}${c.bin ? ' (binary)' : ''}${c.archive ? ' (archive root)' : ''} after ${r.mutations.map((x) => x.slice(0, 60)).join(' | ')}`,
          });
          slow.sort((a, b) => b.ms - a.ms).splice(5);
        }
      }
    }
    const top = (m: Map<string, number>, n = 100): string =>
      [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, n)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    console.log(
      [
        `hostile fuzz: seed ${SEED}, ${reports.length} cases, ${runs} command runs (${binRuns} through the binary, ${archiveRuns} on archive roots) in ${seconds.toFixed(0)} s; slowest case ${slowestCase.ms.toFixed(0)} ms (case ${slowestCase.i}), slowest command ${slow[0]?.ms.toFixed(0)} ms; peak RSS ${maxRss} MB; time in commands ${(cmdTime / 1000).toFixed(0)} s, around them ${(overhead / 1000).toFixed(0)} s`,
        `slowest: ${slow.map((s) => `${s.ms.toFixed(0)} ms ${s.what}`).join('\n         ')}`,
        `exits: ${top(exits)}`,
        `families: ${top(families)}`,
        `seconds per family: ${top(new Map([...familyMs].map(([k, v]) => [k, Math.round(v / 1000)])))}`,
        `mutations: ${top(muts)}`,
        `error codes: ${top(codes, 40)}`,
      ].join('\n'),
    );

    // Failures, grouped by kind, one example each with its replay line.
    const groups = new Map<string, Failure[]>();
    for (const f of failures) {
      const key = f.what
        .replace(/`[^`]*`/, (s) => s.split(' ').slice(0, 2).join(' '))
        .replace(/\d+/g, 'N')
        .slice(0, 140);
      groups.set(key, [...(groups.get(key) ?? []), f]);
    }
    const text = [...groups.values()]
      .slice(0, 40)
      .map((fs) => {
        const f = fs[0]!;
        return `- ${f.what}\n  case ${f.i} (${fs.length} like it: ${fs
          .slice(0, 8)
          .map((x) => x.i)
          .join(
            ',',
          )}), base ${f.base}, mutations: ${f.mutations.join(' | ')}\n  replay: DATAROOT_FUZZ_SEED=${SEED} DATAROOT_FUZZ_ONLY=${f.i} npx vitest run test/hostile/fuzz.test.ts`;
      })
      .join('\n');
    expect(failures.length, `${failures.length} failures in ${groups.size} groups:\n${text}`).toBe(0);

    if (ONLY === undefined && cases.length >= 1000) {
      // The run reached what it claims to: every command family and mutation, all three exits.
      expect(reports.length).toBe(cases.length);
      for (const f of [
        'info',
        'files',
        'images',
        'image inspect',
        'history',
        'layers',
        'containers',
        'container inspect',
        'container diff',
        'volumes',
        'volume inspect',
        'networks',
        'network inspect',
        'cat',
        'bolt',
        'verify',
        'verify --deep',
        'layer tar',
        'gc --dry-run',
        'gc',
      ]) {
        expect(families.get(f) ?? 0, f).toBeGreaterThan(runs / 100);
      }
      for (const x of ['0', '1', '2']) expect(exits.get(x) ?? 0, `exit ${x}`).toBeGreaterThan(runs / 20);
      expect(binRuns).toBeGreaterThan(cases.length / 200);
      expect(archiveRuns).toBeGreaterThan(cases.length / 200);
      for (const n of [
        'symlink-out-file',
        'symlink-out-dir',
        'special-file',
        'truncate',
        'id-rewrite',
        'json-type',
        'json-deep',
        'json-huge',
        'json-escapes',
        'bolt-hostile',
        'whiteout-names',
        'weird-names',
      ]) {
        expect(muts.get(n) ?? 0, n).toBeGreaterThan(cases.length / 100);
      }
    }
  }, 3_600_000);
});

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BIN, run, SAMPLES } from './cli.js';
import { mulberry32 } from './fuzz.js';
import {
  applyMutations,
  caseSeed,
  checkOutcome,
  copyTree,
  diffMaps,
  expectedFindings,
  fingerprintOutside,
  changedSince,
  changedSinceMark,
  ctimeAfter,
  ctimeMark,
  listTree,
  makeOutside,
  planCommands,
  prependHostile,
  removeTree,
  resetAtimes,
  restoreTouched,
  shapeOf,
  tarRoot,
  type Cmd,
  type Entry,
  type MutationCtx,
  type Outcome,
  type Targets,
} from './hostile.js';

/**
 * The child process of the hostile data-root fuzzer (started by test/hostile/fuzz.test.ts through
 * vite-node, with an IPC channel). It runs the cases it is given and reports each over IPC; the
 * parent is the watchdog: a case that hangs (a FIFO read, an endless loop) is killed there, since
 * a synchronous hang cannot be interrupted from inside.
 *
 * argv: seed, comma-separated case numbers. Run by hand to debug a case (its failures are
 * printed, and DATAROOT_FUZZ_KEEP=1 keeps its mutated root):
 * `DATAROOT_FUZZ_KEEP=1 npx vite-node test/support/hostile-runner.ts <seed> <case>`
 */

export interface CaseReport {
  t: 'done';
  i: number;
  base: string;
  mutations: string[];
  commands: { args: string[]; family: string; code: number | null; ms: number; errorCode?: string | undefined; bin: boolean; archive: boolean }[];
  failures: string[];
  maxRssMb: number;
  /** Time of the case outside the commands (copy, mutate, fingerprints, restore). */
  overheadMs: number;
}

/**
 * Commands run on each mutated root. One: a command costs more than the rest of a case (copying,
 * mutating, the checks, the undo), so more cases with one command each reach more mutations for
 * the same time than fewer cases with several (4 made a 5,000-case run 4 times as long).
 */
const CMDS_PER_CASE = Math.max(1, Number(process.env['DATAROOT_FUZZ_CMDS'] ?? 1));
/** One in this many cases runs its commands through the real binary. */
const BIN_EVERY = Number(process.env['DATAROOT_FUZZ_BIN_EVERY'] ?? 100);
/** One in this many cases reads its root from a tar archive. */
const ARCHIVE_EVERY = Number(process.env['DATAROOT_FUZZ_ARCHIVE_EVERY'] ?? 40);
const CMD_LIMIT_MS = Number(process.env['DATAROOT_FUZZ_CMD_MS'] ?? 60_000);
const RSS_LIMIT_MB = 2048;

/** To the parent over IPC; run by hand (no IPC), the failures are printed. */
function send(m: unknown): void {
  if (process.send !== undefined) process.send(m);
  else if ((m as CaseReport).t === 'done' && ((m as CaseReport).failures.length > 0 || process.env['DATAROOT_FUZZ_VERBOSE'] === '1'))
    console.log(JSON.stringify(m));
}

interface Base {
  name: 'overlay2' | 'vfs';
  dir: string;
  root: string;
  shape: Map<string, string>;
  /** Driver directories of container layers (mount-id, init-id). */
  containerLayers: Set<string>;
  entries: Entry[];
  targets: Targets;
}

async function discover(dir: string, driver: 'overlay2' | 'vfs'): Promise<Targets> {
  const j = async (args: string[]): Promise<Record<string, unknown>[]> => {
    const r = await run([...args, '--json', '--root', dir]);
    if (r.code !== 0) throw new Error(`base ${driver}: ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>[];
  };
  const images = await j(['images', '-a']);
  const containers = await j(['containers']);
  const layers = await j(['layers']);
  const volumes = await j(['volumes']);
  const networks = await j(['networks']);
  const ids = images.map((x) => String(x['Id']));
  const tags = images.flatMap((x) => (x['RepoTags'] as string[] | null) ?? []);
  return {
    images: [...tags, ...ids, ...ids.map((x) => x.slice(7, 19)), 'no/such:image', 'sha256:0000'],
    containers: [
      ...containers.flatMap((x) => [String(x['Id']), String(x['Id']).slice(0, 12), ...((x['Names'] as string[]) ?? []).map((n) => n.replace(/^\//, ''))]),
      'nosuch',
    ],
    layers: [...layers.flatMap((x) => [String(x['chainId']), String(x['diffId']).slice(7, 19)]), 'ffffffff'],
    volumes: [...volumes.map((x) => String(x['Name'])), 'nosuchvol'],
    networks: [...networks.flatMap((x) => [String(x['Name']), String(x['Id']).slice(0, 12)]), 'nosuchnet'],
    bolts: [
      'volumes/metadata.db',
      'network/files/local-kv.db',
      'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db',
      'buildkit/cache.db',
      'buildkit/metadata_v2.db',
      'buildkit/snapshots.db',
      'buildkit/containerdmeta.db',
    ],
  };
}

function errorCode(c: Cmd, stderr: string): string | undefined {
  const last =
    stderr
      .split('\n')
      .filter((l) => l !== '')
      .pop() ?? '';
  if (c.json && last.startsWith('{')) {
    try {
      return String((JSON.parse(last) as { error: { code: string } }).error.code);
    } catch {
      return undefined;
    }
  }
  return /^dataroot: ([A-Z][A-Z0-9_]*): /.exec(last)?.[1];
}

async function main(): Promise<void> {
  const seed = Number(process.argv[2]);
  const cases = (process.argv[3] ?? '')
    .split(',')
    .filter((s) => s !== '')
    .map(Number);
  /** Replaying chosen cases: the outside tree is checked after every command, the restore after every case. */
  const careful = process.env['DATAROOT_FUZZ_ONLY'] !== undefined;
  // On tmpfs when there is one: a case is mostly small file-system operations.
  const parent =
    process.env['DATAROOT_FUZZ_DIR'] ??
    (existsSync('/dev/shm') && statfsSync('/dev/shm').bavail * statfsSync('/dev/shm').bsize > 2 ** 30 ? '/dev/shm' : tmpdir());
  const work = mkdtempSync(join(parent, 'dataroot-fuzz-'));
  // Everything of the case lives under work: outside/ (canary, sentinel), <base>/root, out/, tmp/.
  const tmp = join(work, 'tmp');
  mkdirSync(tmp);
  process.env['TMPDIR'] = tmp;
  send({ t: 'ready', work });
  const bases: Base[] = [];
  for (const [name, file] of [
    ['overlay2', 'after-build.tar.gz'],
    ['vfs', 'after-build-vfs.tar.gz'],
  ] as const) {
    const dir = join(work, `base-${name}`);
    mkdirSync(dir);
    const r = spawnSync('tar', ['--numeric-owner', '--same-permissions', '--xattrs', '--xattrs-include=*', '-xzf', join(SAMPLES, file), '-C', dir]);
    if (r.status !== 0) throw new Error(`tar: ${String(r.stderr)}`);
    // Each base has its own root at the same depth under work (W/<name>/root), restored after each case.
    const root = join(work, name, 'root');
    copyTree(dir, root);
    const entries = listTree(dir);
    const containerLayers = new Set(
      entries.filter((e) => /\/layerdb\/mounts\/[0-9a-f]{64}\/(mount-id|init-id)$/.test(e.rel)).map((e) => readFileSync(join(dir, e.rel), 'utf8').trim()),
    );
    bases.push({ name, dir, root, shape: shapeOf(dir), entries, containerLayers, targets: await discover(dir, name) });
  }
  const outside = makeOutside(work, readFileSync(join(bases[0]!.dir, 'volumes/metadata.db')));
  const outDir = join(work, 'out');
  mkdirSync(outDir);
  const outFile = join(outDir, 'layer.tar');
  let outsideBefore = fingerprintOutside(outside);
  const binOk = existsSync(BIN) && existsSync(new URL('../../dist/cli/main.js', import.meta.url));

  for (const i of cases) {
    send({ t: 'case', i });
    const caseStart = performance.now();
    let cmdMs = 0;
    const rnd = mulberry32(caseSeed(seed, i));
    const base = bases[rnd() < 0.5 ? 0 : 1]!;
    const root = base.root;
    const caseDir = dirname(root);
    const archive = join(caseDir, 'root.tar');
    if (careful || i % 50 === 0) {
      const d = diffMaps(base.shape, shapeOf(root));
      if (d.length > 0) throw new Error(`case ${i}: the root was not restored to the base: ${d.join('; ')}`);
    }
    const m: MutationCtx = { root, rnd, out: outside, entries: base.entries, driver: base.name, touched: [] };
    const mutations = applyMutations(m);
    // Read commands leave the root as it is: nothing in it changes after this mark. The tick that
    // proves it is taken just before the commands: what is done meanwhile overlaps its wait.
    const mark = join(outDir, 'mark');
    const c0 = ctimeMark(mark);
    const cmds = planCommands(
      rnd,
      base.targets,
      base.entries.map((e) => e.rel),
      outFile,
      CMDS_PER_CASE,
    );
    // Writers last: the root is compared before them.
    cmds.sort((a, b) => Number(a.writes === true) - Number(b.writes === true));
    const useArchive = rnd() < 1 / ARCHIVE_EVERY && !mutations.some((x) => x.includes('sparse')) && tarRoot(root, archive);
    let archiveFile = archive;
    if (useArchive) {
      if (rnd() < 0.6) mutations.push(`archive-hostile: ${prependHostile(archive, rnd, outside).join(', ')}`);
      if (rnd() < 0.3) {
        archiveFile = `${archive}.gz`;
        writeFileSync(archiveFile, gzipSync(readFileSync(archive), { level: 1 }));
        rmSync(archive);
      }
    }
    // Through the real binary: one command of one case in BIN_EVERY (a process start costs much more than a run).
    const useBin = binOk && i % BIN_EVERY === 0;
    if (useBin) cmds.splice(1);
    send({ t: 'mutated', i, base: base.name, mutations });
    const failures: string[] = [];
    const report: CaseReport = { t: 'done', i, base: base.name, mutations, commands: [], failures, maxRssMb: 0, overheadMs: 0 };
    const setup = diffMaps(outsideBefore, fingerprintOutside(outside));
    if (setup.length > 0) throw new Error(`case ${i}: the fuzzer itself changed the outside tree while mutating: ${setup.join('; ')}`);
    // No entry's ctime reaches this tick (the coarse clock's first step past the mark).
    const tick = ctimeAfter(join(outDir, 'tick'), c0);
    let rootChanged = false;
    let rootChecked = false;
    const checkRoot = (): void => {
      rootChecked = true;
      const d = m.deep === true ? changedSinceMark(root, mark) : changedSince(root, tick);
      if (d.length > 0) {
        rootChanged = true;
        failures.push(`read commands changed the root: ${d.join('; ')}`);
      }
    };
    const checkOutside = (what: string): void => {
      const d = diffMaps(outsideBefore, fingerprintOutside(outside));
      if (d.length > 0) {
        failures.push(`${what}: outside the root changed (written, removed or read): ${d.join('; ')}`);
        resetAtimes(outside);
        outsideBefore = fingerprintOutside(outside);
      }
    };
    for (let k = 0; k < cmds.length; k++) {
      const c = cmds[k]!;
      if (c.writes === true && !rootChecked) checkRoot();
      if (c.writes === true) rootChanged = true;
      const args = [...c.args, '--root', useArchive ? archiveFile : root];
      send({ t: 'cmd', i, k, args });
      rmSync(outFile, { force: true });
      const t0 = performance.now();
      let r: Outcome;
      if (useBin) {
        const p = spawnSync(process.execPath, ['--max-old-space-size=1024', BIN, ...args], {
          env: { PATH: process.env['PATH'], TMPDIR: tmp, HOME: process.env['HOME'] },
          timeout: CMD_LIMIT_MS,
          killSignal: 'SIGKILL',
          maxBuffer: 1 << 30,
        });
        r = {
          code: p.status,
          signal: p.signal,
          stdout: p.stdout ?? Buffer.alloc(0),
          stderr: (p.stderr ?? Buffer.alloc(0)).toString('utf8'),
          ms: performance.now() - t0,
        };
        if (p.error !== undefined) failures.push(`${args.join(' ')}: ${p.error.message}`);
      } else {
        const x = await run(args);
        r = { code: x.code, stdout: x.stdoutBytes, stderr: x.stderr, ms: performance.now() - t0 };
      }
      cmdMs += r.ms;
      const extra = c.output !== undefined && existsSync(c.output) ? readFileSync(c.output) : undefined;
      const bad = checkOutcome(c, r, outside, extra, useArchive ? undefined : root);
      if (r.ms > CMD_LIMIT_MS) bad.push(`took ${r.ms.toFixed(0)} ms (limit ${CMD_LIMIT_MS})`);
      const label = `\`${c.args.join(' ')}\`${useBin ? ' (binary)' : ''}${useArchive ? ' (archive root)' : ''} exit ${r.code}`;
      // verify reports every confinement finding: a mutated piece of evidence is never "OK".
      if ((c.family === 'verify' || c.family === 'verify --deep') && !c.args.includes('--image') && r.code === 0 && !useArchive) {
        const missed = expectedFindings(root, mutations, base.containerLayers);
        if (missed.length > 0) bad.push(`verify found nothing wrong after ${missed.join(' | ')}`);
      }
      for (const b of bad) failures.push(`${label}: ${b}`);
      // Replays blame a read or write outside on its command; the full run checks once per case.
      if (careful) checkOutside(label);
      report.commands.push({ args: c.args, family: c.family, code: r.code, ms: r.ms, errorCode: errorCode(c, r.stderr), bin: useBin, archive: useArchive });
      await new Promise((res) => setImmediate(res));
    }
    if (!rootChecked) checkRoot();
    checkOutside(`one of ${cmds.map((c) => `\`${c.args.join(' ')}\``).join(', ')}`);
    const left = readdirSync(tmp);
    if (left.length > 0) {
      failures.push(`left in TMPDIR: ${left.join(', ')}`);
      for (const n of left) removeTree(join(tmp, n));
    }
    const strays = readdirSync(caseDir)
      .filter((n) => !['root', 'root.tar', 'root.tar.gz'].includes(n))
      .concat(readdirSync(outDir).filter((n) => n !== 'layer.tar' && n !== 'tick' && n !== 'mark'));
    if (strays.length > 0) {
      failures.push(`written next to the root: ${strays.map((x) => JSON.stringify(x)).join(', ')}`);
      for (const n of readdirSync(caseDir)) if (!['root', 'root.tar', 'root.tar.gz'].includes(n)) removeTree(join(caseDir, n));
      for (const n of readdirSync(outDir)) if (n !== 'tick' && n !== 'mark') removeTree(join(outDir, n));
    }
    if (process.env['DATAROOT_FUZZ_KEEP'] === '1') {
      // Debugging one case by hand: its mutated root stays, with the outside tree it points to.
      console.log(`case ${i}: mutated root kept at ${root}${useArchive ? ` (archive ${archiveFile})` : ''}; mutations:\n  ${mutations.join('\n  ')}`);
      send(report);
      return;
    }
    // Back to the base: undo the mutations, or copy afresh when a command wrote to the root.
    rmSync(archive, { force: true });
    rmSync(`${archive}.gz`, { force: true });
    if (rootChanged) {
      removeTree(root, m.deep === true);
      copyTree(base.dir, root);
    } else restoreTouched(base.dir, root, m.touched, m.deep === true);
    report.overheadMs = performance.now() - caseStart - cmdMs;
    report.maxRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
    const overMemory = report.maxRssMb > RSS_LIMIT_MB;
    if (overMemory) failures.push(`resident memory reached ${report.maxRssMb} MB (limit ${RSS_LIMIT_MB})`);
    send(report);
    // A fresh process for the next cases: the high-water mark would blame every later case.
    if (overMemory) break;
  }
  removeTree(work);
  send({ t: 'end' });
  process.disconnect?.();
}

main().catch((e: unknown) => {
  send({ t: 'crash', message: (e as Error).stack ?? String(e) });
  process.exitCode = 3;
  process.disconnect?.();
});

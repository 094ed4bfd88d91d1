/**
 * npm run bench:snapshot — the snapshot speed bars, measured in one run (medians of 5).
 *
 * Two trees of about 1 GB in 20,000 files each (100 of 5 MiB, the rest 1-50 KiB), generated once
 * and cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench:
 *   half:   half random bytes, half slices of the node binary (compression has work to do);
 *   random: random bytes only (incompressible, as compressed files and binaries of real roots are).
 * For each tree:
 *   (1) first `dataroot snapshot` (empty store) vs `tar -cf` of the tree to a file on the same disk;
 *   (2) a second snapshot with nothing changed vs the first.
 * On the half tree, and a copy of it with 100 files changed:
 *   (3) `dataroot diff @a @b` of two snapshots differing in 100 files vs `diff -rq` of the copies.
 * Targets: (1) <= 1.5, (2) <= 0.1, (3) <= 0.2. Peak RSS reported.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { measure, median, type Sample } from './benchlib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const base = process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench';
// The command as npm installs it (bin/dataroot, which runs node without NODE_EXTRA_CA_CERTS).
const BIN = fileURLToPath(new URL('../bin/dataroot', import.meta.url));

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0 && !cmd.startsWith('diff')) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

/** Writes a tree of 20,000 files once (kept between runs: `ready` marks it complete). */
function generate(tree: string, content: (i: number, size: number) => Uint8Array): void {
  if (existsSync(`${tree}.ready`)) return;
  console.error(`generating ${tree} (about 1 GB in 20,000 files) ...`);
  rmSync(tree, { recursive: true, force: true });
  for (let i = 0; i < 20000; i++) {
    const d = join(tree, `d${i % 200}`, `s${i % 7}`);
    mkdirSync(d, { recursive: true });
    const size = i < 100 ? 5 << 20 : 1024 + ((i * 7919) % 50000);
    writeFileSync(join(d, `f${i}`), content(i, size));
  }
  writeFileSync(`${tree}.ready`, 'ok');
}

// The half-compressible tree keeps its old place, so a cached copy of it is reused.
const halfDir = join(base, 'snapshot');
const randomDir = join(base, 'snapshot-random');
mkdirSync(halfDir, { recursive: true });
mkdirSync(randomDir, { recursive: true });
const nodeBin = readFileSync(process.execPath);
const trees = [
  { name: 'half', dir: halfDir, tree: join(halfDir, 'a') },
  { name: 'random', dir: randomDir, tree: join(randomDir, 'a') },
];
if (existsSync(join(halfDir, 'ready')) && !existsSync(`${trees[0]!.tree}.ready`)) writeFileSync(`${trees[0]!.tree}.ready`, 'ok');
generate(trees[0]!.tree, (i, size) => {
  const start = (i * 4096) % (nodeBin.length - size);
  return i % 2 === 0 ? randomBytes(size) : nodeBin.subarray(start, start + size);
});
generate(trees[1]!.tree, (_i, size) => randomBytes(size));
const treeB = join(halfDir, 'b');
if (!existsSync(`${treeB}.ready`)) {
  rmSync(treeB, { recursive: true, force: true });
  sh(`cp -a ${trees[0]!.tree} ${treeB}`);
  for (let i = 0; i < 100; i++) {
    const n = 150 + i * 197;
    writeFileSync(join(treeB, `d${n % 200}`, `s${n % 7}`, `f${n}`), randomBytes(2000));
  }
  writeFileSync(`${treeB}.ready`, 'ok');
}

const m = (xs: Sample[]): number => median(xs.map((x) => x.wall));
const rss = (xs: Sample[]): string => (Math.max(...xs.map((x) => x.rssKiB)) / 1024).toFixed(0);
const cpu = (xs: Sample[]): string => median(xs.map((x) => x.cpu)).toFixed(2);
const row = (what: string, xs: Sample[]): string => `| ${what} | ${m(xs).toFixed(3)} | ${cpu(xs)} | ${rss(xs)} |`;
const verdict = (v: number, bar: number): string => (v <= bar ? 'yes' : 'NO');

const rows: string[] = [];
const ratios: string[] = [];
for (const t of trees) {
  const bytes = Number(sh(`du -sb --apparent-size ${t.tree} | cut -f1`).trim());
  sh(`find ${t.tree} -type f -print0 | xargs -0 cat > /dev/null`); // warm the page cache
  const first: Sample[] = [];
  const second: Sample[] = [];
  const tar: Sample[] = [];
  const tarOut = join(t.dir, 'tree.tar');
  for (let i = 0; i < RUNS; i++) {
    const store = join(t.dir, 'store-run');
    rmSync(store, { recursive: true, force: true });
    rmSync(tarOut, { force: true });
    sh('sync');
    tar.push(measure(['tar', '-cf', tarOut, '-C', t.dir, 'a']));
    rmSync(tarOut, { force: true });
    sh('sync');
    first.push(measure([BIN, 'snapshot', '--root', t.tree, '--store', store, '--name', 'one']));
    second.push(measure([BIN, 'snapshot', '--root', t.tree, '--store', store, '--name', 'two']));
  }
  rmSync(join(t.dir, 'store-run'), { recursive: true, force: true });
  const label = `${t.name} (${(bytes / 1e9).toFixed(2)} GB)`;
  rows.push(
    row(`${label}: tar -cf (same disk)`, tar),
    row(`${label}: dataroot snapshot (first, empty store)`, first),
    row(`${label}: dataroot snapshot (second, nothing changed)`, second),
  );
  const r1 = m(first) / m(tar);
  const r2 = m(second) / m(first);
  ratios.push(
    `| ${t.name}: (1) first snapshot / tar -cf | ${r1.toFixed(2)} | <= 1.5 | ${verdict(r1, 1.5)} |`,
    `| ${t.name}: (2) second snapshot / first | ${r2.toFixed(3)} | <= 0.1 | ${verdict(r2, 0.1)} |`,
  );
}

const storeAB = join(halfDir, 'store-ab');
if (!existsSync(join(storeAB, 'registry.json')) || !readFileSync(join(storeAB, 'registry.json'), 'utf8').includes('"b"')) {
  rmSync(storeAB, { recursive: true, force: true });
  sh(`${BIN} snapshot --root ${trees[0]!.tree} --store ${storeAB} --name a && ${BIN} snapshot --root ${treeB} --store ${storeAB} --name b`);
}
const ddiff: Sample[] = [];
const diffrq: Sample[] = [];
for (let i = 0; i < RUNS; i++) {
  ddiff.push(measure([BIN, 'diff', '@a', '@b', '--store', storeAB], true));
  diffrq.push(measure(['diff', '-rq', trees[0]!.tree, treeB], true));
}
rows.push(row('half: diff -rq of the two copies', diffrq), row('half: dataroot diff @a @b (100 files differ)', ddiff));
const r3 = m(ddiff) / m(diffrq);
ratios.push(`| half: (3) diff of snapshots / diff -rq | ${r3.toFixed(3)} | <= 0.2 | ${verdict(r3, 0.2)} |`);

console.log(`bench:snapshot — two trees of 20,000 files; median of ${RUNS} runs

| run | wall s (median) | CPU s, user+sys (median) | peak RSS MiB |
|---|---|---|---|
${rows.join('\n')}

| ratio | value | target | met |
|---|---|---|---|
${ratios.join('\n')}`);

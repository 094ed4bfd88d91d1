/**
 * npm run bench:snapshot — issue 4's figures, measured in one run (medians of 5).
 *
 * Generates (once, cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench) a tree of about 1 GB in
 * 20,000 files (100 of 5 MiB, the rest 1-50 KiB; half random bytes, half slices of the node
 * binary, so compression has work to do), and a copy of it with 100 files changed.
 *   (1) first `dataroot snapshot` (empty store) vs `tar -cf` of the tree to a file on the same disk;
 *   (2) a second snapshot with nothing changed vs the first;
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
const dir = join(process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench', 'snapshot');
// The command as npm installs it (bin/dataroot, which runs node without NODE_EXTRA_CA_CERTS).
const BIN = fileURLToPath(new URL('../bin/dataroot', import.meta.url));
const treeA = join(dir, 'a');
const treeB = join(dir, 'b');
mkdirSync(dir, { recursive: true });

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0 && !cmd.startsWith('diff')) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

if (!existsSync(join(dir, 'ready'))) {
  console.error(`generating ${treeA} (about 1 GB in 20,000 files) and a copy with 100 files changed ...`);
  rmSync(treeA, { recursive: true, force: true });
  const bin = readFileSync(process.execPath);
  for (let i = 0; i < 20000; i++) {
    const d = join(treeA, `d${i % 200}`, `s${i % 7}`);
    mkdirSync(d, { recursive: true });
    const size = i < 100 ? 5 << 20 : 1024 + ((i * 7919) % 50000);
    const start = (i * 4096) % (bin.length - size);
    writeFileSync(join(d, `f${i}`), i % 2 === 0 ? randomBytes(size) : bin.subarray(start, start + size));
  }
  rmSync(treeB, { recursive: true, force: true });
  sh(`cp -a ${treeA} ${treeB}`);
  for (let i = 0; i < 100; i++) {
    const n = 150 + i * 197;
    writeFileSync(join(treeB, `d${n % 200}`, `s${n % 7}`, `f${n}`), randomBytes(2000));
  }
  writeFileSync(join(dir, 'ready'), 'ok');
}

const bytes = Number(sh(`du -sb --apparent-size ${treeA} | cut -f1`).trim());
sh(`find ${treeA} ${treeB} -type f -print0 | xargs -0 cat > /dev/null`); // warm the page cache

const first: Sample[] = [];
const second: Sample[] = [];
const tar: Sample[] = [];
const tarOut = join(dir, 'tree.tar');
for (let i = 0; i < RUNS; i++) {
  const store = join(dir, 'store-run');
  rmSync(store, { recursive: true, force: true });
  rmSync(tarOut, { force: true });
  sh('sync');
  tar.push(measure(['tar', '-cf', tarOut, '-C', dir, 'a']));
  rmSync(tarOut, { force: true });
  sh('sync');
  first.push(measure([BIN, 'snapshot', '--root', treeA, '--store', store, '--name', 'one']));
  second.push(measure([BIN, 'snapshot', '--root', treeA, '--store', store, '--name', 'two']));
}
const storeAB = join(dir, 'store-ab');
if (!existsSync(join(storeAB, 'registry.json')) || !readFileSync(join(storeAB, 'registry.json'), 'utf8').includes('"b"')) {
  rmSync(storeAB, { recursive: true, force: true });
  sh(`${BIN} snapshot --root ${treeA} --store ${storeAB} --name a && ${BIN} snapshot --root ${treeB} --store ${storeAB} --name b`);
}
const ddiff: Sample[] = [];
const diffrq: Sample[] = [];
for (let i = 0; i < RUNS; i++) {
  ddiff.push(measure([BIN, 'diff', '@a', '@b', '--store', storeAB], true));
  diffrq.push(measure(['diff', '-rq', treeA, treeB], true));
}
const m = (xs: Sample[]): number => median(xs.map((x) => x.wall));
const rss = (xs: Sample[]): string => (Math.max(...xs.map((x) => x.rssKiB)) / 1024).toFixed(0);
const cpu = (xs: Sample[]): string => median(xs.map((x) => x.cpu)).toFixed(2);
const r1 = m(first) / m(tar);
const r2 = m(second) / m(first);
const r3 = m(ddiff) / m(diffrq);
console.log(`bench:snapshot — ${treeA}: ${(bytes / 1e9).toFixed(2)} GB in 20,000 files; median of ${RUNS} runs

| run | wall s (median) | CPU s, user+sys (median) | peak RSS MiB |
|---|---|---|---|
| tar -cf (same disk) | ${m(tar).toFixed(3)} | ${cpu(tar)} | ${rss(tar)} |
| dataroot snapshot (first, empty store) | ${m(first).toFixed(3)} | ${cpu(first)} | ${rss(first)} |
| dataroot snapshot (second, nothing changed) | ${m(second).toFixed(3)} | ${cpu(second)} | ${rss(second)} |
| diff -rq of the two copies | ${m(diffrq).toFixed(3)} | ${cpu(diffrq)} | ${rss(diffrq)} |
| dataroot diff @a @b (100 files differ) | ${m(ddiff).toFixed(3)} | ${cpu(ddiff)} | ${rss(ddiff)} |

| ratio | value | target | met |
|---|---|---|---|
| (1) first snapshot / tar -cf | ${r1.toFixed(2)} | <= 1.5 | ${r1 <= 1.5 ? 'yes' : 'NO'} |
| (2) second snapshot / first | ${r2.toFixed(3)} | <= 0.1 | ${r2 <= 0.1 ? 'yes' : 'NO'} |
| (3) diff of snapshots / diff -rq | ${r3.toFixed(3)} | <= 0.2 | ${r3 <= 0.2 ? 'yes' : 'NO'} |`);

/**
 * npm run bench:bolt — the BoltDB performance figures of issue 8, all measured in one run.
 *
 * Generates (once, cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench) a bbolt file of about
 * 500 MB with 2 million keys with the Go oracle, then reports the median of 5 runs of:
 *   (a) `dataroot bolt stats` vs the I/O floor: a minimal Node program reading the file once,
 *       sequentially, in 8 MiB chunks (what any reader that does not memory-map must pay);
 *       and, for information, a Go program walking every key with a cursor (Go memory-maps);
 *   (b) `dataroot bolt dump --format ndjson > /dev/null` vs a Go program (go.etcd.io/bbolt)
 *       writing the same NDJSON (test/oracle/boltoracle `dump`).
 * Targets: (a) ratio <= 1.5, (b) ratio <= 0.8, peak RSS of both dataroot runs <= 256 MiB.
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOracle, oracle } from '../test/support/gobolt.js';
import { measure, median, type Sample } from './benchlib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const KEYS = Number(process.env['BENCH_KEYS'] ?? 2_000_000);
const dir = process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench';
const BIN = fileURLToPath(new URL('../bin/dataroot.js', import.meta.url));
mkdirSync(dir, { recursive: true });

const FLOOR = join(dir, 'floor.mjs');
writeFileSync(
  FLOOR,
  `import { openSync, readSync, closeSync } from 'node:fs';
const fd = openSync(process.argv[2], 'r');
const buf = Buffer.allocUnsafe(8 << 20);
let pos = 0, n;
while ((n = readSync(fd, buf, 0, buf.length, pos)) > 0) pos += n;
closeSync(fd);
`,
);

if (!existsSync('/usr/bin/time')) {
  console.error('bench:bolt needs GNU time (/usr/bin/time, Debian package "time") for peak RSS');
  process.exit(2);
}

const db = join(dir, `bench-${KEYS}.db`);
const oracleBin = buildOracle();
if (!existsSync(db)) {
  console.error(`generating ${db} (${KEYS} keys) with the Go oracle ...`);
  const r = oracle(['bench', db, String(KEYS)]);
  if (r.status !== 0) throw new Error(r.stderr);
}

const subjects: Record<string, string[]> = {
  'dataroot bolt stats': [process.execPath, BIN, 'bolt', 'stats', db],
  'I/O floor (node, 8 MiB sequential reads)': [process.execPath, FLOOR, db],
  'Go bbolt cursor walk (mmap, information)': [oracleBin, 'walk', db],
  'dataroot bolt dump --format ndjson': [process.execPath, BIN, 'bolt', 'dump', '--format', 'ndjson', db],
  'Go bbolt NDJSON dump': [oracleBin, 'dump', db],
};
const results: Record<string, { wall: number; rssKiB: number }> = {};
// Warm the page cache once, then interleave the runs so drift hits every subject alike.
measure(subjects['I/O floor (node, 8 MiB sequential reads)']!);
const samples: Record<string, Sample[]> = {};
for (let i = 0; i < RUNS; i++) {
  for (const [name, cmd] of Object.entries(subjects)) (samples[name] ??= []).push(measure(cmd));
}
for (const [name, s] of Object.entries(samples)) results[name] = { wall: median(s.map((x) => x.wall)), rssKiB: Math.max(...s.map((x) => x.rssKiB)) };

const r = (a: string, b: string): number => results[a]!.wall / results[b]!.wall;
const statsRatio = r('dataroot bolt stats', 'I/O floor (node, 8 MiB sequential reads)');
const goWalkRatio = r('dataroot bolt stats', 'Go bbolt cursor walk (mmap, information)');
const dumpRatio = r('dataroot bolt dump --format ndjson', 'Go bbolt NDJSON dump');
const mib = (k: number) => (k / 1024).toFixed(0);
const size = statSync(db).size;
const rows = Object.entries(results).map(([n, x]) => `| ${n} | ${x.wall.toFixed(3)} | ${mib(x.rssKiB)} |`);
const maxRss = Math.max(results['dataroot bolt stats']!.rssKiB, results['dataroot bolt dump --format ndjson']!.rssKiB) / 1024;
console.log(`bench:bolt — ${db}: ${(size / 1e6).toFixed(0)} MB, ${KEYS} keys; median of ${RUNS} runs (peak RSS: max over runs)

| run | wall s (median) | peak RSS MiB |
|---|---|---|
${rows.join('\n')}

| ratio | value | target | met |
|---|---|---|---|
| (a) stats / I/O floor | ${statsRatio.toFixed(2)} | <= 1.5 | ${statsRatio <= 1.5 ? 'yes' : 'NO'} |
| (a) stats / Go cursor walk (information) | ${goWalkRatio.toFixed(2)} | — | — |
| (b) dump ndjson / Go dump | ${dumpRatio.toFixed(2)} | <= 0.8 | ${dumpRatio <= 0.8 ? 'yes' : 'NO'} |
| peak RSS of dataroot runs | ${maxRss.toFixed(0)} MiB | <= 256 MiB | ${maxRss <= 256 ? 'yes' : 'NO'} |`);

/**
 * npm run bench:verify — issue 5's figure, measured in one run.
 *
 * Makes (once, cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench) a data-root whose layers hold
 * about 1 GB: a private dockerd (vfs driver, so each layer's files are plain files) imports four
 * trees of generated files (a few large, many small) as four images, then stops. Reports the
 * median of 5 interleaved runs of
 *   `dataroot verify --deep` over the root, vs
 *   `sha256sum` over the same layer files (find … -type f | xargs sha256sum),
 * both with a warm page cache. Target: ratio <= 1.5. Peak RSS reported.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Dockerd } from '../test/support/dockerd.js';
import { measure, median, type Sample } from './benchlib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const dir = process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench';
const BIN = fileURLToPath(new URL('../bin/dataroot.js', import.meta.url));
const home = join(dir, 'verify');
const root = join(home, 'root');
mkdirSync(dir, { recursive: true });

if (!existsSync('/usr/bin/time')) {
  console.error('bench:verify needs GNU time (/usr/bin/time, Debian package "time") for peak RSS');
  process.exit(2);
}

async function makeRoot(): Promise<void> {
  rmSync(home, { recursive: true, force: true });
  const d = new Dockerd('vfs', home);
  await d.start();
  try {
    for (let t = 0; t < 4; t++) {
      const tree = join(dir, `verify-tree-${t}`);
      rmSync(tree, { recursive: true, force: true });
      mkdirSync(tree, { recursive: true });
      // Per tree: 3 files of 64 MiB and 2,500 files of 1-48 KiB (about 250 MB).
      for (let i = 0; i < 3; i++) writeFileSync(join(tree, `big-${i}.bin`), randomBytes(64 << 20));
      for (let i = 0; i < 2500; i++) {
        const sub = join(tree, `d${i % 50}`);
        mkdirSync(sub, { recursive: true });
        writeFileSync(join(sub, `f${i}.dat`), randomBytes(1024 + ((i * 7919) % (47 << 10))));
      }
      const r = spawnSync('sh', ['-c', `tar --numeric-owner -C ${tree} -cf - . | docker import - bench/verify:${t}`], { env: d.env(), encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`docker import failed: ${r.stderr}`);
      rmSync(tree, { recursive: true, force: true });
    }
  } finally {
    await d.stop();
  }
  writeFileSync(join(home, 'ready'), 'ok');
}

if (!existsSync(join(home, 'ready'))) {
  console.error(`making ${root} (4 layers, about 1 GB) with a private dockerd ...`);
  await makeRoot();
}

readFileSync(join(home, 'ready'), 'utf8'); // made above, or the run stops here
const layerDirs = spawnSync('sh', ['-c', `ls -d ${root}/vfs/dir/*`], { encoding: 'utf8' })
  .stdout.trim()
  .split('\n');
const shaCmd = ['sh', '-c', `find ${layerDirs.join(' ')} -type f -print0 | xargs -0 sha256sum > /dev/null`];

const bytes = Number(
  spawnSync('sh', ['-c', `du -sb --apparent-size ${layerDirs.join(' ')} | awk '{s+=$1} END {print s}'`], { encoding: 'utf8' }).stdout.trim(),
);
const subjects: Record<string, string[]> = {
  'dataroot verify --deep': [process.execPath, BIN, 'verify', '--deep', '--root', root],
  'sha256sum of the layer files': shaCmd,
};
for (const cmd of Object.values(subjects)) measure(cmd); // warm the page cache
const samples: Record<string, Sample[]> = {};
for (let i = 0; i < RUNS; i++) for (const [n, cmd] of Object.entries(subjects)) (samples[n] ??= []).push(measure(cmd));
const res = Object.fromEntries(Object.entries(samples).map(([n, s]) => [n, { wall: median(s.map((x) => x.wall)), rss: Math.max(...s.map((x) => x.rssKiB)) }]));
const ratio = res['dataroot verify --deep']!.wall / res['sha256sum of the layer files']!.wall;
console.log(`bench:verify — ${root}: ${layerDirs.length} layers, ${(bytes / 1e9).toFixed(2)} GB of layer files; median of ${RUNS} runs

| run | wall s (median) | peak RSS MiB |
|---|---|---|
${Object.entries(res)
  .map(([n, r]) => `| ${n} | ${r.wall.toFixed(3)} | ${(r.rss / 1024).toFixed(0)} |`)
  .join('\n')}

| ratio | value | target | met |
|---|---|---|---|
| verify --deep / sha256sum | ${ratio.toFixed(2)} | <= 1.5 | ${ratio <= 1.5 ? 'yes' : 'NO'} |`);

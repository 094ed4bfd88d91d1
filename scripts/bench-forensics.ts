/**
 * npm run bench:forensics — issue 17's figures, measured in one run.
 *
 * Makes (once, cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench) an overlay2 data-root with a
 * private dockerd: a container of about 300 MB in 5 layers (a base of busybox and 60 MB imported,
 * three COPY layers of 60 MB, 60 MB written by the container itself), and a second image of about
 * 700 MB (three COPY layers), so that the root holds about 1 GB of files. Then, with the daemon
 * running and a warm page cache, the median of BENCH_RUNS (default 5) interleaved runs of
 *   `dataroot export <container> -o FILE` vs `docker export -o FILE <container>` (the live daemon);
 *   `dataroot find --sha256 HEX` over the root vs `find ROOT -type f -exec sha256sum {} +`.
 * Targets: export ratio <= 1.0, find ratio <= 1.5. Peak RSS reported.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dockerd } from '../test/support/dockerd.js';
import { measure, median, type Sample } from './benchlib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const dir = process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench';
const BIN = fileURLToPath(new URL('../bin/dataroot.js', import.meta.url));
const home = join(dir, 'forensics');
const root = join(home, 'root');
const out = join(home, 'out');
mkdirSync(dir, { recursive: true });

if (!existsSync('/usr/bin/time')) {
  console.error('bench:forensics needs GNU time (/usr/bin/time, Debian package "time") for peak RSS');
  process.exit(2);
}

/** A tree of `mb` MB: two thirds in 4 large files, a third in small files of 1-48 KiB. */
function tree(path: string, mb: number, seed: number): void {
  rmSync(path, { recursive: true, force: true });
  mkdirSync(path, { recursive: true });
  const big = Math.floor(((mb * 2) / 3) * (1 << 20));
  for (let i = 0; i < 4; i++) writeFileSync(join(path, `big-${i}.bin`), randomBytes(Math.floor(big / 4)));
  let left = Math.floor((mb / 3) * (1 << 20));
  for (let i = 0; left > 0; i++) {
    const sub = join(path, `d${i % 40}`);
    mkdirSync(sub, { recursive: true });
    const n = Math.min(left, 1024 + ((i * 7919 + seed) % (47 << 10)));
    writeFileSync(join(sub, `f${i}.dat`), randomBytes(n));
    left -= n;
  }
}

function sh(cmd: string, env: NodeJS.ProcessEnv): void {
  const r = spawnSync('sh', ['-c', cmd], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

async function makeRoot(d: Dockerd): Promise<void> {
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  await d.start();
  const env = d.env();
  d.importBusybox('base:busybox');
  // The container: busybox + 60 MB imported, three COPY layers of 60 MB, 60 MB from the container.
  const ctx = join(home, 'ctx');
  tree(join(ctx, 'l1'), 60, 1);
  sh(
    `docker run --name seed base:busybox true && docker export seed > ${home}/seed.tar && docker rm seed >/dev/null && tar -C ${ctx} -rf ${home}/seed.tar l1 && docker import ${home}/seed.tar bench/fx-base:1 >/dev/null`,
    env,
  );
  rmSync(`${home}/seed.tar`);
  for (const k of [2, 3, 4]) tree(join(ctx, `l${k}`), 60, k);
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM bench/fx-base:1\nCOPY l2 /l2\nCOPY l3 /l3\nCOPY l4 /l4\n');
  writeFileSync(join(ctx, '.dockerignore'), 'l1\n');
  d.docker(['build', '-q', '-t', 'bench/fx:1', ctx], { env: { DOCKER_BUILDKIT: '0' } });
  d.docker([
    'run',
    '--name',
    'fx',
    'bench/fx:1',
    'sh',
    '-c',
    'mkdir /rw && cat /l2/big-0.bin /l3/big-0.bin > /rw/a && cat /l2/big-1.bin /l3/big-1.bin > /rw/b && cat /l4/big-0.bin > /rw/c && cp -a /l4/d* /rw/ && echo planted-by-the-container > /rw/planted',
  ]);
  // The rest of the root: an image of about 700 MB.
  const ctx2 = join(home, 'ctx2');
  for (const k of [1, 2, 3]) tree(join(ctx2, `x${k}`), 233, 10 + k);
  writeFileSync(join(ctx2, 'Dockerfile'), 'FROM base:busybox\nCOPY x1 /x1\nCOPY x2 /x2\nCOPY x3 /x3\n');
  d.docker(['build', '-q', '-t', 'bench/extra:1', ctx2], { env: { DOCKER_BUILDKIT: '0' } });
  rmSync(ctx, { recursive: true, force: true });
  rmSync(ctx2, { recursive: true, force: true });
  writeFileSync(join(home, 'ready'), 'ok');
}

const d = new Dockerd('overlay2', home);
if (!existsSync(join(home, 'ready'))) {
  console.error(`making ${root} (a 300 MB container in 5 layers, 1 GB in all) with a private dockerd ...`);
  await makeRoot(d);
} else await d.start();
readFileSync(join(home, 'ready'), 'utf8');
mkdirSync(out, { recursive: true });
process.env['DOCKER_HOST'] = `unix://${d.sock}`;

try {
  const du = (p: string): number => Number(spawnSync('sh', ['-c', `du -sb --apparent-size ${p} | cut -f1`], { encoding: 'utf8' }).stdout.trim());
  const want = createHash('sha256').update('planted-by-the-container\n').digest('hex');
  const subjects: Record<string, string[]> = {
    'docker export (live daemon)': ['docker', 'export', '-o', join(out, 'docker.tar'), 'fx'],
    'dataroot export': [process.execPath, BIN, 'export', 'fx', '-o', join(out, 'dataroot.tar'), '--root', root],
    'find -exec sha256sum': ['sh', '-c', `find ${root} -type f -exec sha256sum {} + > /dev/null`],
    'dataroot find --sha256': [process.execPath, BIN, 'find', '--sha256', want, '--root', root],
  };
  for (const cmd of Object.values(subjects)) measure(cmd); // warm the page cache
  const samples: Record<string, Sample[]> = {};
  for (let i = 0; i < RUNS; i++) for (const [n, cmd] of Object.entries(subjects)) (samples[n] ??= []).push(measure(cmd));
  const res = Object.fromEntries(
    Object.entries(samples).map(([n, s]) => [
      n,
      { wall: median(s.map((x) => x.wall)), cpu: median(s.map((x) => x.cpu)), rss: Math.max(...s.map((x) => x.rssKiB)) },
    ]),
  );
  const exportRatio = res['dataroot export']!.wall / res['docker export (live daemon)']!.wall;
  const findRatio = res['dataroot find --sha256']!.wall / res['find -exec sha256sum']!.wall;
  const same =
    createHash('sha256')
      .update(readFileSync(join(out, 'docker.tar')))
      .digest('hex') ===
    createHash('sha256')
      .update(readFileSync(join(out, 'dataroot.tar')))
      .digest('hex');
  console.log(`bench:forensics — ${root}: export of a ${(du(join(out, 'dataroot.tar')) / 1e6).toFixed(0)} MB container (5 layers), find over ${(du(root) / 1e9).toFixed(2)} GB; median of ${RUNS} interleaved runs, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}

| run | wall s (median) | cpu s (median) | peak RSS MiB |
|---|---|---|---|
${Object.entries(res)
  .map(([n, r]) => `| ${n} | ${r.wall.toFixed(3)} | ${r.cpu.toFixed(2)} | ${(r.rss / 1024).toFixed(0)} |`)
  .join('\n')}

| ratio | value | target | met |
|---|---|---|---|
| dataroot export / docker export | ${exportRatio.toFixed(2)} | <= 1.0 | ${exportRatio <= 1.0 ? 'yes' : 'NO'} |
| dataroot find --sha256 / find -exec sha256sum | ${findRatio.toFixed(2)} | <= 1.5 | ${findRatio <= 1.5 ? 'yes' : 'NO'} |

the two exports are ${same ? 'byte-identical' : 'DIFFERENT'}`);
} finally {
  await d.stop();
}

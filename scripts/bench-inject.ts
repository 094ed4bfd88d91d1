/**
 * npm run bench:inject — issue 6's figure, measured in one run.
 *
 * Builds (once, cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench) a `docker save`-style archive
 * of one image of about 300 MB in 5 layers (in each layer: two large files and 2,000 small ones,
 * some directories, symlinks and a whiteout), and a fresh overlay2 root (a daemon's first start).
 * Then, median of 5, on a new copy of the fresh root each time (copying is not timed):
 *   `dataroot inject ARCHIVE` into the stopped root, vs
 *   `docker load -i ARCHIVE` into a running dockerd on an equal root (daemon start/stop not timed).
 * Target: ratio <= 1.0 (goal 0.5). Peak RSS of dataroot, and of dockerd during the load.
 *
 * Then the containerd store (issue 18), on copies of a fresh containerd 1.6 root, median of the
 * same number of runs:
 *   `dataroot inject --store containerd ARCHIVE` (stopped root) vs `ctr images import --no-unpack`
 *   (running containerd), and `... --unpack` vs `ctr images import` (which unpacks).
 * Target: ratio <= 1.0 for each. BENCH_SKIP_DOCKER=1 runs the containerd part only.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Containerd } from '../test/support/containerd.js';
import { Dockerd } from '../test/support/dockerd.js';
import { writeImageDir } from '../test/support/images.js';
import { median } from './benchlib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const dir = join(process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench', 'inject');
const BIN = fileURLToPath(new URL('../bin/dataroot.js', import.meta.url));
const archive = join(dir, 'image.tar');
const fresh = join(dir, 'fresh');
mkdirSync(dir, { recursive: true });

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

async function prepare(): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const layers: Buffer[] = [];
  for (let l = 0; l < 5; l++) {
    const tree = join(dir, `tree-${l}`);
    mkdirSync(tree, { recursive: true });
    for (let i = 0; i < 2; i++) writeFileSync(join(tree, `large-${l}-${i}.bin`), randomBytes(20 << 20));
    for (let i = 0; i < 2000; i++) {
      const sub = join(tree, `app${l}`, `d${i % 40}`);
      mkdirSync(sub, { recursive: true });
      writeFileSync(join(sub, `f${i}.txt`), randomBytes(512 + ((i * 7919) % 20000)));
    }
    sh(`ln -s large-${l}-0.bin ${tree}/link-${l}`);
    if (l > 0) writeFileSync(join(tree, `.wh.link-${l - 1}`), '');
    layers.push(Buffer.from(spawnSync('tar', ['--numeric-owner', '--sort=name', '-C', tree, '-cf', '-', '.'], { maxBuffer: 1 << 30 }).stdout));
    rmSync(tree, { recursive: true, force: true });
  }
  const img = join(dir, 'image');
  writeImageDir(img, { layers, tags: ['bench/inject:1'] });
  sh(`cd ${img} && tar -cf ${archive} *`);
  rmSync(img, { recursive: true, force: true });
  const f = new Dockerd('overlay2', join(dir, 'fresh-daemon'));
  await f.start();
  await f.stop();
  sh(`cp -a ${f.root} ${fresh}`);
  rmSync(join(dir, 'fresh-daemon'), { recursive: true, force: true });
  writeFileSync(join(dir, 'ready'), 'ok');
}

if (!existsSync(join(dir, 'ready'))) {
  console.error(`making ${archive} (5 layers, about 300 MB) and a fresh overlay2 root ...`);
  await prepare();
}

const copyFresh = (to: string): void => {
  rmSync(to, { recursive: true, force: true });
  sh(`cp -a ${fresh} ${to}`);
};

sh(`cat ${archive} > /dev/null`); // warm the page cache
const skipDocker = process.env['BENCH_SKIP_DOCKER'] === '1';
const inj: { wall: number; rss: number }[] = [];
const load: { wall: number; rss: number }[] = [];
for (let i = 0; i < (skipDocker ? 0 : RUNS); i++) {
  const root = join(dir, 'run-inject');
  copyFresh(root);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, BIN, 'inject', archive, '--root', root], { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`inject failed: ${r.stderr}`);
  inj.push({ wall, rss: Number(r.stderr.trim().split('\n').pop()) });
  rmSync(root, { recursive: true, force: true });

  const d = new Dockerd('overlay2', join(dir, 'run-load'));
  rmSync(d.dir, { recursive: true, force: true });
  mkdirSync(d.dir, { recursive: true });
  copyFresh(d.root);
  await d.start();
  const t1 = process.hrtime.bigint();
  d.docker(['load', '-q', '-i', archive]);
  const lwall = Number(process.hrtime.bigint() - t1) / 1e9;
  const status = readFileSync(`/proc/${d.pid()}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  load.push({ wall: lwall, rss: hwm });
  await d.cleanup();
}
const size = Number(sh(`stat -c %s ${archive}`));
const a = median(inj.map((x) => x.wall));
const b = median(load.map((x) => x.wall));
if (!skipDocker)
  console.log(`bench:inject — ${archive}: ${(size / 1e6).toFixed(0)} MB, 5 layers, overlay2; median of ${RUNS} runs

| run | wall s (median) | peak RSS MiB |
|---|---|---|
| dataroot inject (stopped root) | ${a.toFixed(3)} | ${(Math.max(...inj.map((x) => x.rss)) / 1024).toFixed(0)} |
| docker load (running dockerd) | ${b.toFixed(3)} | ${(Math.max(...load.map((x) => x.rss)) / 1024).toFixed(0)} (dockerd VmHWM) |

| ratio | value | target | met |
|---|---|---|---|
| inject / docker load | ${(a / b).toFixed(2)} | <= 1.0 (goal 0.5) | ${a / b <= 1 ? 'yes' : 'NO'}${a / b <= 0.5 ? ' (goal met)' : ''} |`);

// --- the containerd store -------------------------------------------------------------------------
const freshCd = join(dir, 'fresh-containerd');
if (!existsSync(join(freshCd, 'io.containerd.metadata.v1.bolt', 'meta.db'))) {
  const c = new Containerd(join(dir, 'fresh-cd-daemon'));
  await c.start();
  await c.stop();
  rmSync(freshCd, { recursive: true, force: true });
  sh(`cp -a ${c.root} ${freshCd}`);
  await c.cleanup();
}
const cdRows: string[] = [];
const cdRatios: string[] = [];
for (const unpack of [false, true]) {
  const ours: { wall: number; rss: number }[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const root = join(dir, 'run-cdinject');
    rmSync(root, { recursive: true, force: true });
    sh(`cp -a ${freshCd} ${root}`);
    const t0 = process.hrtime.bigint();
    const r = spawnSync(
      '/usr/bin/time',
      ['-f', '%M', process.execPath, BIN, '--root', root, 'inject', '--store', 'containerd', ...(unpack ? ['--unpack'] : []), archive],
      { encoding: 'utf8' },
    );
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`inject --store containerd failed: ${r.stderr}`);
    ours.push({ wall, rss: Number(r.stderr.trim().split('\n').pop()) });
    rmSync(root, { recursive: true, force: true });

    const c = new Containerd(join(dir, 'run-ctr'));
    rmSync(c.dir, { recursive: true, force: true });
    mkdirSync(c.dir, { recursive: true });
    sh(`cp -a ${freshCd} ${c.root}`);
    await c.start();
    const t1 = process.hrtime.bigint();
    c.ctr(['images', 'import', ...(unpack ? [] : ['--no-unpack']), archive], { ns: 'moby', timeoutMs: 600_000 });
    theirs.push(Number(process.hrtime.bigint() - t1) / 1e9);
    await c.cleanup();
  }
  const x = median(ours.map((o) => o.wall));
  const y = median(theirs);
  cdRows.push(
    `| dataroot inject --store containerd${unpack ? ' --unpack' : ''} (stopped root) | ${x.toFixed(3)} | ${(Math.max(...ours.map((o) => o.rss)) / 1024).toFixed(0)} |`,
  );
  cdRows.push(`| ctr images import${unpack ? '' : ' --no-unpack'} (running containerd) | ${y.toFixed(3)} | |`);
  cdRatios.push(
    `| inject --store containerd${unpack ? ' --unpack' : ''} / ctr import${unpack ? '' : ' --no-unpack'} | ${(x / y).toFixed(2)} | <= 1.0 | ${x / y <= 1 ? 'yes' : 'NO'} |`,
  );
}
console.log(`
bench:inject (containerd store) — the same archive into containerd 1.6's store; median of ${RUNS} runs

| run | wall s (median) | peak RSS MiB |
|---|---|---|
${cdRows.join('\n')}

| ratio | value | target | met |
|---|---|---|---|
${cdRatios.join('\n')}`);

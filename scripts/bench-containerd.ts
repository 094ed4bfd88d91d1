/**
 * npm run bench:containerd — issue 15's figures, measured in one run.
 *
 * Builds (once, cached in $DATAROOT_BENCH_DIR or /tmp/dataroot-bench) a containerd root with 200
 * images of 5 layers each, unpacked (1,000 snapshots), by `ctr images import` of a Docker archive
 * made with `dataroot pack`. With that containerd running, it reports the median of 5 runs of
 *   (a) `dataroot containerd images -n default` vs `ctr images ls` against the daemon;
 *   (b) `dataroot containerd snapshots -n default` vs `ctr snapshots ls` against the daemon;
 * and the peak RSS of each. Target: both ratios <= 1.0.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Containerd } from '../test/support/containerd.js';
import { measure, median, type Sample } from './benchlib.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const IMAGES = Number(process.env['BENCH_IMAGES'] ?? 200);
const LAYERS = 5;
const dir = join(process.env['DATAROOT_BENCH_DIR'] ?? '/tmp/dataroot-bench', `containerd-${IMAGES}`);
const BIN = fileURLToPath(new URL('../bin/dataroot', import.meta.url));

if (!existsSync('/usr/bin/time')) {
  console.error('bench:containerd needs GNU time (/usr/bin/time, Debian package "time") for peak RSS');
  process.exit(2);
}

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const d = new Containerd(dir);
  const ready = join(dir, 'ready');
  await d.start();
  try {
    if (!existsSync(ready)) {
      console.error(`building ${IMAGES} images of ${LAYERS} layers in ${d.root} ...`);
      const layers = join(dir, 'layers');
      rmSync(layers, { recursive: true, force: true });
      const args: string[] = ['pack', '-o', join(dir, 'images.tar')];
      for (let i = 0; i < IMAGES; i++) {
        if (i > 0) args.push('--image');
        for (let j = 0; j < LAYERS; j++) {
          const l = join(layers, `${i}-${j}`);
          mkdirSync(join(l, 'data'), { recursive: true });
          writeFileSync(join(l, 'data', `f${j}`), `image ${i} layer ${j}\n`);
          args.push('--layer', l);
        }
        args.push('--label', `bench.index=${i}`, '-t', `bench/img${String(i).padStart(3, '0')}:1`);
      }
      const { spawnSync } = await import('node:child_process');
      const p = spawnSync(process.execPath, [fileURLToPath(new URL('../bin/dataroot.js', import.meta.url)), ...args], {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      });
      if (p.status !== 0) throw new Error(p.stderr);
      d.ctr(['images', 'import', join(dir, 'images.tar')], { ns: 'default', timeoutMs: 1_800_000 });
      rmSync(layers, { recursive: true, force: true });
      writeFileSync(ready, '');
    }
    const snaps = d.ctr(['snapshots', 'ls'], { ns: 'default' }).stdout.split('\n').length - 2;
    const imgs = d.ctr(['images', 'ls', '-q'], { ns: 'default' }).stdout.split('\n').filter(Boolean).length;
    const subjects: Record<string, string[]> = {
      'dataroot containerd images': [BIN, '--containerd-root', d.root, 'containerd', 'images', '-n', 'default'],
      'ctr images ls': ['ctr', '-a', d.sock, '-n', 'default', 'images', 'ls'],
      'dataroot containerd snapshots': [BIN, '--containerd-root', d.root, 'containerd', 'snapshots', '-n', 'default'],
      'ctr snapshots ls': ['ctr', '-a', d.sock, '-n', 'default', 'snapshots', 'ls'],
    };
    for (const cmd of Object.values(subjects)) measure(cmd);
    const samples: Record<string, Sample[]> = {};
    for (let i = 0; i < RUNS; i++) for (const [name, cmd] of Object.entries(subjects)) (samples[name] ??= []).push(measure(cmd));
    const res: Record<string, { wall: number; rssKiB: number }> = {};
    for (const [n, s] of Object.entries(samples)) res[n] = { wall: median(s.map((x) => x.wall)), rssKiB: Math.max(...s.map((x) => x.rssKiB)) };
    const ratio = (a: string, b: string): number => res[a]!.wall / res[b]!.wall;
    const ri = ratio('dataroot containerd images', 'ctr images ls');
    const rs = ratio('dataroot containerd snapshots', 'ctr snapshots ls');
    const mib = (k: number): string => (k / 1024).toFixed(0);
    console.log(`bench:containerd — ${imgs} images, ${snaps} snapshots (namespace default); median of ${RUNS} runs, the daemon running

| run | wall s (median) | peak RSS MiB |
|---|---|---|
${Object.entries(res)
  .map(([n, x]) => `| ${n} | ${x.wall.toFixed(3)} | ${mib(x.rssKiB)} |`)
  .join('\n')}

| ratio | value | target | met |
|---|---|---|---|
| (a) dataroot containerd images / ctr images ls | ${ri.toFixed(2)} | <= 1.0 | ${ri <= 1 ? 'yes' : 'NO'} |
| (b) dataroot containerd snapshots / ctr snapshots ls | ${rs.toFixed(2)} | <= 1.0 | ${rs <= 1 ? 'yes' : 'NO'} |`);
  } finally {
    await d.stop();
  }
}

void main();

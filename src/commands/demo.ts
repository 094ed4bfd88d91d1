import type { Command } from 'commander';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { packageRoot } from '../io/pkg.js';
import type { Ctx } from './context.js';
import { paint, safeText } from './render.js';
import type { Store } from '../store/model.js';
import { withRoot } from '../store/root.js';
import { storeOf } from './storectx.js';

/** The shipped sample data-roots, next to the package. */
export function samplesDir(): string {
  return join(packageRoot(), 'snapshots');
}

interface Step {
  sample: string;
  why: string;
  args: string[];
  /** args name two samples: no --root */
  pair?: boolean;
  /** Arguments read from the sample itself (IDs differ from capture to capture). */
  resolve?: (s: Store) => string[];
}

/** A path of the sample's store: the file `name` of the read-write layer of container `c`, or of its image's top layer. */
function layerFile(c: string, name: string, of: 'container' | 'image'): (s: Store) => string[] {
  return (s) => {
    const rec = s.lookupContainer(c).container;
    const m = rec === undefined ? undefined : s.mountOf(rec.id);
    if (of === 'container') return m?.mountId === undefined ? [] : [`${s.adapter.contentDir(s.fs, m.mountId)}/${name}`];
    const l = m?.parent === undefined ? undefined : s.layers.get(m.parent);
    return l?.cacheId === undefined ? [] : [`${s.adapter.contentDir(s.fs, l.cacheId)}/${name}`];
  };
}

/** What the tour runs on each sample (the archive is appended as --root). */
const TOUR: Step[] = [
  { sample: 'fresh', why: 'a root right after the first start: no images, two networks, empty stores', args: ['info'] },
  { sample: 'after-build', why: 'after a legacy build, a volume, a network and one run', args: ['info'] },
  { sample: 'after-build', why: 'BoltDB files found by their magic, not their name', args: ['files', '--type', 'bolt'] },
  { sample: 'after-build', why: 'the tag store', args: ['cat', 'image/overlay2/repositories.json'] },
  { sample: 'after-build', why: 'images as dockerd lists them (-a: the legacy builder keeps one image per step)', args: ['images', '-a'] },
  { sample: 'after-build', why: 'the object docker image inspect prints, plus the layer chain on disk', args: ['image', 'inspect', 'localhost/buildtest:v1'] },
  { sample: 'after-build', why: 'one row per Dockerfile step, per-layer sizes', args: ['history', 'localhost/buildtest:v1'] },
  { sample: 'after-build', why: 'layerdb: chainID, diffID, cache-id, who uses each layer', args: ['layers'] },
  { sample: 'after-build', why: 'containers as docker ps -a shows them', args: ['containers'] },
  { sample: 'after-build', why: "the container's read-write layer against its image (offline docker diff)", args: ['container', 'diff', 'sample'] },
  { sample: 'after-build', why: 'volumes/metadata.db and volumes/, with users and size on disk', args: ['volumes'] },
  { sample: 'after-build', why: 'network/files/local-kv.db, decoded by our own B+tree reader', args: ['networks'] },
  { sample: 'after-build', why: 'one network as docker network inspect prints it', args: ['network', 'inspect', 'samplenet'] },
  { sample: 'after-build', why: "libnetwork's records: an 8-byte index, then JSON", args: ['bolt', 'dump', 'network/files/local-kv.db'] },
  {
    sample: 'after-build',
    why: "bbolt's own consistency check, in TypeScript",
    args: ['bolt', 'check', 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db'],
  },
  { sample: 'after-build-vfs', why: 'the same build on the vfs driver: every layer is a full copy', args: ['layers'] },
  { sample: 'after-build-vfs', why: '', args: ['container', 'inspect', 'sample'] },
  { sample: 'after-build-btrfs', why: 'the same build on btrfs (a subvolume per layer): the driver chosen as dockerd chooses it', args: ['info'] },
  {
    sample: 'after-build-overlay',
    why: 'the first overlay driver: image layers are full trees (root/), the container an upper/ over them',
    args: ['container', 'diff', 'sample', '--json'],
  },
  {
    sample: 'after-build',
    why: "the container's file system built offline from its layers: the tar docker export gives, byte for byte",
    args: ['export', 'sample', '-o', '@out/sample.tar'],
  },
  {
    sample: 'after-build',
    why: 'an image as docker create + docker export would give it (the init layer added), written into a directory',
    args: ['export', 'localhost/buildtest:v1', '-o', '@out/image/'],
  },
  {
    sample: 'after-build',
    why: 'which layer holds a file, and whether each container and image sees, shadows or deletes it',
    args: ['find', '--name', 'hello'],
  },
  { sample: 'after-build', why: 'by path: what docker run added in the init layer', args: ['find', '--path', '/etc/*'] },
  {
    sample: 'after-build-vfs',
    why: 'by content, on a full-tree driver: only the layer that added the file is named',
    args: ['find', '--sha256', 'e074b8962340bb607c59f919f71086dc9930c9f1877c1518a05c0616501331e0'],
  },
  {
    sample: 'after-build',
    why: 'image IDs, chain IDs, references, BoltDB files, and every layer rebuilt from tar-split against its diffID',
    args: ['verify', '--deep'],
  },
  {
    sample: 'after-build',
    why: 'what the build, the run, the volume and the network wrote: JSON paths, BoltDB keys, in Docker terms',
    args: ['diff', '@fresh', '@after-build'],
    pair: true,
  },
  { sample: 'after-logs', why: 'containers logging through json-file (rotated, gzip-compressed), local, and syslog', args: ['containers'] },
  {
    sample: 'after-logs',
    why: 'json-file: the rotated .1.gz and .2.gz files and the live one, as docker logs -t --tail 6 prints them',
    args: ['logs', 'jsonlog', '--timestamps', '--tail', '6'],
  },
  {
    sample: 'after-logs',
    why: "--details: the attributes the log driver kept (here the container's label, from --log-opt labels=)",
    args: ['logs', 'jsonlog', '--details', '--tail', '3', '--stream', 'stderr'],
  },
  {
    sample: 'after-logs',
    why: "the local driver's protobuf records; a line over 16 KiB comes in partial records (dockerd 20.10 prints the next line right after it)",
    args: ['logs', 'locallog', '--tail', '4'],
  },
  { sample: 'after-logs', why: "syslog keeps nothing here, but dockerd's dual-logging cache does", args: ['logs', 'cachedlog'] },
  {
    sample: 'after-logs',
    why: "the daemon's events in time order (--format bodyfile gives mactime's input; without --no-files every file time too)",
    args: ['timeline', '--no-files'],
  },
  {
    sample: 'after-logs',
    why: 'a file docker cp planted in a container: its read-write layer',
    args: ['which'],
    resolve: layerFile('jsonlog', 'planted.txt', 'container'),
  },
  {
    sample: 'after-logs',
    why: 'a file of an image layer: its chainID and diffID, the images that hold it, and whether each container sees it',
    args: ['which'],
    resolve: layerFile('jsonlog', 'say', 'image'),
  },
  { sample: 'after-logs', why: 'a file of a volume, and where the containers that mount it see it', args: ['which', 'volumes/logvol/_data/evidence.txt'] },
  {
    sample: 'containerd',
    why: "a containerd root (a Kubernetes node's /var/lib/containerd): its namespaces, from meta.db",
    args: ['containerd', 'namespaces'],
  },
  { sample: 'containerd', why: 'images as ctr images ls lists them, with what is present and unpacked', args: ['containerd', 'images'] },
  { sample: 'containerd', why: 'snapshots: the overlayfs parent chains, as ctr snapshots tree prints them', args: ['containerd', 'snapshots', '--tree'] },
  {
    sample: 'containerd',
    why: 'a container as ctr containers info prints it: the spec decoded from its protobuf Any, runc options by name',
    args: ['containerd', 'container', 'inspect', 'sample'],
  },
  {
    sample: 'containerd',
    why: 'blob hashes, gc.ref labels, snapshot chains against diffIDs, what the collector would delete, leftover ingests',
    args: ['verify', '--deep'],
  },
  {
    sample: 'containerd',
    why: "whose file: a snapshot's file is its image layer's (chainID, diffID, images); the container on the next layer has it deleted by a whiteout",
    args: ['which', 'io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/etc/old'],
  },
  {
    sample: 'docker-containerd',
    why: "Docker 29's containerd image store: Id is the target digest, the untagged image kept as moby-dangling@",
    args: ['images', '-a'],
  },
  { sample: 'docker-containerd', why: "the container's read-write snapshot against its -init parent", args: ['container', 'diff', 'web'] },
  {
    sample: 'docker-containerd',
    why: 'find across image-layer snapshots, containers and volumes: who sees, shadows or deletes each hit',
    args: ['find', '--path', '/etc/*'],
  },
  {
    sample: 'docker-containerd',
    why: "a whiteout in the container's read-write snapshot: which image layer's file it deletes",
    args: ['which', 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/4/fs/etc/release'],
  },
];

/** A guided tour over the shipped samples: each step is a real dataroot command line. */
export async function runDemo(ctx: Ctx): Promise<void> {
  const dir = samplesDir();
  if (ctx.invoke === undefined) throw new DatarootError('INTERNAL', 'the demo needs the CLI to run commands');
  // Output of the steps that write (export): a private temp dir, removed at the end.
  const out = mkdtempSync(join(tmpdir(), 'dataroot-demo-'));
  try {
    await tour(ctx, dir, out);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  ctx.exitCode = 0;
}

async function tour(ctx: Ctx, dir: string, outDir: string): Promise<void> {
  for (const original of TOUR) {
    const step = { ...original, args: original.args.map((a) => (a.startsWith('@out/') ? `${outDir}/${a.slice(5)}` : a)) };
    const archive = join(dir, `${step.sample}.tar.gz`);
    if (!existsSync(archive)) throw new DatarootError('DEMO_SAMPLES_MISSING', `sample ${archive} is missing`, { file: archive });
    if (step.pair === true) {
      const args = step.args.map((a) => (a.startsWith('@') ? join(dir, `${a.slice(1)}.tar.gz`) : a));
      ctx.stdout.write(
        `\n${paint(ctx, 'cyan', `━━ dataroot ${step.args.map((a) => (a.startsWith('@') ? `snapshots/${a.slice(1)}.tar.gz` : a)).join(' ')}`)}\n`,
      );
      if (step.why !== '') ctx.stdout.write(`${paint(ctx, 'dim', `   ${step.why}`)}\n`);
      await ctx.invoke!(args);
      continue;
    }
    const extra = step.resolve === undefined ? [] : await withRoot(archive, (r) => step.resolve!(storeOf(r, {})));
    const shown = [...original.args.map((a) => (a.startsWith('@out/') ? `/tmp/${a.slice(5)}` : a)), ...extra];
    ctx.stdout.write(`\n${paint(ctx, 'cyan', `━━ dataroot ${shown.join(' ')} --root snapshots/${step.sample}.tar.gz`)}\n`);
    if (step.why !== '') ctx.stdout.write(`${paint(ctx, 'dim', `   ${step.why}`)}\n`);
    try {
      await ctx.invoke!([...step.args, ...extra, '--root', archive]);
    } catch (e) {
      // An install whose addon did not build: the tour goes on past the steps that need it.
      if (!(e instanceof DatarootError) || e.code !== 'IO_NATIVE_UNAVAILABLE') throw e;
      ctx.stdout.write(`${paint(ctx, 'yellow', `   skipped: ${safeText(e.message)} (dataroot info says why)`)}\n`);
    }
  }
}

export function registerDemo(program: Command, ctx: Ctx): void {
  program
    .command('demo')
    .description('a guided tour of dataroot over the shipped sample data-roots (no daemon needed)')
    .action(async () => {
      await runDemo(ctx);
    });
}

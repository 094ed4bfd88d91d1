import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chainIds } from '../../src/formats/digest/digest.js';
import { run } from './cli.js';
import { busyboxRootfs, type Containerd } from './containerd.js';
import { sleep } from './dockerd.js';

/**
 * The containerd scenario of issue 15, made with a real containerd (no registry): images packed by
 * `dataroot pack` (a Docker archive with three tags, a gzip OCI archive) imported into the
 * namespaces moby, k8s.io and default (one import keeping its index, one not unpacked); `ctr run`
 * containers that add, change and delete files (kept); snapshots prepared, viewed and committed
 * by hand; a lease with labels; an import killed half-way, which leaves an ingest and the lease
 * ctr took for it. `record` then takes what ctr prints while the daemon runs.
 */
export interface CdScenario {
  namespaces: string[];
  /** Containers run, by namespace. */
  containers: Record<string, string[]>;
  /** Docker-style container layers made in namespace moby (rw key = id, parent `<id>-init`). */
  dockerLayers: string[];
  work: string;
  /** The chainID of base:1 (its only layer). */
  baseChain: string;
}

async function pack(args: string[]): Promise<void> {
  const r = await run(['pack', ...args]);
  if (r.code !== 0) throw new Error(`dataroot pack ${args.join(' ')}: ${r.stderr}`);
}

/** Top snapshot key (chainID) of an image: its config's diffIDs, read through ctr. */
export function chainIdOf(d: Containerd, ns: string, image: string): string {
  const row = d
    .ctr(['images', 'ls'], { ns })
    .stdout.split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((r) => r[0] === image);
  if (row === undefined) throw new Error(`no image ${image} in ${ns}`);
  let desc = { mediaType: row[1]!, digest: row[2]! };
  let j = JSON.parse(d.ctr(['content', 'get', desc.digest], { ns }).stdout) as {
    manifests?: { mediaType: string; digest: string }[];
    config?: { digest: string };
  };
  if (j.manifests !== undefined) {
    desc = j.manifests[0]!;
    j = JSON.parse(d.ctr(['content', 'get', desc.digest], { ns }).stdout);
  }
  const cfg = JSON.parse(d.ctr(['content', 'get', j.config!.digest], { ns }).stdout) as { rootfs: { diff_ids: string[] } };
  return chainIds(cfg.rootfs.diff_ids).pop()!;
}

export async function buildCdScenario(d: Containerd, work: string, o: { interrupted?: boolean } = {}): Promise<CdScenario> {
  const rootfs = join(work, 'rootfs');
  const l2 = join(work, 'l2');
  mkdirSync(rootfs, { recursive: true });
  busyboxRootfs(rootfs);
  mkdirSync(join(l2, 'app'), { recursive: true });
  mkdirSync(join(l2, 'etc'), { recursive: true });
  writeFileSync(join(l2, 'app', 'hello'), 'hello from layer 2\n');
  writeFileSync(join(l2, 'etc', '.wh.gone'), '');
  await pack([
    '-o',
    join(work, 'base.tar'),
    '--layer',
    rootfs,
    '--cmd',
    '/bin/sh',
    '-t',
    'base:1',
    '--image',
    '--layer',
    rootfs,
    '--layer',
    l2,
    '--env',
    'APP_MODE=prod',
    '--label',
    'org.example.role=app',
    '--cmd',
    '["cat","/app/hello"]',
    '-t',
    'app:1',
    '-t',
    'app:latest',
  ]);
  await pack(['--format', 'oci', '--gzip', '-o', join(work, 'oci.tar'), '--layer', rootfs, '--layer', l2, '-t', 'ociimg:2']);

  d.ctr(['images', 'import', join(work, 'base.tar')], { ns: 'moby' });
  d.ctr(['images', 'import', join(work, 'oci.tar')], { ns: 'k8s.io' });
  d.ctr(['images', 'import', '--no-unpack', '--index-name', 'docker.io/library/indexed:1', join(work, 'base.tar')], { ns: 'default' });
  d.ctr(['namespaces', 'label', 'k8s.io', 'team=platform']);

  // Containers that add, change and delete files, kept after they exit.
  d.run('moby', 'docker.io/library/app:1', 'c-changes', [
    'sh',
    '-c',
    'echo new > /new.txt && echo more >> /etc/keep && rm /app/hello && rm -rf /opt/dir && mkdir -p /opt/dir && echo b > /opt/dir/b && mkdir -p /tmp/d/e && echo f > /tmp/d/e/f',
  ]);
  d.run('moby', 'docker.io/library/base:1', 'c-exit', ['true'], ['--label', 'role=probe']);
  d.run('default', 'docker.io/library/base:1', 'c-default', ['sh', '-c', 'echo x > /root/x']);

  // Snapshots by hand, in namespace default: active, view, committed.
  const baseChain = chainIdOf(d, 'default', 'docker.io/library/base:1');
  d.ctr(['snapshots', 'prepare', 'work-key', baseChain], { ns: 'default' });
  d.ctr(['snapshots', 'commit', 'work-committed', 'work-key'], { ns: 'default' });
  d.ctr(['snapshots', 'prepare', 'work-active', 'work-committed'], { ns: 'default' });
  d.ctr(['snapshots', 'view', 'work-view', baseChain], { ns: 'default' });
  d.ctr(['snapshots', 'label', 'work-view', `containerd.io/gc.root=${new Date().toISOString().slice(0, 19)}Z`], { ns: 'default' });
  d.ctr(['snapshots', 'label', 'work-committed', 'org.example.note=by-hand'], { ns: 'default' });
  d.ctr(['leases', 'create', '--id', 'lease-1', 'team=core', 'purpose=test'], { ns: 'default' });

  // Docker's container layers (moby's daemon/containerd/image_snapshot.go): <id>-init committed
  // over the image's chainID, then <id> active over it; a lease named after the container.
  const appChain = chainIdOf(d, 'moby', 'docker.io/library/app:1');
  const dockerLayers: string[] = [];
  for (const id of ['3f4e8d2c1b0a99887766554433221100ffeeddccbbaa00112233445566778899']) {
    d.ctr(['snapshots', 'prepare', `${id}-init-key`, appChain], { ns: 'moby' });
    d.ctr(['snapshots', 'commit', `${id}-init`, `${id}-init-key`], { ns: 'moby' });
    d.ctr(['snapshots', 'prepare', id, `${id}-init`], { ns: 'moby' });
    d.ctr(['leases', 'create', '--id', id], { ns: 'moby' });
    dockerLayers.push(id);
  }

  if (o.interrupted !== false) await interruptedImport(d, work);
  return { namespaces: ['default', 'k8s.io', 'moby'], containers: { moby: ['c-changes', 'c-exit'], default: ['c-default'] }, dockerLayers, work, baseChain };
}

/** An import killed half-way through a large layer: an ingest is left, with the lease ctr took. */
async function interruptedImport(d: Containerd, work: string): Promise<void> {
  const big = join(work, 'big');
  mkdirSync(big, { recursive: true });
  const bytes = Buffer.alloc(24 << 20);
  for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(big, 'blob.bin'), bytes);
  await pack(['-o', join(work, 'big.tar'), '--layer', big, '-t', 'big:1']);
  const child = spawn('ctr', ['-a', d.sock, '-n', 'default', 'images', 'import', '-'], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.on('error', () => {});
  child.stdin.write(readFileSync(join(work, 'big.tar')).subarray(0, 12 << 20));
  const ingest = join(d.root, 'io.containerd.content.v1.content', 'ingest');
  for (let i = 0; i < 200; i++) {
    await sleep(50);
    // (containerd makes ingest/ with the first write: not there yet on a busy machine.)
    const dirs = existsSync(ingest) ? readdirSync(ingest) : [];
    if (dirs.length > 0) {
      // Wait until some data is written, then kill the client mid-write.
      await sleep(300);
      break;
    }
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

/** What ctr printed while the daemon ran. */
export interface CtrRecord {
  namespaces: string;
  images: Record<string, string>;
  check: Record<string, string>;
  content: Record<string, string>;
  snapshots: Record<string, string>;
  usage: Record<string, string>;
  tree: Record<string, string>;
  info: Record<string, Record<string, unknown>>;
  containers: Record<string, Record<string, unknown>>;
  containersLs: Record<string, string>;
  leases: Record<string, string>;
  active: Record<string, string>;
}

export function recordCtr(d: Containerd, namespaces: string[]): CtrRecord {
  const rec: CtrRecord = {
    namespaces: d.ctr(['namespaces', 'ls']).stdout,
    images: {},
    check: {},
    content: {},
    snapshots: {},
    usage: {},
    tree: {},
    info: {},
    containers: {},
    containersLs: {},
    leases: {},
    active: {},
  };
  for (const ns of namespaces) {
    rec.images[ns] = d.ctr(['images', 'ls'], { ns }).stdout;
    rec.check[ns] = d.ctr(['images', 'check'], { ns, check: false }).stdout;
    rec.content[ns] = d.ctr(['content', 'ls'], { ns }).stdout;
    rec.snapshots[ns] = d.ctr(['snapshots', 'ls'], { ns }).stdout;
    rec.usage[ns] = d.ctr(['snapshots', 'usage', '-b'], { ns }).stdout;
    rec.tree[ns] = d.ctr(['snapshots', 'tree'], { ns }).stdout;
    rec.info[ns] = {};
    for (const line of rec.snapshots[ns].split('\n').slice(1).filter(Boolean)) {
      const key = line.split(/\s+/)[0]!;
      rec.info[ns][key] = JSON.parse(d.ctr(['snapshots', 'info', key], { ns }).stdout) as unknown;
    }
    rec.containersLs[ns] = d.ctr(['containers', 'ls'], { ns }).stdout;
    rec.containers[ns] = {};
    for (const line of rec.containersLs[ns].split('\n').slice(1).filter(Boolean)) {
      const id = line.split(/\s+/)[0]!;
      rec.containers[ns][id] = JSON.parse(d.ctr(['containers', 'info', id], { ns }).stdout) as unknown;
    }
    rec.leases[ns] = d.ctr(['leases', 'ls'], { ns }).stdout;
    rec.active[ns] = d.ctr(['content', 'active'], { ns }).stdout;
  }
  return rec;
}

/** Rows of a ctr table (cells split on runs of spaces; `content ls` on tabs). */
export function ctrRows(text: string, sep: RegExp = / +/): string[][] {
  return text
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) =>
      l
        .trim()
        .split(sep)
        .map((c) => c.trim()),
    );
}

/**
 * Garbage for containerd's next start, made last (no deletion follows, so no collection runs
 * before the daemon stops): a view and a blob nothing references.
 */
export function leaveGarbage(d: Containerd, scn: CdScenario): void {
  // ctr's view carries a gc.root label until it is cleared here. A collection scheduled by an
  // earlier deletion (ctr snapshots diff's temporary snapshots) may still run after that on a busy
  // machine and take the view or the blob: the garbage is then made again, until both outlast a
  // pause longer than containerd's scheduling delay.
  for (let attempt = 1; ; attempt++) {
    const last = attempt === 8;
    if (!d.ctr(['snapshots', 'ls'], { ns: 'default' }).stdout.includes('loose-view')) {
      d.ctr(['snapshots', 'view', 'loose-view', scn.baseChain], { ns: 'default', check: last });
      d.ctr(['snapshots', 'label', 'loose-view', 'containerd.io/gc.root='], { ns: 'default', check: last });
    }
    if (!hasLooseBlob(d)) d.ctr(['content', 'ingest', 'loose-blob'], { ns: 'default', input: LOOSE_BLOB, check: last });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
    const viewLeft = d.ctr(['snapshots', 'info', 'loose-view'], { ns: 'default', check: false });
    const labelled = viewLeft.status === 0 && !viewLeft.stdout.includes('containerd.io/gc.root');
    if ((labelled && hasLooseBlob(d)) || last) return;
  }
}

const LOOSE_BLOB = 'nothing references this blob\n';

function hasLooseBlob(d: Containerd): boolean {
  const digest = `sha256:${createHash('sha256').update(LOOSE_BLOB).digest('hex')}`;
  return d.ctr(['content', 'ls', '-q'], { ns: 'default' }).stdout.split('\n').includes(digest);
}

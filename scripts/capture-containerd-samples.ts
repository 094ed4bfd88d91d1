/**
 * Captures the two containerd samples of snapshots/ with a real containerd (see
 * snapshots/README.md for what each step does): `containerd.tar.gz`, a containerd root with
 * images in two namespaces, a kept container, snapshots made by hand, a lease and an
 * interrupted ingest; `docker-containerd.tar.gz`, a Docker data-root that uses the containerd
 * image store (namespace moby, dockerd's container layers, config.v2.json).
 * Run as root with containerd, ctr, runc and gcc: bash scripts/capture-containerd-samples.sh
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chainIdOf } from '../test/support/cdscenario.js';
import { run } from '../test/support/cli.js';
import { Containerd } from '../test/support/containerd.js';
import { sleep } from '../test/support/dockerd.js';
import { makeDockerLayers, placeContainerdRoot, writeDockerContainer } from '../test/support/dockercd.js';

const here = fileURLToPath(new URL('..', import.meta.url));
const out = join(here, 'snapshots');
const work = mkdtempSync(join(tmpdir(), 'dataroot-cdcapture-'));

function sh(cmd: string): void {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
}

async function pack(args: string[]): Promise<void> {
  const r = await run(['pack', ...args]);
  if (r.code !== 0) throw new Error(`pack: ${r.stderr}`);
}

function archive(dir: string, name: string): void {
  sh(`tar --numeric-owner --xattrs --xattrs-include='*' -C '${dir}' -cf - . | gzip -9n > '${join(out, name)}'`);
  console.log(`wrote snapshots/${name} (${statSync(join(out, name)).size} bytes)`);
}

async function main(): Promise<void> {
  // 1. The tiny program, and two layers: the program, then a text file and a whiteout.
  const l1 = join(work, 'l1');
  const l2 = join(work, 'l2');
  mkdirSync(l1);
  mkdirSync(join(l2, 'etc'), { recursive: true });
  sh(`gcc -nostdlib -static -s -Wl,--build-id=none -Wl,-n -o '${l1}/hello' '${here}/test/fixtures/hello/hello.S'`);
  mkdirSync(join(l1, 'etc'));
  writeFileSync(join(l1, 'etc', 'motd'), 'welcome\n');
  writeFileSync(join(l1, 'etc', 'old'), 'to be removed by the next layer\n');
  writeFileSync(join(l2, 'etc', 'release'), 'sample 1\n');
  writeFileSync(join(l2, 'etc', '.wh.old'), '');
  const docker = join(work, 'hello.tar');
  const oci = join(work, 'hello-oci.tar');
  await pack([
    '--mtime',
    '2026-11-30T10:00:00Z',
    '-o',
    docker,
    '--layer',
    l1,
    '--entrypoint',
    '["/hello"]',
    '--label',
    'org.example.sample=containerd',
    '-t',
    'hello:1',
    '--image',
    '--layer',
    l1,
    '--layer',
    l2,
    '--entrypoint',
    '["/hello"]',
    '--env',
    'GREETING=hello',
    '-t',
    'hello:2',
    '-t',
    'hello:latest',
  ]);
  await pack([
    '--mtime',
    '2026-11-30T10:00:00Z',
    '--format',
    'oci',
    '--gzip',
    '-o',
    oci,
    '--layer',
    l1,
    '--layer',
    l2,
    '--entrypoint',
    '["/hello"]',
    '-t',
    'hello-oci:1',
  ]);

  // 2. containerd.tar.gz: a containerd root as a Kubernetes node or ctr leaves it.
  const a = new Containerd(join(work, 'c8d'));
  await a.start();
  try {
    a.ctr(['images', 'import', docker], { ns: 'default' });
    a.ctr(['images', 'import', oci], { ns: 'k8s.io' });
    a.ctr(['namespaces', 'label', 'k8s.io', 'team=platform']);
    a.run('default', 'docker.io/library/hello:2', 'sample', [], ['--label', 'org.example.role=sample']);
    const chain = chainIdOf(a, 'default', 'docker.io/library/hello:1');
    a.ctr(['snapshots', 'prepare', 'work-key', chain], { ns: 'default' });
    a.ctr(['snapshots', 'commit', 'work', 'work-key'], { ns: 'default' });
    a.ctr(['leases', 'create', '--id', 'sample-lease', 'team=core'], { ns: 'default' });
    // An ingest left by a writer that died after 7 bytes.
    const child = spawn('ctr', ['-a', a.sock, '-n', 'default', 'content', 'ingest', 'partial-upload'], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.write('partial');
    await sleep(1500);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  } finally {
    await a.stop();
  }
  spawnSync('rm', ['-rf', join(a.root, 'tmpmounts')]);
  archive(a.root, 'containerd.tar.gz');

  // 3. docker-containerd.tar.gz: a Docker data-root on the containerd image store (moby namespace).
  const b = new Containerd(join(work, 'dockerc8d'));
  const dockerRoot = join(work, 'docker');
  await b.start();
  try {
    b.ctr(['images', 'import', docker], { ns: 'moby' });
    const rows = b
      .ctr(['images', 'ls'], { ns: 'moby' })
      .stdout.split('\n')
      .map((l) => l.trim().split(/\s+/));
    const h2 = rows.find((r) => r[0] === 'docker.io/library/hello:2')!;
    const h1 = rows.find((r) => r[0] === 'docker.io/library/hello:1')!;
    const manifestSize = Buffer.byteLength(b.ctr(['content', 'get', h2[2]!], { ns: 'moby' }).stdout);
    const id = '5a3c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
    const c = {
      id,
      name: 'web',
      image: 'hello:2',
      target: h2[2]!,
      manifest: { mediaType: h2[1]!, digest: h2[2]!, size: manifestSize },
      chainId: chainIdOf(b, 'moby', 'docker.io/library/hello:2'),
      cmd: ['/hello'],
      changes: 'echo added > added.txt && echo more >> etc/motd && rm etc/release && mkdir -p var/log && echo line > var/log/app.log',
    };
    makeDockerLayers(b, c);
    // hello:1 untagged: dockerd keeps it as moby-dangling@<target>.
    b.ctr(['images', 'tag', 'docker.io/library/hello:1', `moby-dangling@${h1[2]}`], { ns: 'moby' });
    b.ctr(['images', 'rm', 'docker.io/library/hello:1'], { ns: 'moby' });
    await b.stop();
    spawnSync('rm', ['-rf', join(b.root, 'tmpmounts')]);
    placeContainerdRoot(b.root, dockerRoot);
    writeDockerContainer(dockerRoot, c);
    for (const d of ['volumes', 'network/files', 'image', 'buildkit', 'plugins', 'runtimes', 'tmp']) mkdirSync(join(dockerRoot, d), { recursive: true });
    rmSync(join(dockerRoot, 'image'), { recursive: true });
    writeFileSync(join(dockerRoot, 'engine-id'), '00000000-0000-4000-8000-000000000001\n');
  } finally {
    await b.stop();
  }
  archive(dockerRoot, 'docker-containerd.tar.gz');
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));

import { spawnSync } from 'node:child_process';
import * as zlib from 'node:zlib';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { untar as unpackTar } from './support/untar.js';
import { BIN, run, runBin, runBinAsync, SAMPLES } from './support/cli.js';

const AFTER = join(SAMPLES, 'after-build.tar.gz');
const FRESH = join(SAMPLES, 'fresh.tar.gz');
const VFS = join(SAMPLES, 'after-build-vfs.tar.gz');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dataroot-cli-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Reads repositories.json straight from the archive with the system tar: the independent answer. */
function repositoriesOf(archive: string, driver: string): Record<string, Record<string, string>> {
  const u = unpackTar(archive);
  try {
    return (JSON.parse(readFileSync(join(u.dir, 'image', driver, 'repositories.json'), 'utf8')) as { Repositories: Record<string, Record<string, string>> })
      .Repositories;
  } finally {
    u.cleanup();
  }
}

describe('cat', () => {
  it('shows the tag of the built image in repositories.json of the after-build sample', async () => {
    const r = await run(['cat', 'image/overlay2/repositories.json', '--root', AFTER]);
    expect(r.code).toBe(0);
    const shown = JSON.parse(r.stdout) as { Repositories: Record<string, Record<string, string>> };
    expect(shown.Repositories).toEqual(repositoriesOf(AFTER, 'overlay2'));
    expect(Object.keys(shown.Repositories['localhost/buildtest'] ?? {})).toEqual(['localhost/buildtest:v1']);
    expect(r.stdout).toContain('  "Repositories": {');
  });

  it('--raw prints the bytes exactly; -l adds the missing final newline', async () => {
    const raw = await run(['cat', '--raw', 'image/overlay2/repositories.json', '--root', AFTER]);
    const u = unpackTar(AFTER);
    try {
      expect(raw.stdoutBytes.equals(readFileSync(join(u.dir, 'image/overlay2/repositories.json')))).toBe(true);
    } finally {
      u.cleanup();
    }
    expect(raw.stdout.endsWith('\n')).toBe(false);
    const l = await run(['cat', '--raw', '-l', 'image/overlay2/repositories.json', '--root', AFTER]);
    expect(l.stdout).toBe(`${raw.stdout}\n`);
  });

  it('decompresses a tar-split.json.gz into its records', async () => {
    const files = JSON.parse((await run(['--json', 'files', '--type', 'gz', '--root', AFTER])).stdout) as { path: string }[];
    const ts = files.find((f) => f.path.endsWith('tar-split.json.gz'));
    expect(ts).toBeDefined();
    const r = await run(['--json', 'cat', ts!.path, '--root', AFTER]);
    const doc = JSON.parse(r.stdout) as { kind: string; content: { type: number; name?: string }[] };
    expect(doc.kind).toBe('gzip');
    expect(doc.content.some((e) => e.type === 1 && e.name === 'hello')).toBe(true);
  });

  it('a path outside the root is refused', async () => {
    const r = await run(['cat', '../../etc/passwd', '--root', AFTER]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^dataroot: USAGE_PATH_OUTSIDE_ROOT/);
  });
});

describe('tables: cli-table3, loaded only when a table is printed', () => {
  it('the bundle reaches cli-table3 through a dynamic import only (commands without tables never load it)', () => {
    const dir = fileURLToPath(new URL('../dist/bundle/', import.meta.url));
    const files = readdirSync(dir).filter((f) => f.endsWith('.mjs'));
    // cli-table3's own option name, in no dataroot source.
    const holders = files.filter((f) => readFileSync(join(dir, f), 'utf8').includes('wrapOnWordBoundary'));
    expect(holders.length).toBe(1);
    const chunk = holders[0]!;
    const all = files.map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
    expect(all).toContain(`import("./${chunk}")`);
    expect(all).not.toMatch(new RegExp(`(from|import)\\s*"\\./${chunk.replace('.', '\\.')}"`));
  });

  it('images prints a docker-style table through it (bold header only on a terminal)', async () => {
    const r = await run(['images', '--root', AFTER]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('REPOSITORY             TAG    IMAGE ID        CREATED        SIZE');
  });
});

describe('info reports the install: the native addon and the snapshot store zstd', () => {
  const ADDON_FILE = fileURLToPath(new URL('../build/Release/dataroot_native.node', import.meta.url));
  const nodeZstd = typeof (zlib as { zstdDecompressSync?: unknown }).zstdDecompressSync === 'function';
  let root: { dir: string; cleanup(): void };
  beforeAll(() => {
    root = unpackTar(AFTER);
  });
  afterAll(() => root.cleanup());

  it('with the addon built: loaded, and its zstd used where Node has none', () => {
    expect(existsSync(ADDON_FILE), 'npm run build builds the addon (node-gyp); see build/native-build.json').toBe(true);
    const r = runBin(['--json', 'info', '--root', root.dir]);
    expect(r.code).toBe(0);
    const i = (
      JSON.parse(r.stdout) as { install: { addon: { state: string; path: string; unavailable: string[] }; zstd: { decompress: string; compress: string } } }
    ).install;
    expect(i.addon).toMatchObject({ state: 'loaded', path: ADDON_FILE, unavailable: [] });
    expect(i.zstd).toEqual({ decompress: nodeZstd ? 'node:zlib' : 'addon', compress: 'addon' });
    const t = runBin(['info', '--root', root.dir]);
    expect(t.stdout).toContain(`Addon:       loaded (${ADDON_FILE})`);
    expect(t.stdout).toContain(`zstd: stores read with ${nodeZstd ? 'node:zlib' : 'addon'}, written with addon`);
  });

  it('with DATAROOT_NO_NATIVE=1: not loaded, why, what does not work, and fzstd (or Node) reads stores', () => {
    const r = runBin(['--json', 'info', '--root', root.dir], { DATAROOT_NO_NATIVE: '1' });
    expect(r.code).toBe(0);
    const i = (
      JSON.parse(r.stdout) as {
        install: { addon: { state: string; reason: string; unavailable: string[] }; zstd: { decompress: string; compress: string | null } };
      }
    ).install;
    expect(i.addon.state).toBe('disabled');
    expect(i.addon.reason).toBe('DATAROOT_NO_NATIVE is set');
    expect(i.addon.unavailable).toContain('snapshot');
    expect(i.addon.unavailable).toContain('restore');
    expect(i.zstd).toEqual(nodeZstd ? { decompress: 'node:zlib', compress: 'node:zlib' } : { decompress: 'fzstd', compress: null });
    const t = runBin(['info', '--root', root.dir], { DATAROOT_NO_NATIVE: '1' });
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^Addon: {7}not loaded \(disabled\): DATAROOT_NO_NATIVE is set; without it: snapshot, restore, /m);
    expect(t.stdout).toContain(nodeZstd ? 'zstd: stores read with node:zlib, written with node:zlib' : 'zstd: stores read with fzstd, not written here');
  });
});

describe('without the addon (DATAROOT_NO_NATIVE=1): the read commands on every shipped sample archive', () => {
  // The archives are unpacked without the addon too (whiteout devices by mknod(1), times by Node's
  // lutimes, xattrs left out): each command prints what it prints with the addon, byte for byte;
  // a container diff over overlay layers, whose opaque directories only xattrs show, refuses.
  const docker = (image: string, container: string): string[][] => [
    ['images', '-a'],
    ['image', 'inspect', image],
    ['history', image],
    ['containers', '-a'],
    ['container', 'inspect', container],
    ['container', 'diff', container],
    ['verify'],
  ];
  const graph = [...docker('localhost/buildtest:v1', 'sample'), ['layers'], ['volumes'], ['networks'], ['bolt', 'dump', 'network/files/local-kv.db']];
  const cases: [string, string[][], boolean][] = [
    ['fresh', [['images'], ['networks'], ['verify']], false],
    ['after-build', graph, true],
    ['after-build-vfs', graph, false],
    ['after-build-overlay', graph, true],
    ['after-build-fuse-overlayfs', graph, true],
    ['after-build-btrfs', graph, false],
    ['docker-containerd', docker('hello:2', 'web'), true],
    ['containerd', [['containerd', 'images'], ['containerd', 'snapshots'], ['containerd', 'containers'], ['containerd', 'content'], ['verify']], false],
  ];
  it.each(cases)('%s', async (sample, commands, overlay) => {
    const root = join(SAMPLES, `${sample}.tar.gz`);
    for (const args of commands) {
      const [withAddon, without] = await Promise.all([
        runBinAsync([...args, '--root', root]),
        runBinAsync([...args, '--root', root], { DATAROOT_NO_NATIVE: '1' }),
      ]);
      expect(withAddon.code, `${args.join(' ')}: ${withAddon.stderr}`).toBe(0);
      if (overlay && args[1] === 'diff') {
        expect(without.code, args.join(' ')).toBe(2);
        expect(without.stderr).toMatch(/^dataroot: IO_NATIVE_UNAVAILABLE: /);
      } else expect(without, args.join(' ')).toEqual(withAddon);
    }
  });
});

describe('info and files on the samples', () => {
  it.each([
    [FRESH, 'overlay2', 0, 0, 0],
    [AFTER, 'overlay2', 1, 1, 1],
    [VFS, 'vfs', 1, 1, 1],
  ])('%s', async (archive, driver, tags, layers, containers) => {
    const r = await run(['--json', 'info', '--root', archive]);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(info['driver']).toBe(driver);
    expect(info['tags']).toBe(tags);
    expect(info['layers']).toBe(layers);
    expect(info['containers']).toBe(containers);
    expect(info['volumes']).toBe(containers); // the sample's one named volume
    expect(info['inUse']).toBe(false);
  });

  it('files --type bolt finds BoltDB files by magic, also under a misleading name', async () => {
    const u = unpackTar(AFTER);
    try {
      // A copy of a bolt file with a .json name, and a text file named .db
      writeFileSync(join(u.dir, 'image', 'looks.json'), readFileSync(join(u.dir, 'volumes/metadata.db')));
      writeFileSync(join(u.dir, 'network', 'fake.db'), 'not a database');
      const r = await run(['--json', 'files', '--type', 'bolt', '--root', u.dir]);
      const paths = (JSON.parse(r.stdout) as { path: string }[]).map((f) => f.path);
      expect(paths).toContain('image/looks.json');
      expect(paths).toContain('network/files/local-kv.db');
      expect(paths).toContain('volumes/metadata.db');
      expect(paths).not.toContain('network/fake.db');
    } finally {
      u.cleanup();
    }
  });

  it('files --sort lists the largest first', async () => {
    const r = await run(['--json', 'files', '--sort', '--root', AFTER]);
    const sizes = (JSON.parse(r.stdout) as { size: number }[]).map((f) => f.size);
    expect(sizes.length).toBeGreaterThan(10);
    expect([...sizes].sort((a, b) => b - a)).toEqual(sizes);
  });
});

describe('bad input: one coded line on stderr, exit 2, no stack trace', () => {
  const cases: [string, () => string[], RegExp][] = [
    ['a missing root', () => ['info', '--root', join(tmp, 'nope')], /^dataroot: STORE_NOT_FOUND: /],
    ['a root that is not a data-root', () => ['info', '--root', tmp], /^dataroot: STORE_NOT_A_DATAROOT: /],
    [
      'a corrupt tar archive',
      () => {
        const f = join(tmp, 'corrupt.tar.gz');
        writeFileSync(f, readFileSync(AFTER).subarray(0, 3000));
        return ['info', '--root', f];
      },
      /^dataroot: STORE_BAD_ARCHIVE: /,
    ],
    ['an unknown flag', () => ['info', '--bogus'], /^dataroot: USAGE_UNKNOWN_OPTION: /],
    ['an unknown command', () => ['frobnicate'], /^dataroot: USAGE_UNKNOWN_COMMAND: /],
    ['a bad --type', () => ['files', '--type', 'xml', '--root', AFTER], /^dataroot: USAGE_INVALID_ARGUMENT: /],
    [
      'a --compress-level out of range',
      () => ['snapshot', '--root', tmp, '--store', join(tmp, 'never-made'), '--compress-level', '20'],
      /^dataroot: USAGE_INVALID_ARGUMENT: .*-100 \(fastest\) to 19/,
    ],
    [
      'a --compress-level that is not an integer',
      () => ['snapshot', '--root', tmp, '--store', join(tmp, 'never-made'), '--compress-level=-2.5'],
      /^dataroot: USAGE_INVALID_ARGUMENT: /,
    ],
    ['cat of a missing file', () => ['cat', 'nope.json', '--root', AFTER], /^dataroot: IO_NOT_FOUND: /],
  ];
  it.each(cases)('%s (built binary)', (_n, args, re) => {
    const r = runBin(args());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
  });

  it('the installed command (bin/dataroot, reached through a symlink as npm links it) runs node without NODE_EXTRA_CA_CERTS, and keeps exit codes', () => {
    const link = join(tmp, 'dataroot-link');
    rmSync(link, { force: true });
    symlinkSync(fileURLToPath(new URL('../bin/dataroot', import.meta.url)), link);
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(tmp, 'no-such-bundle.pem') };
    // node 20 loads the bundle at start and warns when it cannot (node 22 and 24 load it when TLS is
    // first used, so they never do here); through the command it never tries
    const eager = /extra certs/.test(spawnSync(process.execPath, ['-e', ''], { env, encoding: 'utf8' }).stderr);
    const direct = spawnSync(process.execPath, [BIN, '--version'], { env, encoding: 'utf8' });
    expect(/extra certs/.test(direct.stderr)).toBe(eager);
    const ok = spawnSync(link, ['--version'], { env, encoding: 'utf8' });
    expect([ok.status, ok.stdout.trim(), ok.stderr]).toEqual([0, direct.stdout.trim(), '']);
    const bad = spawnSync(link, ['frobnicate'], { env, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^dataroot: USAGE_UNKNOWN_COMMAND: /);
  });

  it('--json puts the error on stderr as {"error":{code,message}}', async () => {
    const r = await run(['--json', 'info', '--root', join(tmp, 'nope')]);
    expect(r.code).toBe(2);
    const e = JSON.parse(r.stderr) as { error: { code: string; message: string } };
    expect(e.error.code).toBe('STORE_NOT_FOUND');
    expect(e.error.message).toContain('does not exist');
    expect(r.stdout).toBe('');
  });

  it('the archive temp dir is removed after a command', () => {
    // A TMPDIR of its own: other processes on the machine make and remove dataroot-root-* dirs too.
    const own = mkdtempSync(join(tmp, 'tmpdir-'));
    const r = runBin(['info', '--root', AFTER], { TMPDIR: own });
    expect(r.code).toBe(0);
    expect(readdirSync(own)).toEqual([]);
  });
});

describe('demo', () => {
  it('walks every sample through info, files, cat, the store commands and the BoltDB reader', async () => {
    const r = await run(['demo']);
    expect(r.code).toBe(0);
    // stderr: only what the containers of the logs steps wrote on their stderr, and the cache's note.
    for (const line of r.stderr.split('\n').filter(Boolean)) {
      expect(line).toMatch(
        /^(?:(?:\d{4}-\d\d-\d\dT[0-9:.]+Z |org\.example\.team=forensics )?warning \d+|and on stderr|dataroot: note: read from the dual-logging cache \(containers\/[a-f0-9]{64}\/container-cached\.log\): the syslog driver itself sent the logs elsewhere)$/,
      );
    }
    expect(r.stderr).toContain('org.example.team=forensics warning 12\n');
    // The forensics steps on after-logs: logs of each driver, the timeline, which.
    expect(r.stdout).toMatch(/Z the end, no newline\n/);
    expect(r.stdout).toContain('sent to syslog, kept in the cache\n');
    expect(r.stdout).toMatch(/container\.started\s+container \/jsonlog \([a-f0-9]{12}\)/);
    expect(r.stdout).toMatch(/read-write layer of container \/jsonlog \([a-f0-9]{12}\), \/planted\.txt in the container/);
    expect(r.stdout).toMatch(/\/jsonlog \([a-f0-9]{12}\): sees it/);
    expect(r.stdout).toContain('mounted by /jsonlog');
    // which on the containerd samples: through a whiteout, and a whiteout's effect.
    expect(r.stdout).toContain('(sample): has it deleted (whiteout in io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs)');
    expect(r.stdout).toContain('deletes /etc/release of the image (from image layer c285b6dfa93d)');
    // find on the containerd image store: the container's read-write snapshot deletes /etc/release.
    expect(r.stdout).toMatch(
      /\/etc\/release {2}file 9 B {2}0644 0:0 [^\n]*\n {2}in image layer c285b6dfa93d [^\n]*\n {2}container web deletes it \(by the read-write layer of container 5a3c0d1e2f3a\)/,
    );
    // diff shows the added network's subnet, decoded from the JSON string libnetwork keeps it in.
    expect(r.stdout).toContain('json.ipamV4Config<json>[0].PreferredPool = "172.30.0.0/24"');
    for (const c of [
      'images -a',
      'image inspect localhost/buildtest:v1',
      'history',
      'layers',
      'containers',
      'container diff sample',
      'volumes',
      'networks',
      'network inspect samplenet',
    ]) {
      expect(r.stdout).toContain(`dataroot ${c}`);
    }
    // The container ran with -v samplevol:/data: its RW layer adds the mount point.
    expect(r.stdout).toContain('A /data\n');
    // The sample root was captured under /tmp/dataroot-capture-*: paths are shown as dockerd printed them.
    expect(r.stdout).toMatch(/"UpperDir": "\/tmp\/dataroot-capture-[^/]+\/overlay2\/root\/overlay2\/[a-f0-9]{64}\/diff"/);
    expect(r.stdout).toContain('dataroot info --root snapshots/fresh.tar.gz');
    expect(r.stdout).toContain('localhost/buildtest:v1');
    expect(r.stdout).toContain('buildkit/cache.db');
    // samplenet was created with --subnet 172.30.0.0/24: its bridge state, decoded from local-kv.db
    expect(r.stdout).toContain('"AddressIPv4": "172.30.0.1/24"');
    // export and find (issue 17).
    expect(r.stdout).toMatch(
      /dataroot export sample -o \/tmp\/sample\.tar --root snapshots\/after-build\.tar\.gz\n.*\nexported container sample \(6e1fc4473ba3\): 14 entries, 6 files, 480 B to /,
    );
    expect(r.stdout).toMatch(/exported image localhost\/buildtest:v1 \(205b4c19f5b8\): \d+ entries/);
    expect(r.stdout).toMatch(
      /\/hello {2}file 480 B {2}0755 0:0 .*\n {2}in image layer 1c6a3e5cb7f9 \(localhost\/buildtest:v1\): .*\n {2}container sample sees it\n {2}image localhost\/buildtest:v1 sees it/,
    );
    expect(r.stdout).toMatch(/\/etc\/hostname {2}file 0 B {2}0755 0:0 .*\n {2}in container sample \(init layer\)/);
  });
});

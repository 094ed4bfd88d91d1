import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dockerd, sleep } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { BIN, run } from '../support/cli.js';

/**
 * Issue 4's acceptance with a real dockerd (overlay2): snapshots around a legacy build, a run that
 * deletes a file, a volume and a network; the semantic diff names each change once and in Docker's
 * terms; a restored snapshot is identical to the root (find, getfattr, sha256) and a daemon runs
 * it; damaged stores and a root that vanishes mid-snapshot are refused with nothing registered.
 */

type Obj = Record<string, any>;

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

/** Every entry of a tree: type, mode, owner, size, mtime, link target, device numbers, link count; xattrs; file hashes. */
function treeFacts(root: string): { find: string; xattrs: string; sums: string } {
  return {
    find:
      sh(`cd ${root} && find . -printf '%y %m %U %G %s %T@ %l %n %p\\n' | sed 's/ /|/g' | sort`) +
      sh(`cd ${root} && find . \\( -type c -o -type b \\) -exec stat -c '%n %t %T' {} + | sort`),
    xattrs: sh(`cd ${root} && getfattr -R -h -d -m - --absolute-names . 2>/dev/null | grep -v '^$' | sort || true`),
    sums: sh(`cd ${root} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum`),
  };
}

describe.runIf(needs('dockerd', 'docker', 'busybox', 'getfattr'))('snapshot and diff e2e (overlay2)', () => {
  const d = new Dockerd('overlay2');
  let work: string;
  let store: string;
  const diffs: Record<string, Obj> = {};
  let imageId = '';
  let networkId = '';

  const snap = async (name: string): Promise<void> => {
    const r = await run(['--json', 'snapshot', '--root', d.root, '--store', store, '--name', name]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  };
  const diff = async (a: string, b: string): Promise<Obj> => {
    const r = await run(['--json', 'diff', `@${a}`, `@${b}`, '--store', store]);
    expect(r.code).toBe(1);
    return JSON.parse(r.stdout) as Obj;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-snap-e2e-'));
    store = join(work, 'store');
    await d.start();
    await d.stop();
    await snap('fresh');
    await d.start();
    const ctx = join(work, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nLABEL org.example.step=v5\n');
    d.docker(['build', '-q', '-t', 'localhost/buildtest:v5', ctx], { env: { DOCKER_BUILDKIT: '0' } });
    imageId = JSON.parse(d.docker(['image', 'inspect', 'localhost/buildtest:v5']).stdout)[0]['Id'];
    await d.stop();
    await snap('after-build');
    diffs['build'] = await diff('fresh', 'after-build');
    await d.start();
    d.importBusybox('base:busybox');
    await d.stop();
    await snap('with-busybox');
    await d.start();
    d.docker(['run', '--name', 'deleter', 'base:busybox', 'rm', '/etc/group']);
    await d.stop();
    await snap('after-run');
    diffs['run'] = await diff('with-busybox', 'after-run');
    await d.start();
    d.docker(['volume', 'create', '--label', 'purpose=test', 'snapvol']);
    await d.stop();
    await snap('after-volume');
    diffs['volume'] = await diff('after-run', 'after-volume');
    await d.start();
    networkId = d.docker(['network', 'create', '--subnet', '10.99.0.0/24', 'snapnet']).stdout.trim();
    await d.stop();
    await snap('after-network');
    diffs['network'] = await diff('after-volume', 'after-network');
  });
  afterAll(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('no path is reported twice in any diff', () => {
    for (const [k, r] of Object.entries(diffs)) {
      const paths = (r['entries'] as Obj[]).map((e) => e['path']);
      expect(new Set(paths).size, k).toBe(paths.length);
    }
  });

  it('around a legacy build: the new image ID and tag, the repositories.json path, the imagedb files, the local-kv.db keys', () => {
    const r = diffs['build']!;
    expect(r['summary'].images.added).toContain(imageId);
    expect(r['summary'].tags.added).toEqual(['localhost/buildtest:v5']);
    const byPath = new Map((r['entries'] as Obj[]).map((e) => [e['path'], e]));
    const repos = byPath.get('image/overlay2/repositories.json')!;
    expect(repos['change']).toBe('modified');
    expect(repos['detail'].changes).toContainEqual({
      change: 'added',
      path: 'Repositories."localhost/buildtest"',
      right: { 'localhost/buildtest:v5': imageId },
    });
    expect(byPath.get(`image/overlay2/imagedb/content/sha256/${imageId.slice(7)}`)?.['change']).toBe('added');
    expect([...byPath.keys()].filter((p) => p.startsWith(`image/overlay2/imagedb/metadata/sha256/${imageId.slice(7)}`)).length).toBeGreaterThan(0);
    // dockerd 20.10's legacy builder creates (never starts) a container for LABEL: no sandbox, so
    // local-kv.db may be unchanged; when it did change, its keys are listed, decoded.
    const kv = byPath.get('network/files/local-kv.db');
    if (kv !== undefined) {
      expect(kv['detail'].kind).toBe('bolt');
      expect(kv['detail'].changes.length).toBeGreaterThan(0);
    }
  });

  it('around a run that deletes a file of its image: the whiteout device appears with major/minor 0/0', () => {
    const r = diffs['run']!;
    const wh = (r['entries'] as Obj[]).find((e) => /^overlay2\/[a-f0-9]{64}\/diff\/etc\/group$/.test(e['path']));
    expect(wh).toMatchObject({ change: 'added', type: 'char', fields: { rdev: { right: [0, 0] } } });
    expect(r['summary'].containers.added.length).toBe(1);
  });

  it('around docker volume create: the volume, its metadata.db key and its directory', () => {
    const r = diffs['volume']!;
    expect(r['summary'].volumes.added).toEqual(['snapvol']);
    const db = (r['entries'] as Obj[]).find((e) => e['path'] === 'volumes/metadata.db')!;
    expect(db['detail'].changes).toContainEqual(
      expect.objectContaining({
        change: 'added',
        path: ['volumes'],
        key: 'snapvol',
        right: { json: { Name: 'snapvol', Driver: 'local', Labels: { purpose: 'test' }, Options: null } },
      }),
    );
    expect((r['entries'] as Obj[]).some((e) => e['path'] === 'volumes/snapvol/_data' && e['change'] === 'added')).toBe(true);
  });

  it("around docker network create: the network's key in local-kv.db as a decoded JSON object", () => {
    const r = diffs['network']!;
    expect(r['summary'].networks.added).toEqual([`snapnet (${networkId.slice(0, 12)})`]);
    const kv = (r['entries'] as Obj[]).find((e) => e['path'] === 'network/files/local-kv.db')!;
    const added = (kv['detail'].changes as Obj[]).find((c) => c['key'] === `docker/network/v1.0/network/${networkId}/`)!;
    expect(added['change']).toBe('added');
    expect(added['right'].json).toMatchObject({ name: 'snapnet', id: networkId, networkType: 'bridge' });
    expect(added['right'].json.ipamV4Config).toContain('10.99.0.0/24');
  });

  it('a second snapshot of an unchanged root stores nothing new and re-reads nothing', async () => {
    const r = await run(['--json', 'snapshot', '--root', d.root, '--store', store, '--name', 'again']);
    const o = JSON.parse(r.stdout) as Obj;
    expect(o['snapshot'].newBytes).toBe(0);
    expect(o['stats'].hashedBytes).toBe(0);
    expect((await run(['diff', '@after-network', '@again', '--store', store])).code).toBe(0);
  });

  it('restore is identical to the root (find, getfattr, sha256), and dockerd runs what it holds', async () => {
    const to = join(work, 'restored');
    const r = await run(['restore', 'after-network', '--store', store, '--to', join(to, 'root')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const a = treeFacts(d.root);
    const b = treeFacts(join(to, 'root'));
    expect(b.find).toBe(a.find);
    expect(b.xattrs).toBe(a.xattrs);
    expect(a.xattrs).toContain('trusted.overlay');
    expect(b.sums).toBe(a.sums);
    const rd = new Dockerd('overlay2', to);
    try {
      await d.start();
      const want = {
        images: d.docker(['images', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']).stdout,
        ps: d.docker(['ps', '-a', '--format', '{{.ID}} {{.Names}} {{.Status}}']).stdout.replace(/ \d+ \w+ ago/g, ''),
      };
      await d.stop();
      await rd.start();
      expect(rd.docker(['images', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']).stdout).toBe(want.images);
      expect(rd.docker(['ps', '-a', '--format', '{{.ID}} {{.Names}} {{.Status}}']).stdout.replace(/ \d+ \w+ ago/g, '')).toBe(want.ps);
      expect(rd.docker(['run', '--rm', 'base:busybox', 'echo', 'restored runs']).stdout).toBe('restored runs\n');
      // The container's own whiteout came back with the restore: its rm now finds nothing to remove.
      const again = rd.docker(['start', '-a', 'deleter'], { check: false });
      expect(again.stdout + again.stderr).toMatch(/can't remove '\/etc\/group': No such file or directory/);
    } finally {
      await rd.cleanup();
    }
  });

  it('restore refuses a non-empty target without --force, and a target a daemon holds even with it', async () => {
    const to = join(work, 'nonempty');
    mkdirSync(to);
    writeFileSync(join(to, 'x'), 'x');
    const r = await run(['restore', 'fresh', '--store', store, '--to', to]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/RESTORE_TARGET_NOT_EMPTY/);
    await d.start();
    try {
      const live = await run(['restore', 'fresh', '--store', store, '--to', d.root, '--force']);
      expect(live.code).toBe(2);
      expect(live.stderr).toMatch(/STORE_DAEMON_RUNNING/);
    } finally {
      await d.stop();
    }
  });

  describe('bad input: coded errors, nothing partial registered', () => {
    it('a directory that is not a store', async () => {
      const notStore = join(work, 'notstore');
      mkdirSync(notStore);
      writeFileSync(join(notStore, 'file'), 'x');
      for (const args of [['snapshots'], ['restore', 'x', '--to', join(work, 'y')], ['snapshot', '--root', d.root]]) {
        const r = await run([...args, '--store', notStore]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr).toMatch(/^dataroot: SNAPSHOT_NOT_A_STORE: /);
      }
    });

    it('a corrupted manifest is detected by its hash', async () => {
      const s2 = join(work, 'store-manifest');
      sh(`cp -a ${store} ${s2}`);
      const f = join(s2, 'snapshots', 'fresh.manifest');
      const b = readFileSync(f);
      b[b.length - 10] = b[b.length - 10]! ^ 0xff;
      writeFileSync(f, b);
      const r = await run(['restore', 'fresh', '--store', s2, '--to', join(work, 'r-manifest')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dataroot: SNAPSHOT_MANIFEST_CORRUPT: .*fresh/);
      expect(existsSync(join(work, 'r-manifest'))).toBe(false);
    });

    it('a corrupted object: restore refuses, naming the file, before writing anything', async () => {
      const s3 = join(work, 'store-object');
      sh(`cp -a ${store} ${s3}`);
      const show = JSON.parse((await run(['--json', 'snapshot', 'show', 'fresh', '--store', s3, '--entries'])).stdout) as Obj;
      const entries = show['entries'] as Obj[];
      const target = entries.find((e) => e['path'] === 'network/files/local-kv.db')!;
      const packs = readdirSync(join(s3, 'packs')).filter((n) => n.endsWith('.pack'));
      // An object's record starts with its sha256; its first chunk's offset follows at +48. A small
      // file's chunk may be a slice of a zstd frame it shares with other small files.
      const firstChunk = (p: Buffer, sha: string): number => {
        const head = p.indexOf(Buffer.from(sha, 'hex'));
        return head < 0 ? -1 : Number(p.readBigUInt64LE(head + 48));
      };
      let damaged: { pack: string; at: number } | undefined;
      for (const n of packs) {
        const pack = join(s3, 'packs', n);
        const p = readFileSync(pack);
        const chunkAt = firstChunk(p, target['sha256']);
        if (chunkAt < 0) continue;
        p[chunkAt + 5] = p[chunkAt + 5]! ^ 0x55;
        writeFileSync(pack, p);
        damaged = { pack, at: chunkAt };
      }
      expect(damaged).toBeDefined();
      const r = await run(['restore', 'fresh', '--store', s3, '--to', join(work, 'r-object')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dataroot: SNAPSHOT_OBJECT_CORRUPT: object [0-9a-f]{64} \(for [^)]+\)/);
      // the file named is local-kv.db, or one whose bytes share the damaged frame with it
      const named = /\(for ([^)]+)\)/.exec(r.stderr)![1]!;
      const namedEntry = entries.find((e) => e['path'] === named)!;
      expect(firstChunk(readFileSync(damaged!.pack), namedEntry['sha256'])).toBe(damaged!.at);
      expect(existsSync(join(work, 'r-object'))).toBe(false);
    });

    it('a root that disappears mid-snapshot: SNAPSHOT_SOURCE_CHANGED, no snapshot registered, no pack left', async () => {
      const root = join(work, 'vanishing');
      sh(`cp -a ${d.root} ${root}`);
      const pause = join(work, 'snap-paused');
      const before = readdirSync(join(store, 'packs')).sort();
      const child = spawn(process.execPath, [BIN, 'snapshot', '--root', root, '--store', store, '--name', 'vanished'], {
        env: { ...process.env, DATAROOT_SNAPSHOT_PAUSE_FILE: pause },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const done = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      for (let i = 0; i < 300 && !existsSync(pause); i++) await sleep(50);
      rmSync(root, { recursive: true, force: true });
      rmSync(pause);
      expect(await done).toBe(2);
      expect(stderr).toMatch(/^dataroot: SNAPSHOT_SOURCE_CHANGED: /);
      const list = JSON.parse((await run(['--json', 'snapshots', '--store', store])).stdout) as Obj[];
      expect(list.map((s) => s['name'])).not.toContain('vanished');
      expect(readdirSync(join(store, 'packs')).sort()).toEqual(before);
      expect(existsSync(join(store, 'snapshots', 'vanished.manifest'))).toBe(false);
    });
  });
});

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INJECT_STEPS } from '../../src/ops/inject.js';
import { Dockerd, sleep, type Driver } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { BIN, run, runBin } from '../support/cli.js';
import { layerTar, sha, writeImageDir } from '../support/images.js';
import { buildRichScenario, type Scenario } from '../support/scenario.js';
import { fingerprint } from '../support/tree.js';

/**
 * Issue 6's acceptance: images made by others (docker save of the rich scenario, the same converted
 * by skopeo and changed by umoci, hand-made configs and layers) injected into a stopped root a
 * real dockerd then lists, runs, saves byte for byte and removes; re-injection is a no-op; a kill
 * at every step of the recipe leaves a root dockerd loads; a running daemon is refused and cannot
 * start while inject holds the lock.
 */

type Obj = Record<string, any>;

function cpA(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  const r = spawnSync('cp', ['-a', `${from}/.`, to]);
  if (r.status !== 0) throw new Error(`cp -a failed: ${String(r.stderr)}`);
}

function sh(cmd: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return r.stdout;
}

/** What the source daemon said about an image, to compare with the target daemon. */
interface Seen {
  id: string;
  layers: string[];
  history: unknown[];
  output: string;
}

const RUNS: Record<string, string[]> = {
  'rich/app:1': [],
  'rich/other:1': [],
  'base:busybox': ['echo', 'base ok'],
  // The whiteout (/etc/gone) and the opaque directory (/opt/dir lost /opt/dir/sub) of the rich build.
  'rich/app:latest': ['sh', '-c', 'ls /etc/gone /opt/dir/sub 2>&1; ls /opt/dir'],
};

describe.runIf(needs('dockerd', 'docker', 'busybox', 'skopeo', 'umoci', 'zstd'))('inject e2e', () => {
  describe.each(['overlay2', 'vfs'] as Driver[])('%s', (driver) => {
    const src = new Dockerd(driver);
    let scn: Scenario;
    let work: string;
    let fresh: string;
    const seen: Record<string, Seen> = {};

    /** A copy of the fresh root, with a daemon harness on it (not started). */
    const target = async (name: string, fn: (d: Dockerd) => Promise<void> | void): Promise<void> => {
      const dir = join(work, name);
      cpA(fresh, join(dir, 'root'));
      const d = new Dockerd(driver, dir);
      try {
        await fn(d);
      } finally {
        await d.cleanup();
      }
    };

    const checkImage = (d: Dockerd, ref: string): void => {
      const want = seen[ref]!;
      const got = JSON.parse(d.docker(['image', 'inspect', ref]).stdout)[0] as Obj;
      expect(got['Id'], ref).toBe(want.id);
      expect(got['RootFS']['Layers'], ref).toEqual(want.layers);
      expect(d.docker(['run', '--rm', ref, ...RUNS[ref]!]).stdout, ref).toBe(want.output);
      const hist = d
        .docker(['image', 'history', '--no-trunc', '--format', '{{json .}}', ref])
        .stdout.trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Obj);
      expect(
        hist.map((h) => ({ ...h, CreatedSince: undefined })),
        ref,
      ).toEqual((want.history as Obj[]).map((h) => ({ ...h, CreatedSince: undefined })));
    };

    /** docker save of the image on the target: every layer tar's sha256 is its diffID. */
    const checkSave = (d: Dockerd, ref: string): void => {
      const out = join(d.dir, `save-${ref.replace(/[/:]/g, '_')}`);
      mkdirSync(out, { recursive: true });
      d.docker(['save', '-o', join(out, 'img.tar'), ref]);
      sh(`tar -xf ${out}/img.tar -C ${out}`);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
      expect(manifest[0]!.Layers.map((l) => sha(readFileSync(join(out, l))))).toEqual(seen[ref]!.layers);
    };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'dataroot-inject-e2e-'));
      await src.start();
      scn = buildRichScenario(src);
      for (const ref of Object.keys(RUNS)) {
        const i = JSON.parse(src.docker(['image', 'inspect', ref]).stdout)[0] as Obj;
        seen[ref] = { id: i['Id'], layers: i['RootFS']['Layers'], history: [], output: src.docker(['run', '--rm', ref, ...RUNS[ref]!]).stdout };
      }
      expect(seen['rich/app:latest']!.output).toContain('No such file or directory');
      src.docker(['save', '-o', join(work, 'rich.tar'), 'rich/app:1', 'rich/app:latest', 'rich/other:1', 'base:busybox']);
      src.docker(['save', '-o', join(work, 'base.tar'), 'base:busybox']);
      src.docker(['save', '-o', join(work, 'other.tar'), 'rich/other:1']);
      await src.stop();
      // Converted by others: skopeo to an OCI archive, and umoci changing a label in an OCI layout.
      sh(`skopeo copy -q docker-archive:${work}/rich.tar:rich/app:1 oci-archive:${work}/app-oci.tar:rich/app:1`);
      sh(`skopeo copy -q docker-archive:${work}/rich.tar:rich/other:1 oci:${work}/layout:other`);
      sh(`umoci config --image ${work}/layout:other --config.label dataroot.test=umoci --tag other-umoci`);
      // A fresh root of the target driver: the state after a daemon's first start.
      const f = new Dockerd(driver, join(work, 'fresh'));
      await f.start();
      await f.stop();
      fresh = f.root;
      // The oracle for history: what docker load of the same archive gives (no parent chain).
      const loaded = new Dockerd(driver, join(work, 'loaded'));
      cpA(fresh, loaded.root);
      await loaded.start();
      loaded.docker(['load', '-i', join(work, 'rich.tar')]);
      for (const ref of Object.keys(RUNS)) {
        seen[ref]!.history = loaded
          .docker(['image', 'history', '--no-trunc', '--format', '{{json .}}', ref])
          .stdout.trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Obj);
      }
      await loaded.cleanup();
    });
    afterAll(async () => {
      await src.cleanup();
      rmSync(work, { recursive: true, force: true });
      rmSync(scn?.bindDir ?? '/nonexistent', { recursive: true, force: true });
    });

    it('a docker save archive: listed with its IDs, runs, whiteouts applied, history, save byte for byte, rmi, verify --deep clean', async () => {
      await target('save', async (d) => {
        const r = await run(['--json', 'inject', join(work, 'rich.tar'), '--root', d.root]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const res = JSON.parse(r.stdout) as Obj;
        expect(res['tagsChanged'].sort()).toEqual(['base:busybox', 'rich/app:1', 'rich/app:latest', 'rich/other:1']);
        const v = await run(['--json', 'verify', '--deep', '--root', d.root]);
        expect(JSON.parse(v.stdout).findings).toEqual([]);
        await d.start();
        const listed = d.docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']).stdout.trim().split('\n').sort();
        expect(listed).toEqual(
          Object.keys(RUNS)
            .map((ref) => `${ref} ${seen[ref]!.id.slice(7, 19)}`)
            .sort(),
        );
        for (const ref of Object.keys(RUNS)) checkImage(d, ref);
        for (const ref of ['rich/app:1', 'rich/other:1']) checkSave(d, ref);
        d.docker(['rmi', 'rich/other:1']);
        expect(d.docker(['images', '-q', 'rich/other']).stdout).toBe('');
        await d.stop();
        const after = await run(['--json', 'verify', '--deep', '--root', d.root]);
        expect(JSON.parse(after.stdout).findings).toEqual([]);
      });
    });

    it('an OCI archive made by skopeo and an OCI layout changed by umoci', async () => {
      await target('oci', async (d) => {
        const a = await run(['inject', join(work, 'app-oci.tar'), '--root', d.root]);
        expect(a.stderr).toBe('');
        expect(a.code).toBe(0);
        // skopeo rewrites the config as an OCI config: the image ID is that config's digest.
        const ociConfig = (JSON.parse(sh(`skopeo inspect --raw oci-archive:${work}/app-oci.tar`)) as Obj)['config']['digest'];
        const b = await run([
          '--json',
          'inject',
          `${join(work, 'layout')}:other-umoci`,
          '--platform',
          'linux/amd64',
          '--tag',
          'rich/other:umoci',
          '--root',
          d.root,
        ]);
        expect(b.code).toBe(0);
        const umociId = (JSON.parse(b.stdout) as Obj)['images'].find((i: Obj) => i['tags'].includes('rich/other:umoci'))['id'];
        await d.start();
        const app = JSON.parse(d.docker(['image', 'inspect', 'rich/app:1']).stdout)[0] as Obj;
        expect(app['Id']).toBe(ociConfig);
        expect(app['RootFS']['Layers']).toEqual(seen['rich/app:1']!.layers);
        expect(d.docker(['run', '--rm', 'rich/app:1']).stdout).toBe(seen['rich/app:1']!.output);
        expect(d.docker(['run', '--rm', '--user', 'root', 'rich/app:1', ...RUNS['rich/app:latest']!]).stdout).toBe(seen['rich/app:latest']!.output);
        const u = JSON.parse(d.docker(['image', 'inspect', 'rich/other:umoci']).stdout)[0] as Obj;
        expect(u['Id']).toBe(umociId);
        expect(u['Config']['Labels']).toEqual({ 'dataroot.test': 'umoci' });
        expect(u['RootFS']['Layers']).toEqual(seen['rich/other:1']!.layers);
        expect(d.docker(['run', '--rm', 'rich/other:umoci']).stdout).toBe(seen['rich/other:1']!.output);
        await d.stop();
        expect(JSON.parse((await run(['--json', 'verify', '--deep', '--root', d.root])).stdout).findings).toEqual([]);
      });
    });

    it('hand-made: a config with no layers, and a config with two layer tars (gzip and zstd)', async () => {
      await target('hand', async (d) => {
        const emptyCfg = join(work, `empty-${driver}.json`);
        const cfgBytes = Buffer.from(
          '{\n  "architecture": "amd64",\n  "os": "linux",\n  "config": {"Labels": {"made": "by hand"}},\n  "rootfs": {"type": "layers", "diff_ids": []}\n}\n',
        );
        spawnSync('sh', ['-c', `cat > ${emptyCfg}`], { input: cfgBytes });
        const e = await run(['inject', '--config', emptyCfg, '--tag', 'hand/empty:1', '--root', d.root]);
        expect(e.code).toBe(0);
        // Layer 1: busybox with a few applets; layer 2: a message, and a whiteout of layer 1's /gone.
        const bb = readFileSync('/bin/busybox');
        const l1 = layerTar([
          { name: 'bin/', type: 'dir' },
          { name: 'bin/busybox', data: bb, mode: 0o755 },
          { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
          { name: 'bin/cat', type: 'symlink', linkname: 'busybox' },
          { name: 'bin/ls', type: 'symlink', linkname: 'busybox' },
          { name: 'gone', data: 'to be deleted\n' },
        ]);
        const l2 = layerTar([{ name: 'msg', data: 'hello from a hand-made layer\n' }, { name: '.wh.gone' }]);
        const dir = join(work, `hand-${driver}`);
        const { id } = writeImageDir(dir, { layers: [l1, l2], tags: [], config: { config: { Cmd: ['/bin/cat', '/msg'] } } });
        const cfg = readdirSync(dir).find((n) => n.endsWith('.json') && n !== 'manifest.json')!;
        spawnSync('sh', ['-c', `gzip -c ${dir}/0/layer.tar > ${dir}/l1.tar.gz && zstd -q -c ${dir}/1/layer.tar > ${dir}/l2.tar.zst`]);
        const r = await run([
          'inject',
          '--config',
          join(dir, cfg),
          '--layer',
          join(dir, 'l1.tar.gz'),
          '--layer',
          join(dir, 'l2.tar.zst'),
          '--tag',
          'hand/made:1',
          '--root',
          d.root,
        ]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        await d.start();
        expect(JSON.parse(d.docker(['image', 'inspect', 'hand/empty:1']).stdout)[0]['Id']).toBe(sha(cfgBytes));
        expect(JSON.parse(d.docker(['image', 'inspect', 'hand/made:1']).stdout)[0]['Id']).toBe(id);
        expect(d.docker(['run', '--rm', 'hand/made:1']).stdout).toBe('hello from a hand-made layer\n');
        expect(d.docker(['run', '--rm', 'hand/made:1', 'ls', '/']).stdout.split('\n')).not.toContain('gone');
        const out = join(d.dir, 'hand-save');
        mkdirSync(out);
        d.docker(['save', '-o', join(out, 'x.tar'), 'hand/made:1']);
        sh(`tar -xf ${out}/x.tar -C ${out}`);
        const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
        expect(m[0]!.Layers.map((l) => readFileSync(join(out, l)).equals(l1) || readFileSync(join(out, l)).equals(l2))).toEqual([true, true]);
        await d.stop();
      });
    });

    it('re-injecting the same archive is a no-op; an image sharing a base reuses the base layer', async () => {
      await target('reuse', async (d) => {
        const base = await run(['--json', 'inject', join(work, 'base.tar'), '--root', d.root]);
        expect(JSON.parse(base.stdout).layersWritten).toBe(1);
        const other = JSON.parse((await run(['--json', 'inject', join(work, 'other.tar'), '--root', d.root])).stdout) as Obj;
        expect(other['layersReused']).toBe(1);
        expect(other['layersWritten']).toBe(seen['rich/other:1']!.layers.length - 1);
        const before = fingerprint(d.root);
        const again = JSON.parse((await run(['--json', 'inject', join(work, 'other.tar'), '--root', d.root])).stdout) as Obj;
        expect(again['layersWritten']).toBe(0);
        expect(again['tagsChanged']).toEqual([]);
        expect(fingerprint(d.root)).toEqual(before);
        await d.start();
        checkImage(d, 'rich/other:1');
        await d.stop();
      });
    });

    it.each(INJECT_STEPS.map((s) => [s]))('killed at %s: images present before still run, nothing half-written is listed, gc clears the rest', async (step) => {
      await target(`crash-${step}`, async (d) => {
        expect((await run(['inject', join(work, 'base.tar'), '--root', d.root])).code).toBe(0);
        const r = runBin(['inject', join(work, 'rich.tar'), '--root', d.root], { DATAROOT_INJECT_CRASH_AT: step });
        expect(r.code).toBeNull(); // killed by the signal
        const v = JSON.parse((await run(['--json', 'verify', '--root', d.root])).stdout) as { findings: Obj[] };
        expect(v.findings.filter((f) => f['severity'] === 'error')).toEqual([]);
        if (step !== 'repositories-written' && step !== 'metadata-written' && step !== 'config-written') expect(v.findings.length).toBeGreaterThan(0);
        await d.start();
        checkImage(d, 'base:busybox');
        for (const line of d.docker(['images', '-a', '--format', '{{.ID}}']).stdout.trim().split('\n')) {
          // Whatever dockerd lists is whole: it inspects and runs.
          expect(d.docker(['run', '--rm', line, 'true'], { check: false }).status, line).toBe(0);
        }
        await d.stop();
        const gc = await run(['gc', '--root', d.root]);
        expect(gc.code).toBe(0);
        expect(JSON.parse((await run(['--json', 'verify', '--deep', '--root', d.root])).stdout).findings).toEqual([]);
        // Running inject again finishes the job.
        expect((await run(['inject', join(work, 'rich.tar'), '--root', d.root])).code).toBe(0);
        expect(JSON.parse((await run(['--json', 'verify', '--deep', '--root', d.root])).stdout).findings).toEqual([]);
      });
    });

    it('refuses a root a running daemon holds (STORE_DAEMON_RUNNING, exit 2, nothing written)', async () => {
      await target('running', async (d) => {
        await d.start();
        const before = fingerprint(join(d.root, 'image'));
        const r = await run(['inject', join(work, 'base.tar'), '--root', d.root]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/^dataroot: STORE_DAEMON_RUNNING: /);
        expect(fingerprint(join(d.root, 'image'))).toEqual(before);
        await d.stop();
      });
    });

    it('a daemon started while inject holds the lock fails to start; after inject it starts and lists the image', async () => {
      await target('locked', async (d) => {
        const pause = join(d.dir, 'paused');
        const child = spawn(process.execPath, [BIN, 'inject', join(work, 'other.tar'), '--root', d.root], {
          env: { ...process.env, DATAROOT_INJECT_PAUSE_AT: 'layerdb-staged', DATAROOT_INJECT_PAUSE_FILE: pause },
          stdio: 'ignore',
        });
        const done = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        for (let i = 0; i < 300 && !existsSync(pause); i++) await sleep(100);
        expect(existsSync(pause)).toBe(true);
        const failure = await d.startExpectingFailure(30_000);
        expect(failure).toMatch(/volume store metadata database: timeout|timeout/);
        unlinkSync(pause);
        expect(await done).toBe(0);
        await d.start();
        checkImage(d, 'rich/other:1');
        await d.stop();
      });
    });
  });
});

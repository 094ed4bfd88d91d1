import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dockerd, type Driver } from '../support/dockerd.js';
import { haveCommand, needs } from '../support/env.js';
import { oracle } from '../support/gobolt.js';
import { run } from '../support/cli.js';
import { fingerprint } from '../support/tree.js';

const HELLO_SRC = fileURLToPath(new URL('../fixtures/hello/hello.S', import.meta.url));

interface Recorded {
  dockerImages: number;
  dockerContainers: number;
  rootfsLayers: number;
  volumes: string[];
  networks: { ID: string; Name: string }[];
  infoWhileRunning: Record<string, unknown>;
}

describe.runIf(needs('dockerd', 'docker', 'gcc'))('foundation e2e with a real dockerd', () => {
  describe.each(['overlay2', 'vfs'] as Driver[])('%s', (driver) => {
    const d = new Dockerd(driver);
    let rec: Recorded;
    let ctxDir: string;

    beforeAll(async () => {
      ctxDir = mkdtempSync(join(tmpdir(), 'dataroot-ctx-'));
      const cc = spawnSync('gcc', ['-nostdlib', '-static', '-s', '-Wl,--build-id=none', '-Wl,-n', '-o', join(ctxDir, 'hello'), HELLO_SRC], {
        encoding: 'utf8',
      });
      if (cc.status !== 0) throw new Error(cc.stderr);
      writeFileSync(join(ctxDir, 'Dockerfile'), 'FROM scratch\nCOPY hello /hello\n');
      await d.start();
      d.docker(['build', '-q', '-t', 'e2e/hello:1', ctxDir], { env: { DOCKER_BUILDKIT: '0' } });
      d.docker(['volume', 'create', 'e2evol']);
      d.docker(['network', 'create', '--subnet', '172.31.7.0/24', 'e2enet']);
      const out = d.docker(['run', '--name', 'c1', '-v', 'e2evol:/data', '--network', 'e2enet', 'e2e/hello:1', '/hello']).stdout;
      expect(out).toBe('hello from dataroot\n');
      const info = JSON.parse(d.docker(['info', '--format', '{{json .}}']).stdout) as { Images: number; Containers: number };
      const layers = JSON.parse(d.docker(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'e2e/hello:1']).stdout) as string[];
      const networks = d
        .docker(['network', 'ls', '--no-trunc', '--format', '{{json .}}'])
        .stdout.trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { ID: string; Name: string });
      const volumes = d.docker(['volume', 'ls', '--format', '{{.Name}}']).stdout.trim().split('\n');
      const running = await run(['--json', 'info', '--root', d.root]);
      rec = {
        dockerImages: info.Images,
        dockerContainers: info.Containers,
        rootfsLayers: layers.length,
        volumes,
        networks,
        infoWhileRunning: JSON.parse(running.stdout) as Record<string, unknown>,
      };
      await d.stop();
    });
    afterAll(async () => {
      await d.cleanup();
      rmSync(ctxDir, { recursive: true, force: true });
    });

    it('while the daemon runs, info says the root is in use', () => {
      expect(rec.infoWhileRunning['inUse']).toBe(true);
      expect(rec.infoWhileRunning['lock']).toBe('held');
    });

    it('after it stops, info --json reports the driver and the counts dockerd reported', async () => {
      const r = await run(['--json', 'info', '--root', d.root]);
      expect(r.code).toBe(0);
      const info = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(info['inUse']).toBe(false);
      expect(info['driver']).toBe(driver);
      expect(info['images']).toBe(rec.dockerImages);
      expect(info['images']).toBe(1); // one build step after FROM: one image
      expect(info['layers']).toBe(rec.rootfsLayers);
      expect(info['containers']).toBe(rec.dockerContainers);
      expect(info['volumes']).toBe(rec.volumes.length);
      expect(info['networks']).toBe(rec.networks.length);
      expect(info['tags']).toBe(1);
    });

    it('every BoltDB file of the root dumps and checks cleanly (and equals Go bbolt where Go is here)', async () => {
      const files = JSON.parse((await run(['--json', 'files', '--type', 'bolt', '--root', d.root])).stdout) as { path: string }[];
      expect(files.map((f) => f.path)).toEqual(expect.arrayContaining(['network/files/local-kv.db', 'volumes/metadata.db']));
      for (const f of files) {
        const abs = join(d.root, f.path);
        const check = await run(['bolt', 'check', abs]);
        expect(check.stdout, f.path).toBe('OK\n');
        const dump = await run(['bolt', 'dump', '--format', 'ndjson', abs]);
        expect(dump.code, f.path).toBe(0);
        if (haveCommand('go')) expect(dump.stdout, f.path).toBe(oracle(['dump', abs]).stdout);
        const tree = await run(['bolt', 'dump', abs]);
        expect(tree.code).toBe(0);
      }
    });

    it('the decoded local-kv.db lists the networks docker network ls showed', async () => {
      const r = await run(['--json', 'bolt', 'dump', 'network/files/local-kv.db', 'libnetwork', '--root', d.root]);
      const entries = (JSON.parse(r.stdout) as { bucket: Record<string, { json?: { id?: string; name?: string } }> }).bucket;
      const nets = Object.entries(entries)
        .filter(([k]) => k.startsWith('docker/network/v1.0/network/'))
        .map(([, v]) => ({ ID: v.json?.id, Name: v.json?.name }))
        .sort((a, b) => String(a.Name).localeCompare(String(b.Name)));
      const want = rec.networks.map((n) => ({ ID: n.ID, Name: n.Name })).sort((a, b) => a.Name.localeCompare(b.Name));
      expect(nets).toEqual(want);
      const subnet = Object.entries(entries).find(([k, v]) => k.startsWith('docker/network/v1.0/network/') && v.json?.name === 'e2enet');
      expect(JSON.stringify(subnet)).toContain('172.31.7.0/24');
    });

    it('the volumes metadata.db names the volume docker volume ls showed', async () => {
      const r = await run(['--json', 'bolt', 'keys', 'volumes/metadata.db', 'volumes', '--root', d.root]);
      expect((JSON.parse(r.stdout) as { key: string }[]).map((k) => k.key)).toEqual(rec.volumes);
    });

    it('read commands leave every byte and mtime of the root unchanged', async () => {
      const before = fingerprint(d.root);
      const cmds = [
        ['info'],
        ['files', '--type', 'all'],
        ['cat', `image/${driver}/repositories.json`],
        ['bolt', 'dump', 'network/files/local-kv.db'],
        ['bolt', 'check', 'volumes/metadata.db'],
        ['bolt', 'pages', 'network/files/local-kv.db'],
        ['bolt', 'stats', 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db'],
      ];
      for (const c of cmds) {
        const r = await run([...c, '--root', d.root]);
        expect(r.code, c.join(' ')).toBe(0);
      }
      expect(fingerprint(d.root)).toEqual(before);
    });
  });
});

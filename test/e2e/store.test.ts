import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dockerd, DRIVERS, driverTools, type Driver } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { run } from '../support/cli.js';
import { buildRichScenario, record, type Recorded, type Scenario } from '../support/scenario.js';
import { fingerprint } from '../support/tree.js';
import { overlay2ToAufs } from '../support/aufs.js';
import { createHash } from 'node:crypto';

/**
 * Issue 3's acceptance: a rich data-root made by a real dockerd (busybox base imported without a
 * registry, RUN with whiteouts and an opaque directory, tags, a dangling image, containers in every
 * state, volumes and networks). While the daemon runs the test records what its API says; after it
 * stops, every dataroot read command must say the same.
 */

type Obj = Record<string, any>;

/** The object without dataroot's own section (what Docker's API has). */
function api(o: Obj): Obj {
  const { Dataroot: _d, ...rest } = o;
  return rest;
}

const byDest = (a: Obj, b: Obj) => String(a['Destination']).localeCompare(String(b['Destination']));
const byId = (a: Obj, b: Obj) => String(a['Id']).localeCompare(String(b['Id']));

async function json(args: string[]): Promise<any> {
  const r = await run(['--json', ...args]);
  expect(r.stderr, args.join(' ')).toBe('');
  expect(r.code, args.join(' ')).toBe(0);
  return JSON.parse(r.stdout);
}

describe.runIf(needs('dockerd', 'docker', 'busybox'))('store e2e: dataroot reads what dockerd reports', () => {
  describe.each(DRIVERS.filter((d) => needs(...driverTools(d))))('%s', (driver: Driver) => {
    const d = new Dockerd(driver);
    let rec: Recorded;
    let scn: Scenario;
    let diffs: Record<string, string[]>;
    let saved: string;

    beforeAll(async () => {
      await d.start();
      scn = buildRichScenario(d);
      rec = await record(d);
      diffs = {};
      for (const c of scn.containers) diffs[c] = d.docker(['container', 'diff', c]).stdout.split('\n').filter(Boolean).sort();
      saved = join(d.dir, 'saved.tar');
      d.docker(['save', '-o', saved, 'rich/app:1', 'rich/other:1']);
      await d.stop();
    });
    afterAll(async () => {
      await d.cleanup();
      rmSync(scn?.bindDir ?? '/nonexistent', { recursive: true, force: true });
    });

    it('the scenario is as rich as the issue asks', () => {
      expect(rec.imagesAll.length).toBeGreaterThanOrEqual(10);
      expect(rec.containersAll.map((c: Obj) => c['State']).sort()).toEqual(['created', 'exited', 'exited', 'exited', 'exited', 'exited']);
      expect(
        Object.values(diffs)
          .flat()
          .some((l) => l.startsWith('D ')),
      ).toBe(true);
      expect((rec.imagesAll as Obj[]).some((i) => i['RepoTags']?.[0] === '<none>:<none>')).toBe(true);
    });

    it('images -a and images --json equal /images/json (all=1 and default), field for field', async () => {
      const all = (await json(['images', '-a', '--root', d.root])) as Obj[];
      expect(all.map(api).sort(byId)).toEqual([...(rec.imagesAll as Obj[])].sort(byId));
      const top = (await json(['images', '--root', d.root])) as Obj[];
      expect(top.map(api).sort(byId)).toEqual([...(rec.imagesTop as Obj[])].sort(byId));
    });

    it('images --filter dangling/label/reference equal the daemon filters', async () => {
      for (const [f, want] of Object.entries(rec.imagesFiltered)) {
        const got = (await json(['images', '--filter', f, '--root', d.root])) as Obj[];
        expect(got.map(api).sort(byId), f).toEqual([...(want as Obj[])].sort(byId));
      }
    });

    it('image inspect equals docker image inspect for every image (by ID and by tag)', async () => {
      for (const [id, want] of Object.entries(rec.imageInspect)) {
        const [got] = (await json(['image', 'inspect', id, '--root', d.root])) as Obj[];
        expect(api(got!), id).toEqual(want);
        expect(got!['Dataroot'].layers.map((l: Obj) => l['diffId'])).toEqual(want['RootFS']['Layers'] ?? []);
        expect(got!['Dataroot'].problems).toEqual([]);
      }
      const [byTag] = (await json(['image', 'inspect', 'rich/app:latest', '--root', d.root])) as Obj[];
      expect(byTag!['RepoTags']).toEqual(['rich/app:1', 'rich/app:latest']);
      const [short] = (await json(['image', 'inspect', String(byTag!['Id']).slice(7, 19), '--root', d.root])) as Obj[];
      expect(short!['Id']).toBe(byTag!['Id']);
    });

    it('history equals docker history for every image', async () => {
      for (const [id, want] of Object.entries(rec.history)) {
        expect(await json(['history', id, '--root', d.root]), id).toEqual(want);
      }
    });

    it('containers --json equals /containers/json?all=1 (Status is relative to now)', async () => {
      const got = (await json(['containers', '--root', d.root])) as Obj[];
      const norm = (c: Obj) => ({ ...api(c), Status: String(c['Status']).replace(/\) .*$/, ')'), Mounts: [...c['Mounts']].sort(byDest) });
      expect(got.map(norm).sort(byId)).toEqual((rec.containersAll as Obj[]).map(norm).sort(byId));
    });

    it('container inspect equals docker container inspect for every container (by ID and by name)', async () => {
      for (const [id, want] of Object.entries(rec.containerInspect)) {
        const [got] = (await json(['container', 'inspect', id, '--root', d.root])) as Obj[];
        const norm = (c: Obj) => ({ ...api(c), Mounts: [...c['Mounts']].sort(byDest) });
        expect(norm(got!), want['Name']).toEqual(norm(want));
        const [byName] = (await json(['container', 'inspect', String(want['Name']).slice(1), '--root', d.root])) as Obj[];
        expect(byName!['Id']).toBe(id);
      }
    });

    it('container diff equals docker container diff line for line (as a set: the daemon prints in map order)', async () => {
      for (const c of scn.containers) {
        const r = await run(['container', 'diff', c, '--root', d.root]);
        expect(r.code, c).toBe(0);
        expect(r.stdout.split('\n').filter(Boolean).sort(), c).toEqual(diffs[c]);
      }
      const detail = (await json(['container', 'diff', 'c-changes', '--root', d.root])) as Obj[];
      const added = detail.find((x) => x['Path'] === '/srv/new.txt');
      expect(added).toMatchObject({ Kind: 1, type: 'file', size: 4, uid: 0, gid: 0 });
      expect(added!['sha256']).toBe('sha256:7aa7a5359173d05b63cfd682e3c38487f3cb4f7f1d60659fe59fab1505977d4c'); // sha256 of "new\n"
      expect(detail.find((x) => x['Path'] === '/srv/file.txt')).toEqual({ Path: '/srv/file.txt', Kind: 2 });
    });

    it('volumes and volume inspect equal docker volume ls/inspect; users and size on disk are added', async () => {
      const got = (await json(['volumes', '--root', d.root])) as Obj[];
      const want = [...rec.volumes.Volumes].sort((a: Obj, b: Obj) => a['Name'].localeCompare(b['Name']));
      expect(got.map(api)).toEqual(want);
      for (const [name, v] of Object.entries(rec.volumeInspect)) {
        const [one] = (await json(['volume', 'inspect', name, '--root', d.root])) as Obj[];
        expect(api(one!)).toEqual(v);
      }
      const richvol = got.find((v) => v['Name'] === 'richvol')!;
      expect(richvol['Dataroot'].usedBy.map((u: Obj) => u['name'])).toEqual(['/c-vol']);
      expect(richvol['Dataroot'].sizeOnDisk).toBe(2); // "x\n"
    });

    it('networks and network inspect equal docker network ls/inspect', async () => {
      const got = (await json(['networks', '--root', d.root])) as Obj[];
      expect(got.map((n) => n['Name']).sort()).toEqual(rec.networks.map((n: Obj) => n['Name']).sort());
      for (const [id, want] of Object.entries(rec.networkInspect)) {
        const [one] = (await json(['network', 'inspect', id, '--root', d.root])) as Obj[];
        expect(api(one!), want['Name']).toEqual(want);
      }
      const [net2] = (await json(['network', 'inspect', 'richnet2', '--root', d.root])) as Obj[];
      expect(net2!['IPAM'].Config).toEqual([{ Subnet: '10.78.0.0/24', Gateway: '10.78.0.254' }]);
    });

    it('layers: every layer of layerdb, its users, no orphans in a root dockerd made', async () => {
      const layers = (await json(['layers', '--root', d.root])) as Obj[];
      const dirs = readdirSync(join(d.root, 'image', driver, 'layerdb', 'sha256'));
      expect(layers.map((l) => String(l['chainId']).slice(7)).sort()).toEqual(dirs.sort());
      expect(layers.filter((l) => l['orphan'])).toEqual([]);
      for (const [id, insp] of Object.entries(rec.imageInspect)) {
        const top = layers.find((l) => l['diffId'] === insp['RootFS']['Layers'].at(-1) && l['images'].includes(id));
        expect(top, id).toBeDefined();
      }
      const withContainers = layers.filter((l) => l['containers'].length > 0).flatMap((l) => l['containers']);
      expect(withContainers.sort()).toEqual(rec.containersAll.map((c: Obj) => c['Id']).sort());
    });

    it('verify --deep finds nothing wrong in a root dockerd made', async () => {
      const r = await run(['--json', 'verify', '--deep', '--root', d.root]);
      const v = JSON.parse(r.stdout) as Obj;
      expect(v['findings'], JSON.stringify(v['findings'], null, 1)).toEqual([]);
      expect(r.code).toBe(0);
      expect(v['checked'].layerBytes).toBeGreaterThan(0);
    });

    it('layer tar of every layer equals the layer.tar docker save wrote, byte for byte', async () => {
      const out = mkdtempSync(join(tmpdir(), 'dataroot-save-'));
      try {
        spawnSync('tar', ['-xf', saved, '-C', out]);
        const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { Config: string; Layers: string[] }[];
        let n = 0;
        for (const m of manifest) {
          const config = JSON.parse(readFileSync(join(out, m.Config), 'utf8')) as { rootfs: { diff_ids: string[] } };
          for (const [i, member] of m.Layers.entries()) {
            const mine = join(out, `mine-${n++}.tar`);
            const r = await run(['layer', 'tar', config.rootfs.diff_ids[i]!, '-o', mine, '--root', d.root]);
            expect(r.code, r.stderr).toBe(0);
            expect(readFileSync(mine).equals(readFileSync(join(out, member))), member).toBe(true);
          }
        }
        expect(n).toBeGreaterThanOrEqual(4);
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });

    it('inject into a never-started root of this driver: dockerd lists the images with their IDs and runs them, whiteouts and opaque dirs applied', async () => {
      const t = new Dockerd(driver);
      try {
        t.prepare();
        const r = await run(['inject', saved, '--root', t.root, '--driver', driver]);
        expect(r.code, r.stderr).toBe(0);
        const v = await run(['verify', '--deep', '--root', t.root]);
        expect(v.code, v.stdout).toBe(0);
        await t.start();
        const ids = t.docker(['images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']).stdout.split('\n').filter(Boolean).sort();
        const want = Object.values(rec.imageInspect)
          .filter((i) => (i['RepoTags'] as string[]).some((x) => x === 'rich/app:1' || x === 'rich/other:1'))
          .flatMap((i) => (i['RepoTags'] as string[]).filter((x) => x !== 'rich/app:latest').map((x) => `${x} ${i['Id']}`))
          .sort();
        expect(ids).toEqual(want);
        expect(t.docker(['run', '--rm', 'rich/other:1']).stdout).toBe('hi\n');
        const ls = t.docker([
          'run',
          '--rm',
          '--user',
          'root',
          'rich/app:1',
          'sh',
          '-c',
          'ls /opt/dir; test -e /etc/gone || echo gone-is-gone; cat /etc/keep',
        ]).stdout;
        expect(ls).toBe('b\ngone-is-gone\nkeep\n');
      } finally {
        await t.cleanup();
      }
    });

    // (Defined for overlay2 only, not skipped for the others: the aufs tree is made from its layers.)
    if (driver === 'overlay2')
      it("aufs (no module here): the same root laid out as dockerd's aufs driver keeps it reads the same, rebuilds every layer to its diffID, and inject writes aufs layers", async () => {
        const work = mkdtempSync(join(tmpdir(), 'dataroot-aufs-'));
        try {
          const a = join(work, 'root');
          const rw = new Set<string>();
          const mounts = join(d.root, 'image/overlay2/layerdb/mounts');
          for (const c of readdirSync(mounts)) {
            const m = readFileSync(join(mounts, c, 'mount-id'), 'utf8');
            rw.add(m);
            rw.add(`${m}-init`);
          }
          overlay2ToAufs(d.root, a, rw);
          const info = await json(['info', '--root', a]);
          expect(info['driver']).toBe('aufs');
          const norm = (o: Obj): Obj => ({ ...api(o), GraphDriver: null });
          for (const [id, want] of Object.entries(rec.imageInspect)) {
            const [got] = (await json(['image', 'inspect', id, '--root', a])) as Obj[];
            expect(norm(got!)).toEqual(norm(want));
            expect(got!['GraphDriver']).toEqual({ Data: null, Name: 'aufs' });
          }
          for (const c of scn.containers) {
            const r = await run(['container', 'diff', c, '--root', a]);
            expect(r.code, `${c}: ${r.stderr}`).toBe(0);
            expect(r.stdout.split('\n').filter(Boolean).sort(), c).toEqual(diffs[c]);
          }
          const v = await run(['--json', 'verify', '--deep', '--root', a]);
          expect((JSON.parse(v.stdout) as Obj)['findings']).toEqual([]);
          expect(v.code).toBe(0);
          for (const l of (await json(['layers', '--root', a])) as Obj[]) {
            const out = join(work, 'layer.tar');
            const r = await run(['layer', 'tar', String(l['chainId']), '-o', out, '--root', a]);
            expect(r.code, r.stderr).toBe(0);
            expect(`sha256:${createHash('sha256').update(readFileSync(out)).digest('hex')}`).toBe(l['diffId']);
          }
          // inject writes aufs layers: parents listed, whiteouts kept as files, rebuilt to their diffIDs.
          const fresh = join(work, 'fresh');
          const inj = await run(['inject', saved, '--root', fresh, '--driver', 'aufs']);
          expect(inj.code, inj.stderr).toBe(0);
          const v2 = await run(['--json', 'verify', '--deep', '--root', fresh]);
          expect((JSON.parse(v2.stdout) as Obj)['findings']).toEqual([]);
          const layers = (await json(['layers', '--root', fresh])) as Obj[];
          expect(layers.length).toBeGreaterThanOrEqual(4);
          const wh = spawnSync('find', [join(fresh, 'aufs/diff'), '-name', '.wh.*'], { encoding: 'utf8' })
            .stdout.split('\n')
            .filter(Boolean);
          expect(wh.some((p) => p.endsWith('/.wh.gone'))).toBe(true);
          expect(wh.some((p) => p.endsWith('/.wh..wh..opq'))).toBe(true);
        } finally {
          rmSync(work, { recursive: true, force: true });
        }
      });

    it('every read command leaves every byte and mtime of the root unchanged', async () => {
      const before = fingerprint(d.root);
      const cmds = [
        ['images', '-a'],
        ['image', 'inspect', 'rich/app:1'],
        ['history', 'rich/app:1'],
        ['layers'],
        ['containers'],
        ['container', 'inspect', 'c-changes'],
        ['container', 'diff', 'c-changes'],
        ['volumes'],
        ['volume', 'inspect', 'richvol'],
        ['networks'],
        ['network', 'inspect', 'richnet1'],
      ];
      for (const c of cmds) {
        for (const mode of [[], ['--json']]) {
          const r = await run([...mode, ...c, '--root', d.root]);
          expect(r.code, c.join(' ')).toBe(0);
        }
      }
      expect(fingerprint(d.root)).toEqual(before);
    });

    describe('damaged roots: per-item errors, the rest still listed, exit 1', () => {
      let copy: string;
      beforeAll(() => {
        copy = mkdtempSync(join(tmpdir(), 'dataroot-damaged-'));
        // cp -a keeps device nodes, owners and xattrs (fs.cpSync cannot copy a device node).
        const r = spawnSync('cp', ['-a', `${d.root}/.`, copy]);
        expect(r.status).toBe(0);
      });
      afterAll(() => rmSync(copy, { recursive: true, force: true }));

      it('an image reference that does not exist: coded error, exit 1, the others still inspected', async () => {
        const r = await run(['image', 'inspect', 'nosuch:tag', 'rich/app:1', '--root', d.root]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^dataroot: IMAGE_NOT_FOUND: No such image: nosuch:tag\n$/);
        expect((JSON.parse(r.stdout) as Obj[]).map((i) => i['RepoTags'][0])).toEqual(['rich/app:1']);
      });

      it('a container whose config.v2.json is truncated: reported, the others listed', async () => {
        const id = rec.containerInspect && Object.keys(rec.containerInspect)[0]!;
        const f = join(copy, 'containers', id, 'config.v2.json');
        writeFileSync(f, readFileSync(f).subarray(0, 100));
        const r = await run(['--json', 'containers', '--root', copy]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('CONTAINER_CONFIG_INVALID');
        expect(r.stderr).toContain(id);
        expect((JSON.parse(r.stdout) as Obj[]).length).toBe(rec.containersAll.length - 1);
        const one = await run(['container', 'inspect', id, '--root', copy]);
        expect(one.code).toBe(1);
        expect(one.stderr).toMatch(/CONTAINER_CONFIG_INVALID/);
      });

      it('a layer whose cache-id points nowhere: the images using it name the missing dir, exit 1', async () => {
        const insp = rec.imageInspect[Object.keys(rec.imageInspect).find((k) => rec.imageInspect[k]['RepoTags'].includes('rich/other:1'))!];
        const layers = (await json(['layers', '--root', copy])) as Obj[];
        const top = layers.find((l) => l['images'].includes(insp['Id']) && l['diffId'] === insp['RootFS']['Layers'].at(-1))!;
        writeFileSync(join(copy, 'image', driver, 'layerdb', 'sha256', String(top['chainId']).slice(7), 'cache-id'), 'f'.repeat(64));
        const r = await run(['image', 'inspect', 'rich/other:1', '--root', copy]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('LAYER_DIR_MISSING');
        const l = await run(['layers', '--root', copy]);
        expect(l.stdout).toContain('no driver dir');
      });

      it('a corrupt repositories.json: REPOSITORIES_INVALID, images still listed untagged, exit 1', async () => {
        writeFileSync(join(copy, 'image', driver, 'repositories.json'), '{"Repositories":{"rich/app":');
        const r = await run(['--json', 'images', '-a', '--root', copy]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('REPOSITORIES_INVALID');
        const imgs = JSON.parse(r.stdout) as Obj[];
        expect(imgs.length).toBe(rec.imagesAll.length);
        expect(imgs.every((i) => i['RepoTags'][0] === '<none>:<none>')).toBe(true);
      });
    });
  });
});

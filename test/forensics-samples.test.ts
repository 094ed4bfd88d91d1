import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run, SAMPLES } from './support/cli.js';
import { needs } from './support/env.js';
import { fingerprint } from './support/tree.js';
import { untar } from './support/untar.js';

/**
 * logs, timeline and which on the shipped samples (no daemon): which attributes the sample image's
 * file on every driver's layout; logs is consistent with itself (--tail, --since, --json); the
 * timeline's body file is read by mactime on every sample; and no read changes the root.
 */
type Obj = Record<string, any>;

const roots = new Map<string, string>();
function root(sample: string): string {
  let r = roots.get(sample);
  if (r === undefined) {
    r = untar(join(SAMPLES, `${sample}.tar.gz`)).dir;
    roots.set(sample, r);
  }
  return r;
}
afterAll(() => {
  for (const r of roots.values()) rmSync(r, { recursive: true, force: true });
});

async function json(args: string[]): Promise<any> {
  const r = await run(['--json', ...args]);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

async function records(args: string[]): Promise<Obj[]> {
  const r = await run(['--json', 'logs', ...args]);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout.trim() === ''
    ? []
    : r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Obj);
}

const HELLO: Record<string, (cache: string) => string> = {
  'after-build': (c) => `overlay2/${c}/diff/hello`,
  'after-build-vfs': (c) => `vfs/dir/${c}/hello`,
  'after-build-overlay': (c) => `overlay/${c}/root/hello`,
  'after-build-fuse-overlayfs': (c) => `fuse-overlayfs/${c}/diff/hello`,
  'after-build-btrfs': (c) => `btrfs/subvolumes/${c}/hello`,
};

describe('which on every driver of the samples', () => {
  it.each(Object.keys(HELLO))('%s: /hello belongs to the image layer, the sample container sees it', async (sample) => {
    const r = root(sample);
    const [layer] = (await json(['layers', '--root', r])) as Obj[];
    const res = (await json(['which', HELLO[sample]!(layer!['cacheId']), '--root', r]))[0] as Obj;
    expect(res['owner']).toBe('image-layer');
    expect(res['exists']).toBe(true);
    expect(res['layer']['chainId']).toBe(layer!['chainId']);
    expect(res['pathInLayer']).toBe('/hello');
    const tagged = (res['images'] as Obj[]).find((i) => (i['tags'] as string[]).includes('localhost/buildtest:v1'));
    expect(tagged).toBeDefined();
    expect(res['containers']).toHaveLength(1);
    expect(res['containers'][0]).toMatchObject({ name: '/sample', sees: 'visible' });
  });

  it('the volume sample: the container that mounts it, at its mount point', async () => {
    const r = await run(['--json', 'which', 'volumes/samplevol/_data/anything', '--root', root('after-build')]);
    // A path that does not exist: still attributed, and exit 1 (not found).
    expect(r.code).toBe(1);
    const res = (JSON.parse(r.stdout) as Obj[])[0]!;
    expect(res['exists']).toBe(false);
    expect(res['volume']['mountedBy']).toMatchObject([{ name: '/sample', destination: '/data', pathInContainer: '/data/anything', rw: true }]);
  });
});

describe('which on the containerd samples', () => {
  const OV = 'io.containerd.snapshotter.v1.overlayfs/snapshots';
  const whichOf = async (sample: string, p: string): Promise<{ code: number; res: Obj }> => {
    const r = await run(['--json', 'which', p, '--root', root(sample)]);
    expect(r.stderr).toBe('');
    return { code: r.code, res: (JSON.parse(r.stdout) as Obj[])[0]! };
  };
  /** The snapshot of a namespace by its on-disk id, as `containerd snapshots` lists it. */
  const snapById = async (sample: string, id: string): Promise<Obj> =>
    ((await json(['containerd', 'snapshots', '--root', root(sample)])) as Obj[]).find((x) => x['Dataroot']['id'] === id)!;
  const layersOf = async (sample: string, image: string): Promise<Obj[]> =>
    (await json(['containerd', 'image', 'inspect', image, '--root', root(sample)]))[0]['Dataroot']['manifests'][0]['layers'];

  it("containerd root: a file of an image layer's snapshot, hidden from the container by the upper layer's whiteout", async () => {
    const s1 = await snapById('containerd', '1');
    const [l1] = await layersOf('containerd', 'docker.io/library/hello:1');
    const { code, res } = await whichOf('containerd', `${OV}/1/fs/etc/old`);
    expect(code).toBe(0);
    expect(res).toMatchObject({ owner: 'image-layer', exists: true, type: 'file', pathInLayer: '/etc/old' });
    expect(res['snapshot']).toMatchObject({ namespace: 'default', snapshotter: 'overlayfs', key: s1['Name'], kind: 'Committed', id: '1' });
    expect(res['layer']).toMatchObject({ chainId: l1!['chainID'], diffId: l1!['diffID'] });
    const tags = (res['images'] as Obj[]).flatMap((i) => i['tags'] as string[]).sort();
    expect(tags).toEqual(['default/docker.io/library/hello:1', 'default/docker.io/library/hello:2', 'default/docker.io/library/hello:latest']);
    // snapshots/2/fs/etc/old is a 0/0 character device (the sample's tar listing): the container on 2 has it deleted.
    expect(res['containers']).toEqual([{ id: 'sample', name: '', sees: 'deleted', by: `${OV}/2/fs` }]);
    expect((await whichOf('containerd', `${OV}/1/fs/etc/motd`)).res['containers']).toEqual([{ id: 'sample', name: '', sees: 'visible' }]);
  });

  it("containerd root: the second layer names its own diffID; the k8s.io copy of the first layer is its namespace's", async () => {
    const [, l2] = await layersOf('containerd', 'docker.io/library/hello:2');
    const { res } = await whichOf('containerd', `${OV}/2/fs/etc/release`);
    expect(res['layer']).toMatchObject({ chainId: l2!['chainID'], diffId: l2!['diffID'], parent: (await snapById('containerd', '1'))['Name'] });
    const k8s = (await whichOf('containerd', `${OV}/3/fs/hello`)).res;
    expect(k8s['snapshot']).toMatchObject({ namespace: 'k8s.io', id: '3' });
    expect(k8s['images']).toMatchObject([{ tags: ['k8s.io/docker.io/library/hello-oci:1'] }]);
    expect(k8s['containers']).toEqual([]);
  });

  it("containerd root: the container's active snapshot, an orphan directory, a path that is not a snapshot id", async () => {
    const { res } = await whichOf('containerd', `${OV}/5/fs/proc`);
    expect(res).toMatchObject({
      owner: 'container-layer',
      container: { id: 'sample', pathInContainer: '/proc', effect: 'added by the container (the image has no /proc)' },
    });
    const orphan = await whichOf('containerd', `${OV}/99/fs/x`);
    expect(orphan.code).toBe(1);
    expect(orphan.res['owner']).toBe('other');
    expect((await whichOf('containerd', `${OV}/..x/fs`)).res['summary']).toMatch(/is not a snapshot id/);
  });

  it('Docker on the containerd image store: image layer, rw snapshot (replaces, deletes, adds), -init snapshot, blobs, containers/', async () => {
    const D = 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots';
    const [c] = (await json(['containers', '--root', root('docker-containerd')])) as Obj[];
    const id = c!['Id'] as string;
    const lower = (await whichOf('docker-containerd', `${D}/1/fs/etc/motd`)).res;
    expect(lower['owner']).toBe('image-layer');
    expect(lower['snapshot']).toMatchObject({ namespace: 'moby', id: '1' });
    // snapshots/4 (the container's) holds its own etc/motd.
    expect(lower['containers']).toEqual([{ id, name: '/web', sees: 'shadowed', by: 'io.containerd.snapshotter.v1.overlayfs/snapshots/4/fs' }]);
    expect((await whichOf('docker-containerd', `${D}/4/fs/etc/motd`)).res).toMatchObject({
      owner: 'container-layer',
      container: { id, name: '/web', effect: `replaces the image's /etc/motd (from image layer 3a89dd69f1c3)` },
    });
    expect((await whichOf('docker-containerd', `${D}/4/fs/etc/release`)).res['container']['effect']).toBe(
      'deletes /etc/release of the image (from image layer c285b6dfa93d)',
    );
    expect((await whichOf('docker-containerd', `${D}/4/fs/added.txt`)).res['container']['effect']).toBe('added by the container (the image has no /added.txt)');
    expect((await whichOf('docker-containerd', `${D}/3/fs/etc/hosts`)).res).toMatchObject({ owner: 'init-layer', container: { id, role: 'init snapshot' } });
    const [, l2] = await layersOf('docker-containerd', 'docker.io/library/hello:2');
    const blob = (
      await whichOf('docker-containerd', `containerd/daemon/io.containerd.content.v1.content/blobs/sha256/${(l2!['descriptor']['digest'] as string).slice(7)}`)
    ).res;
    expect(blob['owner']).toBe('image');
    expect(blob['images'].flatMap((i: Obj) => i['tags']).sort()).toEqual(['docker.io/library/hello:2', 'docker.io/library/hello:latest']);
    expect((await whichOf('docker-containerd', `containers/${id}/config.v2.json`)).res).toMatchObject({ owner: 'container', container: { id, name: '/web' } });
  });
});

describe('logs on the after-logs sample, consistent with itself', () => {
  it.each(['jsonlog', 'locallog', 'cachedlog'])('%s: --tail N is the last N messages; --since T the messages at or after T', async (c) => {
    const r = root('after-logs');
    const all = await records([c, '--root', r, '--all-rotated']);
    const dockerAll = await records([c, '--root', r]);
    expect(all.length).toBeGreaterThan(1);
    for (let n = 1; n <= Math.min(all.length, 9); n++) expect(await records([c, '--tail', String(n), '--root', r]), `tail ${n}`).toEqual(dockerAll.slice(-n));
    for (const pick of [1, Math.floor(all.length / 2), all.length - 1]) {
      const t = all[pick]!['time'] as string;
      const want = all.filter((x) => x['time'] >= t);
      expect(await records([c, '--since', t, '--all-rotated', '--root', r]), `since ${t}`).toEqual(want);
      const until = all.slice(0, all.findIndex((x) => x['time'] > t) < 0 ? all.length : all.findIndex((x) => x['time'] > t));
      expect(await records([c, '--until', t, '--all-rotated', '--root', r]), `until ${t}`).toEqual(until);
    }
  });

  it("text output is the records' lines; stdout and stderr apart; --stream keeps one", async () => {
    const r = root('after-logs');
    const recs = await records(['jsonlog', '--root', r]);
    const out = await run(['logs', 'jsonlog', '--root', r]);
    expect(out.stdout).toBe(
      recs
        .filter((x) => x['stream'] === 'stdout')
        .map((x) => x['line'])
        .join(''),
    );
    expect(out.stderr).toBe(
      recs
        .filter((x) => x['stream'] === 'stderr')
        .map((x) => x['line'])
        .join(''),
    );
    const only = await run(['logs', 'jsonlog', '--stream', 'stderr', '--root', r]);
    expect(only.stdout).toBe('');
    expect(only.stderr).toBe(out.stderr);
  });

  it('logs, timeline and which leave every byte and mtime of the root as it was', async () => {
    const r = root('after-logs');
    const before = fingerprint(r);
    for (const args of [
      ['logs', 'jsonlog', '--tail', '3'],
      ['logs', 'locallog', '--since', '2000-01-01'],
      ['timeline', '--layers'],
      ['timeline', '--format', 'bodyfile'],
      ['which', 'volumes/logvol/_data/evidence.txt'],
    ]) {
      await run([...args, '--root', r]);
    }
    expect(fingerprint(r)).toEqual(before);
  });
});

describe('timeline on the samples', () => {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-tl-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.runIf(needs('mactime')).each(['fresh', 'after-logs', ...Object.keys(HELLO), 'containerd', 'docker-containerd'])(
    '%s: mactime -b reads the body file, every line of it',
    async (sample) => {
      const r = await run(['timeline', '--format', 'bodyfile', '--layers', '--root', root(sample)]);
      expect(r.code, r.stderr).toBe(0);
      const body = join(work, `${sample}.body`);
      writeFileSync(body, r.stdout);
      for (const line of r.stdout.trim().split('\n')) expect(line.split('|'), line).toHaveLength(11);
      const m = spawnSync('mactime', ['-b', body, '-d'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      expect(m.status, m.stderr).toBe(0);
      expect(m.stderr).toBe('');
      expect(m.stdout.trim().split('\n').length).toBeGreaterThan(r.stdout.trim().split('\n').length);
    },
  );

  const events = async (sample: string, extra: string[] = ['--no-files']): Promise<Obj[]> => {
    const r = await run(['timeline', '--format', 'jsonl', ...extra, '--root', root(sample)]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
  };

  it("containerd root: meta.db's image, container and snapshot times, as the containerd commands read them", async () => {
    const ev = await events('containerd');
    const times = (name: string, id: string): string[] => ev.filter((e) => e['event'] === name && e['object']['id'] === id).map((e) => e['time'] as string);
    const images = (await json(['containerd', 'images', '--root', root('containerd')])) as Obj[];
    expect(images.length).toBeGreaterThan(0);
    for (const i of images) {
      const name = `${i['Dataroot']['namespace']}/${i['Name']}`;
      expect(
        ev.filter((e) => e['event'] === 'image.recorded' && e['object']['name'] === name).map((e) => e['time']),
        name,
      ).toEqual([i['CreatedAt']]);
    }
    const [c] = (await json(['containerd', 'containers', '--root', root('containerd')])) as Obj[];
    expect(times('container.created', c!['ID'])).toEqual([c!['CreatedAt']]);
    const snaps = (await json(['containerd', 'snapshots', '--root', root('containerd')])) as Obj[];
    for (const s of snaps)
      expect(
        ev
          .filter(
            (e) =>
              e['event'] === 'snapshot.created' &&
              e['object']['id'] === s['Name'] &&
              (e['object']['name'] as string).startsWith(`${s['Dataroot']['namespace']},`),
          )
          .map((e) => e['time']),
      ).toContain(s['Created']);
    // Sorted by time.
    const keys = ev.map((e) => BigInt((e['unix'] as string).replace('.', '')));
    expect(keys).toEqual([...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  });

  it('containerd root: file times of active snapshots by default, committed ones with --layers, each with its path in the snapshot', async () => {
    const plain = await events('containerd', []);
    const layers = await events('containerd', ['--layers']);
    const OV = 'io.containerd.snapshotter.v1.overlayfs/snapshots';
    expect(plain.some((e) => (e['source'] as string).startsWith(`${OV}/5/fs`))).toBe(true);
    expect(plain.some((e) => (e['source'] as string).startsWith(`${OV}/1/`))).toBe(false);
    const old = layers.find((e) => e['source'] === `${OV}/1/fs/etc/old` && e['event'] === 'file.mtime')!;
    expect(old).toMatchObject({
      path: '/etc/old',
      object: { type: 'snapshot', id: 'sha256:3a89dd69f1c39d845d9ed4171302501c5c29caada27c2e9da24ffce3c947727c' },
      file: { type: 'file', size: 32 },
    });
  });

  it('Docker on the containerd image store: the containers of config.v2.json as container inspect has them; containerd/daemon sources', async () => {
    const ev = await events('docker-containerd');
    const [c] = (await json(['container', 'inspect', 'web', '--root', root('docker-containerd')])) as Obj[];
    const of = (name: string): string[] => ev.filter((e) => e['event'] === name && e['object']['id'] === c!['Id']).map((e) => e['time'] as string);
    expect(of('container.created')).toEqual([c!['Created']]);
    expect(of('container.started')).toEqual([c!['State']['StartedAt']]);
    expect(of('container.finished')).toEqual([c!['State']['FinishedAt']]);
    expect(ev.filter((e) => e['event'] === 'snapshot.created').map((e) => e['source'])).toContain('containerd/daemon/io.containerd.metadata.v1.bolt/meta.db');
    expect(ev.find((e) => e['event'] === 'image.recorded')!['object']['name']).toMatch(/^docker\.io\/library\/hello:/);
  });

  it('--since and --until keep the events in the range, sorted', async () => {
    const r = root('after-logs');
    const all = (await run(['timeline', '--format', 'jsonl', '--no-files', '--root', r])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
    const t1 = all[2]!['time'] as string;
    const t2 = all[all.length - 3]!['time'] as string;
    const part = (await run(['timeline', '--format', 'jsonl', '--no-files', '--since', t1, '--until', t2, '--root', r])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
    const key = (e: Obj): bigint => BigInt((e['unix'] as string).replace('.', ''));
    const lo = key(all[2]!);
    const hi = key(all[all.length - 3]!);
    expect(part).toEqual(all.filter((e) => key(e) >= lo && key(e) <= hi));
  });

  it('csv: a header and one row per event, fields quoted where they must be', async () => {
    const r = await run(['timeline', '--format', 'csv', '--no-files', '--root', root('after-logs')]);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toBe('time,unix,event,object_type,object_id,object_name,path,source,detail,type,mode,uid,gid,size,inode');
    expect(
      rows.some((x) =>
        /,image\.history,image,sha256:[a-f0-9]{64},localhost\/say:v1,,image\/overlay2\/imagedb\/content\/sha256\/[a-f0-9]{64},"step \d\/\d/.test(x),
      ),
    ).toBe(true);
  });
});

import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run, SAMPLES } from './support/cli.js';
import { untar } from './support/untar.js';

/**
 * Which store a root is read as, chosen as dockerd 20.10 chooses its graphdriver, and the
 * metadata commands on drivers whose layer contents cannot be read offline. Roots are the shipped
 * samples, rearranged as the hosts had them.
 */

const made: (() => void)[] = [];
afterAll(() => made.forEach((f) => f()));

function sample(name: string): string {
  const u = untar(join(SAMPLES, `${name}.tar.gz`));
  made.push(u.cleanup);
  return u.dir;
}

type Obj = Record<string, any>;

async function json(args: string[]): Promise<{ code: number; out: any; stderr: string }> {
  const r = await run(['--json', ...args]);
  return { code: r.code, out: r.stdout === '' ? undefined : JSON.parse(r.stdout), stderr: r.stderr };
}

describe('driver selection as dockerd makes it', () => {
  it('an overlay2 root that also holds an empty image/overlay store reads as overlay2, and info names both stores', async () => {
    const root = sample('after-build');
    for (const d of ['imagedb/content/sha256', 'imagedb/metadata/sha256', 'layerdb/sha256']) mkdirSync(join(root, 'image/overlay', d), { recursive: true });
    writeFileSync(join(root, 'image/overlay/repositories.json'), '{"Repositories":{}}');
    const info = await json(['info', '--root', root]);
    expect(info.code).toBe(0);
    expect(info.out.driver).toBe('overlay2');
    expect(info.out.imageStores.map((s: Obj) => [s.driver, s.images])).toEqual([
      ['overlay', 0],
      ['overlay2', 4],
    ]);
    const human = await run(['info', '--root', root]);
    expect(human.stdout).toMatch(/Stores: +image\/overlay\/ \(0 images, 0 layers\), image\/overlay2\/ \(4 images, 1 layers, 1 containers\)/);
    const imgs = await json(['images', '--root', root]);
    expect(imgs.out.map((i: Obj) => i.RepoTags)).toEqual([['localhost/buildtest:v1']]);
  });

  it('two populated stores (overlay2 and vfs): both reported, overlay2 read (vfs is never a prior driver), --driver vfs reads the other', async () => {
    const root = sample('after-build');
    const vfs = sample('after-build-vfs');
    spawnSync('cp', ['-a', join(vfs, 'image/vfs'), join(root, 'image/vfs')]);
    spawnSync('cp', ['-a', join(vfs, 'vfs'), join(root, 'vfs')]);
    const info = await json(['info', '--root', root]);
    expect(info.out.driver).toBe('overlay2');
    expect(info.out.imageStores.filter((s: Obj) => s.images > 0).map((s: Obj) => s.driver)).toEqual(['overlay2', 'vfs']);
    expect(info.out.warnings.join('\n')).toMatch(/several image stores hold images: overlay2, vfs \(--driver chooses\)/);
    const listing = await run(['images', '--root', root]);
    expect(listing.stderr).toMatch(/^dataroot: note: several image stores hold images: overlay2, vfs/);
    const o = await json(['layers', '--root', root]);
    const v = await json(['layers', '--root', root, '--driver', 'vfs']);
    expect(o.out[0].dir).toMatch(/\/overlay2\/[0-9a-f]{64}$/);
    expect(v.out[0].dir).toMatch(/\/vfs\/dir\/[0-9a-f]{64}$/);
    // dockerd loads only the containers of its driver: the overlay2 one is skipped under --driver vfs, with a note.
    const cs = await run(['containers', '--root', root, '--driver', 'vfs']);
    expect(cs.code).toBe(1);
    expect(cs.stderr).toMatch(/CONTAINER_OTHER_DRIVER: container [0-9a-f]{64} \(\/sample\) was made on the overlay2 driver: dockerd on vfs skips it/);
    const vi = await json(['images', '-a', '--root', root, '--driver', 'vfs']);
    expect(vi.out.map((i: Obj) => i.Id).sort()).toEqual((await json(['images', '-a', '--root', vfs])).out.map((i: Obj) => i.Id).sort());
  });

  it('two prior drivers with content (overlay2 and btrfs): dockerd 20.10 would refuse to start; the one the containers use is read, and a note says so', async () => {
    const root = sample('after-build');
    const b = sample('after-build-btrfs');
    spawnSync('cp', ['-a', join(b, 'btrfs'), join(root, 'btrfs')]);
    const info = await json(['info', '--root', root]);
    expect(info.out.driver).toBe('overlay2');
    expect(info.out.driverReason).toBe('containers');
    expect(info.out.warnings.join('\n')).toMatch(/dockerd 20\.10 would refuse to start without --storage-driver: btrfs, overlay2 all hold content/);
  });

  it('an unknown driver directory is a coded error naming it; --driver with an unknown name too', async () => {
    const root = sample('after-build');
    renameSync(join(root, 'image/overlay2'), join(root, 'image/fancyfs'));
    rmSync(join(root, 'overlay2'), { recursive: true, force: true });
    for (const c of [['images'], ['containers'], ['verify']]) {
      const r = await run([...c, '--root', root]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dataroot: STORE_DRIVER_UNKNOWN: image\/fancyfs\/ is the image store of an unknown graphdriver "fancyfs"/);
    }
    const r = await run(['images', '--root', root, '--driver', 'nosuchfs']);
    expect(r.stderr).toMatch(/^dataroot: STORE_DRIVER_UNKNOWN: --driver nosuchfs/);
  });
});

describe('metadata never depends on the driver; content operations name the driver they cannot read', () => {
  /** The overlay2 sample turned into a devicemapper root: layers as thin-device metadata, containers on devicemapper. */
  function devicemapperRoot(): string {
    const root = sample('after-build');
    renameSync(join(root, 'image/overlay2'), join(root, 'image/devicemapper'));
    const ids = readdirSync(join(root, 'overlay2')).filter((n) => /^[0-9a-f]{64}(-init)?$/.test(n));
    rmSync(join(root, 'overlay2'), { recursive: true, force: true });
    mkdirSync(join(root, 'devicemapper/metadata'), { recursive: true });
    mkdirSync(join(root, 'devicemapper/mnt'), { recursive: true });
    // metadata/<id> as devmapper's saveMetadata writes it (deviceset.go devInfo).
    ids.forEach((id, i) =>
      writeFileSync(
        join(root, 'devicemapper/metadata', id),
        JSON.stringify({ device_id: i + 1, size: 10737418240, transaction_id: i + 2, initialized: false, deleted: false }),
      ),
    );
    writeFileSync(
      join(root, 'devicemapper/metadata/base'),
      JSON.stringify({ device_id: 0, size: 10737418240, transaction_id: 1, initialized: true, deleted: false }),
    );
    for (const c of readdirSync(join(root, 'containers'))) {
      const p = join(root, 'containers', c, 'config.v2.json');
      writeFileSync(p, readFileSync(p, 'utf8').replace('"Driver":"overlay2"', '"Driver":"devicemapper"'));
    }
    return root;
  }

  it('devicemapper: images, inspect, history, layers, containers, inspect, volumes, networks, verify read; GraphDriver from metadata/<id>', async () => {
    const root = devicemapperRoot();
    expect((await json(['info', '--root', root])).out.driver).toBe('devicemapper');
    expect((await json(['images', '-a', '--root', root])).out.length).toBe(4);
    const [img] = (await json(['image', 'inspect', 'localhost/buildtest:v1', '--root', root])).out as Obj[];
    expect(img!['GraphDriver'].Name).toBe('devicemapper');
    expect(img!['GraphDriver'].Data).toMatchObject({ DeviceSize: '10737418240' });
    expect((await json(['history', 'localhost/buildtest:v1', '--root', root])).code).toBe(0);
    const layers = (await json(['layers', '--root', root])).out as Obj[];
    expect(layers.map((l) => l['dirExists'])).toEqual([true]);
    const [c] = (await json(['container', 'inspect', 'sample', '--root', root])).out as Obj[];
    expect(c!['Driver']).toBe('devicemapper');
    expect((await json(['volumes', '--root', root])).out.map((v: Obj) => v['Name'])).toEqual(['samplevol']);
    expect((await json(['networks', '--root', root])).out.length).toBe(3);
    const v = await json(['verify', '--root', root]);
    expect(v.out.findings).toEqual([]);
    expect(v.code).toBe(0);
  });

  it.each([[['container', 'diff', 'sample']], [['layer', 'tar', 'localhost', '-o', '/dev/null']], [['verify', '--deep']]])(
    'devicemapper: %j is STORE_DRIVER_CONTENT_UNSUPPORTED naming the driver',
    async (args) => {
      const root = devicemapperRoot();
      const q = args[0] === 'layer' ? ['layer', 'tar', ((await json(['layers', '--root', root])).out as Obj[])[0]!['chainId'], '-o', '/dev/null'] : args;
      const r = await run([...q, '--root', root]);
      if (args[0] === 'verify') {
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/STORE_DRIVER_CONTENT_UNSUPPORTED/);
        expect(r.stdout).toMatch(/devicemapper/);
      } else {
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/^dataroot: STORE_DRIVER_CONTENT_UNSUPPORTED: the devicemapper driver/);
      }
    },
  );

  it('zfs with its datasets unmounted (empty graph/<id>): metadata reads, content is STORE_DRIVER_CONTENT_UNSUPPORTED', async () => {
    const root = sample('after-build');
    renameSync(join(root, 'image/overlay2'), join(root, 'image/zfs'));
    const ids = readdirSync(join(root, 'overlay2')).filter((n) => /^[0-9a-f]{64}(-init)?$/.test(n));
    rmSync(join(root, 'overlay2'), { recursive: true, force: true });
    for (const id of ids) mkdirSync(join(root, 'zfs/graph', id), { recursive: true });
    for (const c of readdirSync(join(root, 'containers'))) {
      const p = join(root, 'containers', c, 'config.v2.json');
      writeFileSync(p, readFileSync(p, 'utf8').replace('"Driver":"overlay2"', '"Driver":"zfs"'));
    }
    expect((await json(['info', '--root', root])).out.driver).toBe('zfs');
    expect((await json(['images', '-a', '--root', root])).out.length).toBe(4);
    expect((await json(['containers', '--root', root])).code).toBe(0);
    const r = await run(['container', 'diff', 'sample', '--root', root]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/STORE_DRIVER_CONTENT_UNSUPPORTED/);
  });
});

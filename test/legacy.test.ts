import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from './support/cli.js';
import { needs } from './support/env.js';
import { CREATED, DIGEST, IDS, SIZES, sqlite3, writeLegacyRoot, writeMigratedRoot } from './support/legacyroot.js';

/**
 * Pre-1.10 data-roots (graph era) and a root the 1.10 migration left, laid out by
 * test/support/legacyroot.ts as moby v1.9.1 / v1.10.3 write them. Every expected value below was
 * worked out by hand from that source (the reasoning is in the comments), never read back from
 * dataroot; the order of linkgraph.db's rows is checked with Debian's sqlite3 as well.
 */

const HAVE_SQLITE = needs('sqlite3');

let tmp: string;
const root = (name: string): string => join(tmp, name);
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'dataroot-legacy-'));
  if (!HAVE_SQLITE) return;
  writeLegacyRoot(root('aufs'), 'aufs');
  writeLegacyRoot(root('overlay'), 'overlay');
  writeLegacyRoot(root('devicemapper'), 'devicemapper');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function json<T>(args: string[]): Promise<{ code: number; value: T; stderr: string }> {
  const r = await run(['--json', ...args]);
  return { code: r.code, value: JSON.parse(r.stdout) as T, stderr: r.stderr };
}

type Img = {
  Id: string;
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  Created: number;
  Size: number;
  VirtualSize: number;
  Labels: Record<string, string> | null;
};
type Ctr = {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  Status: string;
  Ports: object[];
  HostConfig: { NetworkMode?: string };
};

/** Unix seconds of 2015-11-01T00:00:00Z: 16740 days after 1970-01-01 (16436 to 2015-01-01, + 304 for Jan–Oct). */
const NOV1 = 16740 * 86400;

/** Every path, size, mode and mtime under a directory, hashed: read commands must leave it unchanged. */
function treeState(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      h.update(`${p} ${st.size} ${st.mode} ${st.mtimeMs}\n`);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

describe.skipIf(!HAVE_SQLITE)('pre-1.10 root (aufs), as Docker 1.9 lists it', () => {
  it('images: tagged images, then untagged heads; newest first; SIZE is the layer, VirtualSize the chain', async () => {
    const { code, value } = await json<Img[]>(['images', '--root', root('aufs')]);
    expect(code).toBe(0);
    // Heads (no restored image names them as parent, graph.go Heads): DANGLING and APP. APP is
    // tagged; TOP is tagged too (tagged images are listed whether heads or not, list.go). Sorted by
    // Created, newest first: APP (11-05), DANGLING (11-04), TOP (11-03).
    expect(value.map((i) => i.Id)).toEqual([IDS.APP, IDS.DANGLING, IDS.TOP]);
    const top = value[2]!;
    expect([...top.RepoTags].sort()).toEqual(['busybox:1.24', 'busybox:latest']);
    expect(top.RepoDigests).toEqual([`busybox@${DIGEST}`]);
    expect(top.ParentId).toBe(IDS.MID);
    // newImage: Size = own layersize; VirtualSize = GetParentsSize + own = 1048576 + 2500 + 0.
    expect(top.Size).toBe(0);
    expect(top.VirtualSize).toBe(1051076);
    expect(top.Created).toBe(NOV1 + 2 * 86400 + 10 * 3600);
    expect(top.Labels).toEqual({ 'com.example.role': 'top' });
    const dangling = value[1]!;
    expect(dangling.RepoTags).toEqual(['<none>:<none>']);
    expect(dangling.RepoDigests).toEqual(['<none>@<none>']);
    expect(dangling.VirtualSize).toBe(SIZES.BASE + SIZES.DANGLING);
    const app = value[0]!;
    expect(app.RepoTags).toEqual(['myreg:5000/app:1.0']);
    expect(app.RepoDigests).toEqual([]);
    // APP's parent is the `parent` file (TOP), not parent_id's hex (graph.go loadImage).
    expect(app.ParentId).toBe(IDS.TOP);
    expect(app.VirtualSize).toBe(1048576 + 2500 + 0 + 12345);
  });

  it('images -a adds the intermediate images; the table has a row per tag and per digest, sizes as 1.9 printed them', async () => {
    const { value } = await json<Img[]>(['images', '-a', '--root', root('aufs')]);
    expect(value.map((i) => i.Id)).toEqual([IDS.APP, IDS.DANGLING, IDS.TOP, IDS.MID, IDS.BASE]);
    expect(value[3]!.RepoTags).toEqual(['<none>:<none>']);
    const t = await run(['images', '--digests', '--root', root('aufs')]);
    expect(t.code).toBe(0);
    const rows = t.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s{2,}/));
    expect(rows[0]).toEqual(['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE']);
    // %.4g of 1063421/1e6, 1052672/1e6 and 1051076/1e6 (units.HumanSize of 1.9): 1.063, 1.053, 1.051 MB.
    expect(rows).toContainEqual(['myreg:5000/app', '1.0', '<none>', 'a990a990a990', expect.stringMatching(/ ago$/), '1.063 MB']);
    expect(rows).toContainEqual(['<none>', '<none>', '<none>', 'deaddeaddead', expect.stringMatching(/ ago$/), '1.053 MB']);
    expect(rows).toContainEqual(['busybox', 'latest', '<none>', '70b070b070b0', expect.stringMatching(/ ago$/), '1.051 MB']);
    expect(rows).toContainEqual(['busybox', '<none>', DIGEST, '70b070b070b0', expect.stringMatching(/ ago$/), '1.051 MB']);
    expect(rows).toHaveLength(1 + 5);
  });

  it('images --filter dangling=true lists the untagged heads; reference filters did not exist in 1.9', async () => {
    const { value } = await json<Img[]>(['images', '--filter', 'dangling=true', '--root', root('aufs')]);
    expect(value.map((i) => i.Id)).toEqual([IDS.DANGLING]);
    const bad = await run(['images', '--filter', 'reference=busybox', '--root', root('aufs')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('USAGE_BAD_FILTER');
  });

  it('image inspect: the 1.9 ImageInspect fields in order, found by tag, digest, normalized name and short ID', async () => {
    const { code, value } = await json<Record<string, unknown>[]>([
      'image',
      'inspect',
      'busybox',
      `busybox@${DIGEST}`,
      'docker.io/library/busybox:1.24',
      'a990',
      '--root',
      root('aufs'),
    ]);
    expect(code).toBe(0);
    expect(value.map((v) => v['Id'])).toEqual([IDS.TOP, IDS.TOP, IDS.TOP, IDS.APP]);
    const top = value[0]!;
    expect(Object.keys(top)).toEqual([
      'Id',
      'RepoTags',
      'RepoDigests',
      'Parent',
      'Comment',
      'Created',
      'Container',
      'ContainerConfig',
      'DockerVersion',
      'Author',
      'Config',
      'Architecture',
      'Os',
      'Size',
      'VirtualSize',
      'GraphDriver',
      'Dataroot',
    ]);
    expect(top['Parent']).toBe(IDS.MID);
    expect(top['Created']).toBe(CREATED.TOP);
    expect(top['Size']).toBe(0);
    expect(top['VirtualSize']).toBe(1051076);
    // aufs GetMetadata returns nil in 1.9.
    expect(top['GraphDriver']).toEqual({ Name: 'aufs', Data: null });
    expect((top['Config'] as { Labels: unknown }).Labels).toEqual({ 'com.example.role': 'top' });
    expect((top['ContainerConfig'] as { Cmd: unknown }).Cmd).toEqual(['/bin/sh', '-c', '#(nop) LABEL com.example.role=top']);
    expect(top['DockerVersion']).toBe('1.9.1');
    expect((top['Dataroot'] as { parentChain: string[] }).parentChain).toEqual([IDS.TOP, IDS.MID, IDS.BASE]);
    expect(value[3]!['Parent']).toBe(IDS.TOP);
    const miss = await run(['image', 'inspect', 'nosuch', '--root', root('aufs')]);
    expect(miss.code).toBe(1);
    expect(miss.stderr).toContain('IMAGE_NOT_FOUND');
  });

  it('history walks the parent chain; CreatedBy is container_config.Cmd joined; Tags hold tags and digests', async () => {
    const { code, value } = await json<{ Id: string; Created: number; CreatedBy: string; Tags: string[] | null; Size: number; Comment: string }[]>([
      'history',
      'myreg:5000/app:1.0',
      '--root',
      root('aufs'),
    ]);
    expect(code).toBe(0);
    expect(value.map((h) => h.Id)).toEqual([IDS.APP, IDS.TOP, IDS.MID, IDS.BASE]);
    expect(value.map((h) => h.Size)).toEqual([SIZES.APP, SIZES.TOP, SIZES.MID, SIZES.BASE]);
    expect([...(value[1]!.Tags ?? [])].sort()).toEqual(['busybox:1.24', 'busybox:latest', `busybox@${DIGEST}`]);
    expect(value[2]!.Tags).toBeNull();
    expect(value[3]!.CreatedBy).toBe('/bin/sh -c #(nop) ADD file:8cf517d90fe79547c474641cc1e6425850e04abbd8856718f7e4a184ea878538 in /');
    expect(value[3]!.Created).toBe(NOV1 + 10 * 3600);
  });

  it('containers: loaded for this driver only, newest first, names are the linkgraph paths of depth 1 and 2', async () => {
    const { code, value } = await json<Ctr[]>(['containers', '--root', root('aufs')]);
    expect(code).toBe(0);
    // OTHER was created with devicemapper: daemon.restore skips it. Created: LONELY 12:00, WEB 11:00, DB 10:00.
    expect(value.map((c) => c.Id)).toEqual([IDS.LONELY, IDS.WEB, IDS.DB]);
    expect((await run(['containers', '--root', root('aufs')])).stderr).toContain(`not listed: ${IDS.OTHER}`);
    const [lonely, web, db] = value as [Ctr, Ctr, Ctr];
    expect(web.Names).toEqual(['/web']);
    // Walk("/", fn, 1): the root's children in index order (db, other, web), each followed by its
    // own children: /db, /other, /web, /web/dbalias. db is reached as /db and /web/dbalias.
    expect(db.Names).toEqual(['/db', '/web/dbalias']);
    expect(lonely.Names).toEqual([]);
    // getImage: Config.Image "busybox" → busybox:latest → TOP = ImageID, so the name is shown.
    expect(web.Image).toBe('busybox');
    expect(db.Image).toBe('myreg:5000/app:1.0');
    // Config.Image is a prefix of ImageID: shown as given.
    expect(lonely.Image).toBe(IDS.DANGLING.slice(0, 12));
    expect(web.Command).toBe("sh -c 'while true; do sleep 1; done'");
    expect(lonely.Command).toBe("echo 'hello world'");
    expect(web.Status).toMatch(/^Up \d+ years$/);
    expect(db.Status).toMatch(/^Exited \(0\) \d+ years ago$/);
    expect(lonely.Status).toBe('Created');
    expect(web.Ports).toEqual([{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }]);
    expect(web.HostConfig).toEqual({ NetworkMode: 'default' });
    expect(web.Created).toBe(NOV1 + 9 * 86400 + 11 * 3600);
  });

  it('the walk order is the order SQLite gives dockerd for its query (checked with the sqlite3 CLI)', () => {
    const out = sqlite3(join(root('aufs'), 'linkgraph.db'), "SELECT entity_id, name FROM edge where parent_id = '0';")
      .trim()
      .split('\n');
    expect(out.map((l) => l.split('|')[1])).toEqual(['db', 'other', 'web']);
    const rowid = sqlite3(join(root('aufs'), 'linkgraph.db'), "SELECT name FROM edge NOT INDEXED where parent_id = '0';")
      .trim()
      .split('\n');
    expect(rowid).toEqual(['web', 'db', 'other']);
  });

  it('ps table: 1.9 shows the one name without a slash unless --no-trunc, commands quoted and cut at 20', async () => {
    const t = await run(['containers', '--root', root('aufs')]);
    const db = t.stdout.split('\n').find((l) => l.startsWith('db00db00db00'))!;
    expect(db.trim().endsWith(' db')).toBe(true);
    const web = t.stdout.split('\n').find((l) => l.startsWith('c0ffeec0ffee'))!;
    expect(web).toContain(`"sh -c 'while true; d"`);
    expect(web).toContain('0.0.0.0:8080->80/tcp');
    const full = await run(['containers', '--no-trunc', '--root', root('aufs')]);
    expect(
      full.stdout
        .split('\n')
        .find((l) => l.startsWith(IDS.DB))!
        .trim()
        .endsWith(' db,web/dbalias'),
    ).toBe(true);
  });

  it('container inspect: the 1.9 ContainerJSON, links from linkgraph.db, found by a link path', async () => {
    const { code, value } = await json<Record<string, unknown>[]>(['container', 'inspect', 'web', 'web/dbalias', 'db00', '--root', root('aufs')]);
    expect(code).toBe(0);
    expect(value.map((v) => v['Id'])).toEqual([IDS.WEB, IDS.DB, IDS.DB]);
    const web = value[0]!;
    expect(Object.keys(web)).toEqual([
      'Id',
      'Created',
      'Path',
      'Args',
      'State',
      'Image',
      'ResolvConfPath',
      'HostnamePath',
      'HostsPath',
      'LogPath',
      'Name',
      'RestartCount',
      'Driver',
      'ExecDriver',
      'MountLabel',
      'ProcessLabel',
      'AppArmorProfile',
      'ExecIDs',
      'HostConfig',
      'GraphDriver',
      'Mounts',
      'Config',
      'NetworkSettings',
      'Dataroot',
    ]);
    expect(web['Image']).toBe(IDS.TOP);
    expect(web['ExecDriver']).toBe('native-0.2');
    expect(web['Created']).toBe(CREATED.WEB);
    expect((web['State'] as { Status: string; Pid: number }).Status).toBe('running');
    expect((web['State'] as { Pid: number }).Pid).toBe(4242);
    const hc = web['HostConfig'] as { Links: string[]; LogConfig: unknown; Dns: unknown; PortBindings: unknown };
    // getInspectData: "<child Name>:<full path of the link>" for each child of /web.
    expect(hc.Links).toEqual(['/db:/web/dbalias']);
    expect(hc.LogConfig).toEqual({ Type: 'json-file', Config: {} });
    expect(hc.Dns).toEqual([]);
    expect(web['GraphDriver']).toEqual({ Name: 'aufs', Data: null });
    expect(web['Mounts']).toEqual([{ Source: '/srv/data', Destination: '/data', Mode: '', RW: true }]);
    const ns = web['NetworkSettings'] as Record<string, unknown>;
    expect(ns['IPAddress']).toBe('172.17.0.3');
    expect(ns['Gateway']).toBe('172.17.0.1');
    expect((ns['Networks'] as { bridge: { IPAddress: string } }).bridge.IPAddress).toBe('172.17.0.3');
    expect((web['Config'] as { Image: string }).Image).toBe('busybox');
    const db = value[1]!;
    expect((db['HostConfig'] as { Links: unknown }).Links).toBeNull();
    // A named local volume: mountPoint.Path() is the volume's _data under the root.
    expect(db['Mounts']).toEqual([
      { Name: 'f00dvol', Source: `${realpathSync(root('aufs'))}/volumes/f00dvol/_data`, Destination: '/var/lib/db', Driver: 'local', Mode: '', RW: true },
    ]);
    expect((db['Dataroot'] as { names: string[] }).names).toEqual(['/db', '/web/dbalias']);
    const other = await run(['container', 'inspect', 'other', '--root', root('aufs')]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('CONTAINER_NOT_FOUND');
  });

  it('info: the driver from repositories-aufs and 1.9 counts', async () => {
    const { code, value } = await json<{
      driver: string;
      driverReason: string;
      images: number;
      tags: number;
      containers: number;
      legacy: { registered: number; names: number; graphImages: number };
    }>(['info', '--root', root('aufs')]);
    expect(code).toBe(0);
    expect(value.driver).toBe('aufs');
    expect(value.driverReason).toBe('legacy-repositories');
    expect(value.images).toBe(5);
    expect(value.tags).toBe(4);
    expect(value.containers).toBe(4);
    expect(value.legacy.registered).toBe(3);
    // /web, /db, /other, /web/dbalias.
    expect(value.legacy.names).toBe(4);
  });

  it('verify: what applies holds, what does not apply is named without a finding', async () => {
    const { code, value } = await json<{ errors: number; findings: { code: string; subject: string }[]; notApplicable: string[] }>([
      'verify',
      '--root',
      root('aufs'),
    ]);
    expect(code).toBe(0);
    expect(value.errors).toBe(0);
    expect(value.findings.map((f) => `${f.code} ${f.subject}`).sort()).toEqual([`CONTAINER_NAME_MISSING ${IDS.LONELY}`, `CONTAINER_OTHER_DRIVER ${IDS.OTHER}`]);
    expect(value.notApplicable.some((n) => n.startsWith('image IDs'))).toBe(true);
    expect(value.notApplicable.some((n) => n.startsWith('chain IDs'))).toBe(true);
  });

  it('commands that need a ≥1.10 store say so', async () => {
    const r = await run(['layers', '--root', root('aufs')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('STORE_LEGACY_UNSUPPORTED');
    for (const args of [['logs', 'x'], ['which', 'graph'], ['timeline']]) {
      const o = await run([...args, '--root', root('aufs')]);
      expect(o.code, args.join(' ')).toBe(2);
      expect(o.stderr, args.join(' ')).toContain('STORE_LEGACY_UNSUPPORTED');
    }
  });

  it('read commands leave every byte and mtime of the root unchanged (linkgraph.db included)', async () => {
    const before = treeState(root('aufs'));
    for (const args of [
      ['images', '-a'],
      ['image', 'inspect', 'busybox'],
      ['history', 'busybox'],
      ['containers'],
      ['container', 'inspect', 'web'],
      ['info'],
      ['verify'],
    ])
      await run([...args, '--root', root('aufs')]);
    expect(treeState(root('aufs'))).toBe(before);
  });

  it('an archive of the root reads the same, paths shown under the root its containers name', async () => {
    const tar = join(tmp, 'aufs.tar');
    expect(spawnSync('tar', ['-cf', tar, '-C', root('aufs'), '.']).status).toBe(0);
    const a = await json<Img[]>(['images', '-a', '--root', tar]);
    const d = await json<Img[]>(['images', '-a', '--root', root('aufs')]);
    expect(a.value).toEqual(d.value);
    const c = await json<Record<string, unknown>[]>(['container', 'inspect', 'db', '--root', tar]);
    expect((c.value[0]!['Mounts'] as { Source: string }[])[0]!.Source).toBe('/var/lib/docker/volumes/f00dvol/_data');
  });
});

describe.skipIf(!HAVE_SQLITE)('pre-1.10 roots of other drivers', () => {
  it('overlay: an image layer is its root/, a container has lower-id, upper, work, merged (overlay.go GetMetadata)', async () => {
    const img = await json<Record<string, unknown>[]>(['image', 'inspect', 'busybox', '--root', root('overlay')]);
    const base = realpathSync(root('overlay'));
    expect(img.value[0]!['GraphDriver']).toEqual({ Name: 'overlay', Data: { RootDir: `${base}/overlay/${IDS.TOP}/root` } });
    const c = await json<Record<string, unknown>[]>(['container', 'inspect', 'web', '--root', root('overlay')]);
    expect(c.value[0]!['GraphDriver']).toEqual({
      Name: 'overlay',
      Data: {
        LowerDir: `${base}/overlay/${IDS.TOP}/root`,
        MergedDir: `${base}/overlay/${IDS.WEB}/merged`,
        UpperDir: `${base}/overlay/${IDS.WEB}/upper`,
        WorkDir: `${base}/overlay/${IDS.WEB}/work`,
      },
    });
    const ps = await json<Ctr[]>(['containers', '--root', root('overlay')]);
    expect(ps.value.map((x) => x.Id)).toEqual([IDS.LONELY, IDS.WEB, IDS.DB]);
    expect((await run(['verify', '--root', root('overlay')])).code).toBe(0);
  });

  it('devicemapper: layers exist by their metadata files; inspect shows DeviceId and DeviceSize from them', async () => {
    const img = await json<Record<string, unknown>[]>(['image', 'inspect', 'busybox', '--root', root('devicemapper')]);
    const gd = img.value[0]!['GraphDriver'] as { Name: string; Data: Record<string, string> };
    expect(gd.Name).toBe('devicemapper');
    // TOP is the third image the fixture registers: device_id 3; size 10 GiB.
    expect(gd.Data['DeviceId']).toBe('3');
    expect(gd.Data['DeviceSize']).toBe('10737418240');
    expect(gd.Data['DeviceName']).toMatch(new RegExp(`^docker-\\d+:\\d+-\\d+-${IDS.TOP}$`));
    const ps = await json<Ctr[]>(['containers', '--root', root('devicemapper')]);
    expect(ps.value.map((x) => x.Id)).toEqual([IDS.LONELY, IDS.WEB, IDS.DB]);
    const images = await json<Img[]>(['images', '-a', '--root', root('devicemapper')]);
    expect(images.value).toHaveLength(5);
  });
});

describe.skipIf(!HAVE_SQLITE)('a root the 1.10 migration left', () => {
  let mig: { imageIds: Record<string, string>; chainIds: Record<string, string> };
  beforeAll(() => {
    mig = writeMigratedRoot(root('migrated'));
  });

  it('reads as the ≥1.10 root it is: images by their new content IDs, tags replayed', async () => {
    const { code, value } = await json<{ Id: string; RepoTags: string[] | null }[]>(['images', '--root', root('migrated')]);
    expect(code).toBe(0);
    expect(value.map((i) => i.Id).sort()).toEqual([mig.imageIds[IDS.APP], mig.imageIds[IDS.DANGLING], mig.imageIds[IDS.TOP]].sort());
    expect(value.find((i) => i.Id === mig.imageIds[IDS.TOP])!.RepoTags!.sort()).toEqual(['busybox:1.24', 'busybox:latest']);
  });

  it("container inspect drops ExecDriver, Volumes, VolumesRW and MqueuePath as dockerd's decode into container.Container does; the file keeps them", async () => {
    const { code, value } = await json<Record<string, unknown>[]>(['container', 'inspect', 'web', '--root', root('migrated')]);
    expect(code).toBe(0);
    const web = value[0]!;
    // moby v20.10.24 container/container.go has none of these fields: json.Decode drops them.
    for (const k of ['ExecDriver', 'Volumes', 'VolumesRW', 'MqueuePath']) expect(Object.keys(web)).not.toContain(k);
    expect(web['Image']).toBe(mig.imageIds[IDS.TOP]);
    expect(web['Name']).toBe('/web');
    expect((web['Dataroot'] as { mountId: string }).mountId).toBe(IDS.WEB);
    const raw = JSON.parse(readFileSync(join(root('migrated'), 'containers', IDS.WEB, 'config.v2.json'), 'utf8')) as Record<string, unknown>;
    expect(raw['ExecDriver']).toBe('native-0.2');
    expect(raw['VolumesRW']).toEqual({ '/data': true });
  });

  it('info names the legacy leftovers', async () => {
    const { value } = await json<{
      driver: string;
      legacy?: unknown;
      legacyLeftovers: { graphImages: number; repositories: string[]; linkgraph: boolean; migrationFiles: string[]; legacyConfigs: number };
    }>(['info', '--root', root('migrated')]);
    expect(value.driver).toBe('overlay');
    expect(value.legacy).toBeUndefined();
    expect(value.legacyLeftovers).toEqual({
      graphImages: 5,
      repositories: ['repositories-overlay'],
      linkgraph: true,
      migrationFiles: ['.migration-v1-images.json', '.migration-v1-tags'],
      legacyConfigs: 4,
    });
    const t = await run(['info', '--root', root('migrated')]);
    expect(t.stdout).toContain('left by Docker before 1.10 and the 1.10 migration');
  });

  it('verify proves the migrated image IDs, chain IDs and references', async () => {
    const { value } = await json<{ findings: { code: string; severity: string }[] }>(['verify', '--root', root('migrated')]);
    const codes = value.findings.map((f) => f.code);
    for (const c of ['IMAGE_ID_MISMATCH', 'LAYER_CHAIN_MISSING', 'LAYER_METADATA_INVALID', 'REFERENCE_DANGLING', 'LAYER_DIR_MISSING', 'ID_INVALID'])
      expect(codes).not.toContain(c);
  });
});

describe.skipIf(!HAVE_SQLITE)('hostile and damaged pre-1.10 roots: coded findings, never a crash', () => {
  const fresh = (name: string): string => {
    const r = root(name);
    writeLegacyRoot(r, 'aufs');
    return r;
  };

  it('a linkgraph.db that is not a database: SQLITE_CORRUPT, containers listed without names', async () => {
    const r = fresh('corrupt-db');
    writeFileSync(join(r, 'linkgraph.db'), Buffer.alloc(8192, 0x41));
    const ps = await json<Ctr[]>(['containers', '--root', r]);
    expect(ps.code).toBe(1);
    expect(ps.stderr).toContain('SQLITE_CORRUPT');
    expect(ps.value.map((c) => c.Names)).toEqual([[], [], []]);
    const v = await json<{ findings: { code: string }[] }>(['verify', '--root', r]);
    expect(v.code).toBe(1);
    expect(v.value.findings.map((f) => f.code)).toContain('SQLITE_CORRUPT');
  });

  it('a truncated linkgraph.db: a coded problem', async () => {
    const r = fresh('truncated-db');
    // Pad the file with more pages first, so that cutting it leaves a header that names pages that are gone.
    sqlite3(
      join(r, 'linkgraph.db'),
      `CREATE TABLE pad (x); ${Array.from({ length: 50 }, (_, i) => `INSERT INTO pad VALUES (zeroblob(2000) || ${i});`).join(' ')}`,
    );
    truncateSync(join(r, 'linkgraph.db'), 6000);
    const ps = await run(['--json', 'containers', '--root', r]);
    expect(ps.code).toBe(1);
    expect(ps.stderr).toMatch(/SQLITE_CORRUPT|LINKGRAPH_/);
    expect(JSON.parse(ps.stdout)).toHaveLength(3);
  });

  it('a linkgraph.db whose edge is a never-ending view: refused, no hang', async () => {
    const r = fresh('view-db');
    rmSync(join(r, 'linkgraph.db'));
    sqlite3(
      join(r, 'linkgraph.db'),
      'CREATE TABLE entity (id text); CREATE VIEW edge AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS entity_id, 0 AS parent_id, x AS name FROM c;',
    );
    const ps = await run(['containers', '--root', r]);
    expect(ps.code).toBe(1);
    expect(ps.stderr).toContain('LINKGRAPH_SCHEMA');
  });

  it('a linkgraph.db that is a symlink out of the root, or too large: not followed, not read', async () => {
    const r = fresh('symlink-db');
    rmSync(join(r, 'linkgraph.db'));
    symlinkSync('/etc/passwd', join(r, 'linkgraph.db'));
    const ps = await run(['containers', '--root', r]);
    expect(ps.code).toBe(1);
    expect(ps.stderr).toContain('SYMLINK_OUT_OF_ROOT');
    const big = fresh('big-db');
    truncateSync(join(big, 'linkgraph.db'), (64 << 20) + 1);
    const b = await run(['containers', '--root', big]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('FILE_TOO_LARGE');
  });

  it('graph/<id> that is a symlink, json that is not JSON, a layersize with a newline: findings; the rest is listed', async () => {
    const r = fresh('bad-images');
    rmSync(join(r, 'graph', IDS.DANGLING), { recursive: true });
    symlinkSync('/etc', join(r, 'graph', IDS.DANGLING));
    writeFileSync(join(r, 'graph', IDS.APP, 'json'), '{"id": "a990", not json');
    writeFileSync(join(r, 'graph', IDS.MID, 'layersize'), '2500\n');
    const imgs = await json<Img[]>(['images', '-a', '--root', r]);
    expect(imgs.code).toBe(1);
    // MID does not load (layersize), so TOP's VirtualSize stops at it: 0 + nothing (GetParentsSize returns 0 past an error).
    expect(imgs.value.map((i) => i.Id)).toEqual([IDS.TOP, IDS.BASE]);
    expect(imgs.value[0]!.VirtualSize).toBe(0);
    const v = await json<{ findings: { code: string; subject: string }[] }>(['verify', '--root', r]);
    expect(v.code).toBe(1);
    const got = v.value.findings.map((f) => `${f.code} ${f.subject}`);
    expect(got).toContain(`SYMLINK_NOT_FOLLOWED ${IDS.DANGLING}`);
    expect(got).toContain(`LEGACY_IMAGE_JSON_INVALID ${IDS.APP}`);
    expect(got).toContain(`LEGACY_LAYERSIZE_INVALID ${IDS.MID}`);
    expect(got).toContain(`REFERENCE_DANGLING myreg:5000/app:1.0`);
    expect(got).toContain(`IMAGE_PARENT_MISSING ${IDS.TOP}`);
    expect(got).toContain(`CONTAINER_IMAGE_MISSING ${IDS.DB}`);
  });

  it('a config.json that is not JSON and a repositories file that is not JSON: coded, exit 1', async () => {
    const r = fresh('bad-config');
    writeFileSync(join(r, 'containers', IDS.DB, 'config.json'), '{');
    writeFileSync(join(r, 'repositories-aufs'), 'nope');
    const ps = await json<Ctr[]>(['containers', '--root', r]);
    expect(ps.code).toBe(1);
    expect(ps.stderr).toContain('CONTAINER_CONFIG_INVALID');
    expect(ps.value.map((c) => c.Id)).toEqual([IDS.LONELY, IDS.WEB]);
    const imgs = await run(['images', '--root', r]);
    expect(imgs.code).toBe(1);
    expect(imgs.stderr).toContain('REPOSITORIES_INVALID');
  });
});

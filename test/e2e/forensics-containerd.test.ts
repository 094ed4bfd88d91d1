import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCdScenario, type CdScenario } from '../support/cdscenario.js';
import { run } from '../support/cli.js';
import { Containerd } from '../support/containerd.js';
import { needs } from '../support/env.js';
import { fingerprint } from '../support/tree.js';

/**
 * which and timeline on a root a real containerd 1.6 wrote (issue 17 on containerd): the
 * scenario's container c-changes wrote /new.txt and deleted /app/hello of its image, so `which`
 * must attribute /new.txt to the container's snapshot and show /app/hello of the image layer as
 * deleted for that container; timeline's snapshot and container times must be what `ctr
 * snapshots info` and `ctr containers info` reported while containerd ran; mactime reads the
 * body file. The root is read after containerd stopped, and left unchanged.
 */
type Obj = Record<string, any>;

describe.runIf(needs('containerd', 'ctr', 'runc', 'busybox', 'mactime'))('forensics e2e on containerd: which, timeline', () => {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-cdforensics-'));
  const d = new Containerd();
  let scn: CdScenario;
  const info: Record<string, Obj> = {};
  const dr = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => run([...args, '--root', d.root]);
  const json = async (args: string[]): Promise<any> => {
    const r = await dr(['--json', ...args]);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    await d.start();
    scn = await buildCdScenario(d, work);
    for (const [ns, key] of [
      ['moby', 'c-changes'],
      ['default', 'c-default'],
      ['default', 'work-committed'],
    ] as const) {
      info[`snap/${ns}/${key}`] = JSON.parse(d.ctr(['snapshots', 'info', key], { ns }).stdout) as Obj;
    }
    for (const [ns, id] of [
      ['moby', 'c-changes'],
      ['default', 'c-default'],
    ] as const)
      info[`ctr/${ns}/${id}`] = JSON.parse(d.ctr(['containers', 'info', id], { ns }).stdout) as Obj;
    await d.stop();
  }, 300_000);
  afterAll(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it("which: a file the container wrote is its snapshot's; the image file it deleted is deleted for it", async () => {
    expect(scn.containers['moby']).toContain('c-changes');
    const [c] = (await json(['containerd', 'container', 'inspect', 'c-changes', '--namespace', 'moby'])) as Obj[];
    const dir = (c!['Dataroot']['snapshot']['dir'] as string).slice(d.root.length + 1);
    const [added] = (await json(['which', `${dir}/new.txt`])) as Obj[];
    expect(added).toMatchObject({
      exists: true,
      owner: 'container-layer',
      container: { id: 'c-changes', pathInContainer: '/new.txt', effect: 'added by the container (the image has no /new.txt)' },
    });
    const keep = ((await json(['which', `${dir}/etc/keep`])) as Obj[])[0]!;
    expect(keep['container']['effect']).toMatch(/^replaces the image's \/etc\/keep/);
    const gone = ((await json(['which', `${dir}/app/hello`])) as Obj[])[0]!;
    expect(gone['type']).toBe('char');
    expect(gone['container']['effect']).toMatch(/^deletes \/app\/hello of the image \(from image layer [a-f0-9]{12}\)$/);
    // The image layer that holds /app/hello: c-changes has it deleted, by its own snapshot.
    const layerDir = (gone['container']['effect'] as string).match(/image layer ([a-f0-9]{12})/)![1]!;
    const snaps = (await json(['containerd', 'snapshots', '--namespace', 'moby'])) as Obj[];
    const layer = snaps.find((s) => (s['Name'] as string).startsWith(`sha256:${layerDir}`))!;
    const inLayer = ((await json(['which', `${(layer['Dataroot']['dir'] as string).slice(d.root.length + 1)}/app/hello`])) as Obj[])[0]!;
    expect(inLayer).toMatchObject({ owner: 'image-layer', pathInLayer: '/app/hello', layer: { chainId: layer['Name'] } });
    expect(inLayer['images'].flatMap((i: Obj) => i['tags'])).toContain('docker.io/library/app:1');
    expect(inLayer['containers']).toContainEqual({
      id: 'c-changes',
      name: '',
      sees: 'deleted',
      by: (c!['Dataroot']['snapshot']['dir'] as string).slice(d.root.length + 1),
    });
  });

  it('timeline: snapshot and container times are what ctr reported; mactime -b reads the body file; the root is unchanged', async () => {
    const before = fingerprint(d.root);
    const r = await dr(['timeline', '--format', 'jsonl', '--no-files']);
    expect(r.code, r.stderr).toBe(0);
    const ev = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
    for (const [ns, key] of [
      ['moby', 'c-changes'],
      ['default', 'c-default'],
      ['default', 'work-committed'],
    ] as const) {
      const want = info[`snap/${ns}/${key}`]!;
      const got = ev.filter((e) => e['event'] === 'snapshot.created' && e['object']['id'] === key && (e['object']['name'] as string).startsWith(`${ns},`));
      expect(
        got.map((e) => Date.parse(e['time'])),
        `${ns}/${key}`,
      ).toEqual([Date.parse(want['Created'])]);
      expect(got[0]!['time'].replace(/0+Z$/, 'Z')).toBe((want['Created'] as string).replace(/0+Z$/, 'Z'));
    }
    for (const [ns, id] of [
      ['moby', 'c-changes'],
      ['default', 'c-default'],
    ] as const) {
      const want = info[`ctr/${ns}/${id}`]!;
      const got = ev.filter((e) => e['event'] === 'container.created' && e['object']['name'] === `${ns}/${id}`);
      expect(got.map((e) => (e['time'] as string).replace(/0+Z$/, 'Z'))).toEqual([(want['CreatedAt'] as string).replace(/0+Z$/, 'Z')]);
    }
    const body = await dr(['timeline', '--format', 'bodyfile', '--layers']);
    expect(body.code, body.stderr).toBe(0);
    const file = join(work, 'cd.body');
    writeFileSync(file, body.stdout);
    const m = spawnSync('mactime', ['-b', file, '-d'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    expect(m.status, m.stderr).toBe(0);
    expect(m.stderr).toBe('');
    expect(m.stdout).toContain('/new.txt [snapshot c-changes');
    expect(fingerprint(d.root)).toEqual(before);
  });
});

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
  return r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Obj);
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

  it('text output is the records\' lines; stdout and stderr apart; --stream keeps one', async () => {
    const r = root('after-logs');
    const recs = await records(['jsonlog', '--root', r]);
    const out = await run(['logs', 'jsonlog', '--root', r]);
    expect(out.stdout).toBe(recs.filter((x) => x['stream'] === 'stdout').map((x) => x['line']).join(''));
    expect(out.stderr).toBe(recs.filter((x) => x['stream'] === 'stderr').map((x) => x['line']).join(''));
    const only = await run(['logs', 'jsonlog', '--stream', 'stderr', '--root', r]);
    expect(only.stdout).toBe('');
    expect(only.stderr).toBe(out.stderr);
  });

  it('logs, timeline and which leave every byte and mtime of the root as it was', async () => {
    const r = root('after-logs');
    const before = fingerprint(r);
    for (const args of [['logs', 'jsonlog', '--tail', '3'], ['logs', 'locallog', '--since', '2000-01-01'], ['timeline', '--layers'], ['timeline', '--format', 'bodyfile'], ['which', 'volumes/logvol/_data/evidence.txt']]) {
      await run([...args, '--root', r]);
    }
    expect(fingerprint(r)).toEqual(before);
  });
});

describe('timeline on the samples', () => {
  const work = mkdtempSync(join(tmpdir(), 'dataroot-tl-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.runIf(needs('mactime')).each(['fresh', 'after-logs', ...Object.keys(HELLO)])('%s: mactime -b reads the body file, every line of it', async (sample) => {
    const r = await run(['timeline', '--format', 'bodyfile', '--layers', '--root', root(sample)]);
    expect(r.code, r.stderr).toBe(0);
    const body = join(work, `${sample}.body`);
    writeFileSync(body, r.stdout);
    for (const line of r.stdout.trim().split('\n')) expect(line.split('|'), line).toHaveLength(11);
    const m = spawnSync('mactime', ['-b', body, '-d'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(m.status, m.stderr).toBe(0);
    expect(m.stderr).toBe('');
    expect(m.stdout.trim().split('\n').length).toBeGreaterThan(r.stdout.trim().split('\n').length);
  });

  it('--since and --until keep the events in the range, sorted', async () => {
    const r = root('after-logs');
    const all = ((await run(['timeline', '--format', 'jsonl', '--no-files', '--root', r])).stdout.trim().split('\n')).map((l) => JSON.parse(l) as Obj);
    const t1 = all[2]!['time'] as string;
    const t2 = all[all.length - 3]!['time'] as string;
    const part = (await run(['timeline', '--format', 'jsonl', '--no-files', '--since', t1, '--until', t2, '--root', r])).stdout.trim().split('\n').map((l) => JSON.parse(l) as Obj);
    const key = (e: Obj): bigint => BigInt((e['unix'] as string).replace('.', ''));
    const lo = key(all[2]!);
    const hi = key(all[all.length - 3]!);
    expect(part).toEqual(all.filter((e) => key(e) >= lo && key(e) <= hi));
  });

  it('csv: a header and one row per event, fields quoted where they must be', async () => {
    const r = await run(['timeline', '--format', 'csv', '--no-files', '--root', root('after-logs')]);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toBe('time,unix,event,object_type,object_id,object_name,path,source,detail,type,mode,uid,gid,size,inode');
    expect(rows.some((x) => /,image\.history,image,sha256:[a-f0-9]{64},localhost\/say:v1,,image\/overlay2\/imagedb\/content\/sha256\/[a-f0-9]{64},"step \d\/\d/.test(x))).toBe(true);
  });
});

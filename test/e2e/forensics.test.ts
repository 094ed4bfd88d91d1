import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRFC3339 } from '../../src/formats/docker/timestamp.js';
import { Dockerd } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { run } from '../support/cli.js';

/**
 * Issue 17 (logs, timeline, which) against a real dockerd 20.10: containers log through json-file
 * (rotated, compressed and not), local (compressed and not), syslog (the dual-logging cache) and a
 * TTY, with stdout and stderr, unicode, a line longer than 16 KiB and output without a final
 * newline. While the daemon runs, the test records `docker logs` for every flag combination, byte
 * for byte, and what `docker inspect` says; after it stops, dataroot must print the same bytes and
 * the timeline must carry the same times. `which` attributes planted files to their layer, image,
 * container or volume, through whiteouts and an opaque directory.
 */

type Obj = Record<string, any>;

const SCRIPT = [
  'i=1',
  'while [ $i -le 40 ]; do',
  '  echo "out $i ✓ é 漢字"',
  '  echo "err $i ünïcode" >&2',
  '  if [ $((i % 10)) -eq 0 ]; then usleep 300000; fi',
  '  i=$((i+1))',
  'done',
  "head -c 20000 /dev/zero | tr '\\0' y; echo",
  'echo "after the long line"',
  "printf 'no final newline'",
].join('\n');

/** Containers and their logging options. */
const LOGGERS: Record<string, string[]> = {
  jf: [
    '--log-driver',
    'json-file',
    '--log-opt',
    'max-size=4k',
    '--log-opt',
    'max-file=6',
    '--log-opt',
    'compress=true',
    '--label',
    'team=blue green',
    '--log-opt',
    'labels=team',
    '--env',
    'GREETING=hé llo&co',
    '--log-opt',
    'env=GREETING',
  ],
  jfplain: ['--log-driver', 'json-file', '--log-opt', 'max-size=3k', '--log-opt', 'max-file=4'],
  jfone: ['--log-driver', 'json-file'],
  lc: ['--log-driver', 'local', '--log-opt', 'max-size=3k', '--log-opt', 'max-file=5'],
  lcplain: ['--log-driver', 'local', '--log-opt', 'max-size=3k', '--log-opt', 'max-file=3', '--log-opt', 'compress=false'],
  sy: ['--log-driver', 'syslog', '--log-opt', 'syslog-address=udp://127.0.0.1:5514'],
  tty: ['-t', '--log-driver', 'json-file'],
};

interface Captured {
  stdout: Buffer;
  stderr: Buffer;
  status: number | null;
}

function dockerBytes(d: Dockerd, args: string[]): Captured {
  const r = spawnSync('docker', args, { env: d.env(), maxBuffer: 256 << 20 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** The flag combinations compared, from two timestamps of the container's own log. */
function combos(t1: string, t2: string): string[][] {
  const unix = (t: string): string => {
    const p = parseRFC3339(t)!;
    return `${p.sec}.${String(p.nsec).padStart(9, '0')}`;
  };
  return [
    [],
    ['-t'],
    ['--details'],
    ['-t', '--details'],
    ['--tail', '0'],
    ['--tail', '1'],
    ['--tail', '5'],
    ['--tail', 'all'],
    ['--tail', '100000'],
    ['--since', t1],
    ['--until', t1],
    ['--since', t1, '--until', t2],
    ['--since', t1, '--tail', '3', '-t'],
    ['--until', t2, '--tail', '4', '--details'],
    ['--since', unix(t1)],
    ['--since', '1h'],
    ['--until', '1h'],
    ['-t', '--details', '--tail', '7'],
  ];
}

/**
 * dataroot's stderr is the container's stderr, then only `dataroot: note:` lines (after a newline of
 * their own when the container's stderr does not end with one). Returns the container's part, or
 * undefined when the rest is anything else.
 */
function containerStderr(s: string, expected?: string): string | undefined {
  const i = s.search(/(?:^|\n)dataroot: note: /);
  if (i < 0) return s;
  const from = s[i] === '\n' ? i + 1 : i;
  const notes = s.slice(from);
  if (!/^(?:dataroot: note: [^\n]*\n)+$/.test(notes)) return undefined;
  const head = s.slice(0, from);
  // The newline dataroot adds before its notes when the output did not end with one.
  if (expected !== undefined && head === `${expected}\n` && expected !== '' && !expected.endsWith('\n')) return expected;
  return head;
}

function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds)
    out.push(
      out.length === 0
        ? d
        : `sha256:${createHash('sha256')
            .update(`${out[out.length - 1]} ${d}`)
            .digest('hex')}`,
    );
  return out;
}

describe.runIf(needs('dockerd', 'docker', 'busybox', 'mactime'))('forensics e2e on dockerd (overlay2): logs, timeline, which', () => {
  const d = new Dockerd('overlay2');
  const recorded: { c: string; flags: string[]; got: Captured }[] = [];
  const streams: { c: string; flags: string[]; got: Captured }[] = [];
  const inspect: Record<string, Obj> = {};
  const images: Record<string, Obj> = {};
  let volume: Obj;
  let network: Obj;
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-forensics-'));
    await d.start();
    d.importBusybox('base:busybox');
    const build = (tag: string, lines: string[]): void => {
      d.docker(['build', '-q', '-t', tag, '-'], { input: `${lines.join('\n')}\n`, env: { DOCKER_BUILDKIT: '0' } });
    };
    build('img1', ['FROM base:busybox', 'RUN echo image > /etc/planted-in-image && mkdir -p /opt/d && echo f > /opt/d/f']);
    build('img2', ['FROM img1', 'RUN rm /etc/planted-in-image && rm -rf /opt/d && mkdir /opt/d && echo g > /opt/d/g']);
    d.docker(['volume', 'create', 'vol1']);
    d.docker(['network', 'create', '--subnet', '172.31.7.0/24', 'net1']);
    for (const [name, opts] of Object.entries(LOGGERS)) d.docker(['run', '--name', name, ...opts, 'base:busybox', 'sh', '-c', SCRIPT]);
    d.docker(['run', '--name', 'nolog', '--log-driver', 'none', 'base:busybox', 'true']);
    d.docker(['run', '--name', 'c1', 'img1', 'true']);
    d.docker(['run', '--name', 'c2', 'img2', 'true']);
    d.docker(['run', '--name', 'c3', 'img1', 'sh', '-c', 'echo mine > /etc/planted-in-image']);
    d.docker(['run', '--name', 'rw', 'img1', 'sh', '-c', 'echo rw > /root/planted-in-rw']);
    d.docker(['run', '--name', 'vol', '--network', 'net1', '-v', 'vol1:/data', 'img1', 'sh', '-c', 'echo v > /data/planted-in-volume']);
    // docker logs, for every combination, while the daemon runs.
    for (const c of Object.keys(LOGGERS)) {
      const stamped = dockerBytes(d, ['logs', '-t', c]);
      const stamps = Buffer.concat([stamped.stdout, stamped.stderr])
        .toString()
        .split('\n')
        .map((l) => /^(\d{4}-\d\d-\d\dT[0-9:.]+Z) /.exec(l)?.[1])
        .filter((x): x is string => x !== undefined)
        .sort();
      const t1 = stamps[Math.floor(stamps.length / 3)]!;
      const t2 = stamps[Math.floor((2 * stamps.length) / 3)]!;
      for (const flags of combos(t1, t2)) recorded.push({ c, flags, got: dockerBytes(d, ['logs', ...flags, c]) });
      for (const flags of [[], ['-t', '--tail', '6'], ['--since', t1, '--details']]) streams.push({ c, flags, got: dockerBytes(d, ['logs', ...flags, c]) });
    }
    for (const c of [...Object.keys(LOGGERS), 'c1', 'c2', 'c3', 'rw', 'vol']) inspect[c] = JSON.parse(d.docker(['container', 'inspect', c]).stdout)[0];
    for (const i of ['base:busybox', 'img1', 'img2']) images[i] = JSON.parse(d.docker(['image', 'inspect', i]).stdout)[0];
    volume = JSON.parse(d.docker(['volume', 'inspect', 'vol1']).stdout)[0];
    network = JSON.parse(d.docker(['network', 'inspect', 'net1']).stdout)[0];
    await d.stop();
  });
  afterAll(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('the scenario logs what the issue asks: rotated and compressed json-file, local, the cache, partial lines', () => {
    const files = (c: string): string[] => readdirSync(join(d.root, 'containers', inspect[c]!['Id']));
    expect(files('jf').some((f) => /-json\.log\.\d+\.gz$/.test(f))).toBe(true);
    expect(files('jfplain').some((f) => /-json\.log\.\d+$/.test(f))).toBe(true);
    expect(readdirSync(join(d.root, 'containers', inspect['lc']!['Id'], 'local-logs')).some((f) => /\.gz$/.test(f))).toBe(true);
    expect(readdirSync(join(d.root, 'containers', inspect['lcplain']!['Id'], 'local-logs')).some((f) => /^container\.log\.\d+$/.test(f))).toBe(true);
    expect(files('sy')).toContain('container-cached.log');
    const one = recorded.find((r) => r.c === 'jfone' && r.flags.length === 0)!.got;
    expect(one.stdout.toString()).toContain('y'.repeat(20000));
    expect(one.stdout.toString().endsWith('no final newline')).toBe(true);
    expect(one.stderr.toString()).toContain('err 40 ünïcode');
    expect(recorded.length).toBe(Object.keys(LOGGERS).length * 18);
  });

  it('logs: for every container and flag combination, the same bytes as docker logs on the live daemon', async () => {
    const bad: string[] = [];
    for (const { c, flags, got } of recorded) {
      const r = await run(['logs', c, ...flags, '--root', d.root]);
      const what = `logs ${c} ${flags.join(' ')}`;
      expect(got.status, `${what} (docker)`).toBe(0);
      expect(r.code, `${what}: ${r.stderr.slice(0, 500)}`).toBe(0);
      if (!r.stdoutBytes.equals(got.stdout))
        bad.push(
          `${what}: stdout differs (${r.stdoutBytes.length} vs ${got.stdout.length} bytes): ${JSON.stringify(r.stdout.slice(-200))} vs ${JSON.stringify(got.stdout.toString().slice(-200))}`,
        );
      const err = containerStderr(r.stderr, got.stderr.toString());
      if (err === undefined || !Buffer.from(err).equals(got.stderr))
        bad.push(`${what}: stderr differs: ${JSON.stringify(r.stderr.slice(-300))} vs ${JSON.stringify(got.stderr.toString().slice(-300))}`);
    }
    expect(bad).toEqual([]);
  });

  it('logs --stream stdout|stderr: the one stream docker logs prints on that descriptor, nothing on the other', async () => {
    for (const { c, flags, got } of streams) {
      const out = await run(['logs', c, ...flags, '--stream', 'stdout', '--root', d.root]);
      expect(out.stdoutBytes.equals(got.stdout), `${c} ${flags.join(' ')} stdout`).toBe(true);
      expect(containerStderr(out.stderr), `${c} stdout only`).toBe('');
      const err = await run(['logs', c, ...flags, '--stream', 'stderr', '--root', d.root]);
      expect(err.stdoutBytes.length, `${c} stderr only`).toBe(0);
      expect(containerStderr(err.stderr, got.stderr.toString()), `${c} ${flags.join(' ')} stderr`).toBe(got.stderr.toString());
    }
  });

  it('logs --json: one record per message, the same lines', async () => {
    const r = await run(['--json', 'logs', 'lc', '--root', d.root]);
    expect(r.code).toBe(0);
    const recs = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
    const docker = recorded.find((x) => x.c === 'lc' && x.flags.length === 0)!.got;
    expect(
      recs
        .filter((x) => x['stream'] === 'stdout')
        .map((x) => x['line'])
        .join(''),
    ).toBe(docker.stdout.toString());
    expect(recs.some((x) => x['partial'] !== undefined)).toBe(true);
    expect(recs.every((x) => typeof x['file'] === 'string' && typeof x['offset'] === 'number')).toBe(true);
  });

  it('logs of a driver that keeps nothing on disk: named, exit 1', async () => {
    const r = await run(['logs', 'nolog', '--root', d.root]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dataroot: LOGS_NOT_ON_DISK: .*the none driver/);
    expect(r.stdout).toBe('');
  });

  it('timeline: container, image, volume and network events at the times docker inspect reported', async () => {
    const r = await run(['timeline', '--format', 'jsonl', '--root', d.root]);
    expect(r.code, r.stderr).toBe(0);
    const ev = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
    const at = (event: string, id: string): string[] => ev.filter((e) => e['event'] === event && e['object']['id'] === id).map((e) => e['unix']);
    const unix = (t: string): string => {
      const p = parseRFC3339(t)!;
      return `${p.sec}.${String(p.nsec).padStart(9, '0')}`;
    };
    for (const c of Object.values(inspect)) {
      expect(at('container.created', c['Id']), c['Name']).toEqual([unix(c['Created'])]);
      expect(at('container.started', c['Id']), c['Name']).toEqual([unix(c['State']['StartedAt'])]);
      expect(at('container.finished', c['Id']), c['Name']).toEqual([unix(c['State']['FinishedAt'])]);
    }
    for (const i of Object.values(images)) expect(at('image.created', i['Id'])).toEqual([unix(i['Created'])]);
    // Volume CreatedAt is RFC 3339 in seconds (the ctime of _data).
    expect(at('volume.created', 'vol1').map((u) => u.split('.')[0])).toEqual([String(parseRFC3339(volume['CreatedAt'])!.sec)]);
    expect(at('network.created', network['Id'])).toEqual([unix(network['Created'])]);
    // Sorted by time; the planted files of rw layers and volumes are there, with their paths.
    const times = ev.map((e) => e['unix'] as string);
    expect([...times].sort((a, b) => Number(a.split('.')[0]) - Number(b.split('.')[0]) || Number(a.split('.')[1]) - Number(b.split('.')[1]))).toEqual(times);
    expect(ev.some((e) => e['event'] === 'file.mtime' && e['object']['id'] === inspect['rw']!['Id'] && e['path'] === '/root/planted-in-rw')).toBe(true);
    expect(ev.some((e) => e['event'] === 'file.mtime' && e['object']['type'] === 'volume' && e['path'] === '/planted-in-volume')).toBe(true);
    expect(ev.some((e) => e['event'] === 'log.last' && e['object']['id'] === inspect['jfone']!['Id'] && String(e['detail']).includes('no final newline'))).toBe(
      true,
    );
    // Image layers only with --layers.
    expect(ev.some((e) => e['path'] === '/opt/d/f')).toBe(false);
    const withLayers = await run(['timeline', '--format', 'jsonl', '--layers', '--root', d.root]);
    const layerEv = withLayers.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Obj);
    const chain1 = chainIds(images['img1']!['RootFS']['Layers']).at(-1);
    expect(
      layerEv.some((e) => e['event'] === 'file.mtime' && e['path'] === '/opt/d/f' && e['object']['type'] === 'layer' && e['object']['id'] === chain1),
    ).toBe(true);
  });

  it('timeline: mactime -b parses the body file, and the events carry the inspect times', async () => {
    const r = await run(['timeline', '--format', 'bodyfile', '--root', d.root]);
    expect(r.code, r.stderr).toBe(0);
    const body = join(work, 'timeline.body');
    writeFileSync(body, r.stdout);
    const m = spawnSync('mactime', ['-b', body, '-d', '-y'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    expect(m.status, m.stderr).toBe(0);
    const lines = m.stdout.trim().split('\n');
    // One mactime line per body line and time kind at least; every body line was taken.
    expect(lines.length).toBeGreaterThan(r.stdout.trim().split('\n').length);
    const c = inspect['rw']!;
    const iso = new Date(parseRFC3339(c['State']['StartedAt'])!.sec * 1000).toISOString().replace(/\.000Z$/, 'Z');
    expect(lines.some((l) => l.startsWith(`${iso},`) && l.includes('[container.started]') && l.includes(c['Id'].slice(0, 12)))).toBe(true);
    const planted = lines.filter((l) => l.includes('/root/planted-in-rw [') && /^[^,]+,\d+,m/.test(l));
    expect(planted.length).toBe(1);
  });

  it('timeline: sorted runs merged give the same stream as one sort', async () => {
    await run(['timeline', '--format', 'jsonl', '--root', d.root]);
    const one = await run(['timeline', '--format', 'jsonl', '--root', d.root]);
    const merged = await run(['timeline', '--format', 'jsonl', '--root', d.root], { DATAROOT_TIMELINE_RUN_LINES: '100' });
    expect(merged.code).toBe(0);
    expect(merged.stdout.split('\n').length).toBeGreaterThan(300);
    expect(merged.stdout).toBe(one.stdout);
  });

  describe('which', () => {
    const upper = (c: Obj): string => relative(d.root, c['GraphDriver']['Data']['UpperDir']);
    const which = async (p: string): Promise<Obj> => {
      const r = await run(['--json', 'which', p, '--root', d.root]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Obj[])[0]!;
    };
    const sight = (res: Obj, name: string): Obj => (res['containers'] as Obj[]).find((s) => s['name'] === `/${name}`)!;

    it('a file of an image layer: its chainID and diffID, the images holding it, and how each container sees it', async () => {
      const img1 = images['img1']!;
      const img2 = images['img2']!;
      const layerDiff = upper(img1);
      const res = await which(`${layerDiff}/etc/planted-in-image`);
      const diffIds = img1['RootFS']['Layers'] as string[];
      expect(res['owner']).toBe('image-layer');
      expect(res['layer']['chainId']).toBe(chainIds(diffIds).at(-1));
      expect(res['layer']['diffId']).toBe(diffIds.at(-1));
      expect(res['pathInLayer']).toBe('/etc/planted-in-image');
      expect((res['images'] as Obj[]).map((i) => i['id']).sort()).toEqual([img1['Id'], img2['Id']].sort());
      expect(sight(res, 'c1')['sees']).toBe('visible');
      expect(sight(res, 'rw')['sees']).toBe('visible');
      expect(sight(res, 'c2')).toMatchObject({ sees: 'deleted', by: upper(img2) });
      expect(sight(res, 'c3')).toMatchObject({ sees: 'shadowed', by: upper(inspect['c3']!) });
      expect(sight(res, 'vol')['sees']).toBe('visible');
    });

    it('an opaque directory above hides the lower layer’s files; the whiteout itself belongs to the upper layer', async () => {
      const res = await which(`${upper(images['img1']!)}/opt/d/f`);
      expect(sight(res, 'c2')).toMatchObject({ sees: 'hidden', by: upper(images['img2']!) });
      expect(sight(res, 'c1')['sees']).toBe('visible');
      const wh = await which(`${upper(images['img2']!)}/etc/planted-in-image`);
      expect(wh['owner']).toBe('image-layer');
      expect(wh['type']).toBe('char');
      expect(wh['summary']).toContain('whiteout');
    });

    it('through an l/ link: the same layer', async () => {
      const diff = upper(images['img1']!);
      const link = readFileSync(join(d.root, diff, '..', 'link'), 'utf8').trim();
      const res = await which(`overlay2/l/${link}/etc/planted-in-image`);
      expect(res['owner']).toBe('image-layer');
      expect(res['exists']).toBe(true);
      expect(res['layer']['chainId']).toBe(chainIds(images['img1']!['RootFS']['Layers']).at(-1));
    });

    it('a file of a read-write layer: the container, where it sees it, and what it does to the image', async () => {
      const rw = await which(`${upper(inspect['rw']!)}/root/planted-in-rw`);
      expect(rw['owner']).toBe('container-layer');
      expect(rw['container']).toMatchObject({ id: inspect['rw']!['Id'], name: '/rw', pathInContainer: '/root/planted-in-rw' });
      expect(rw['container']['effect']).toMatch(/^added/);
      const c3 = await which(`${upper(inspect['c3']!)}/etc/planted-in-image`);
      expect(c3['container']['effect']).toMatch(/^replaces the image's \/etc\/planted-in-image/);
    });

    it('a file of a volume: the volume and the containers that mount it, at their mount point (absolute paths too)', async () => {
      const res = await which(join(d.root, 'volumes/vol1/_data/planted-in-volume'));
      expect(res['owner']).toBe('volume');
      expect(res['volume']['name']).toBe('vol1');
      expect(res['volume']['mountedBy']).toEqual([
        { id: inspect['vol']!['Id'], name: '/vol', destination: '/data', pathInContainer: '/data/planted-in-volume', rw: true },
      ]);
      const c = await which(`containers/${inspect['jf']!['Id']}/config.v2.json`);
      expect(c['owner']).toBe('container');
      expect(c['container']['id']).toBe(inspect['jf']!['Id']);
    });

    it('a path outside the root is a usage error', async () => {
      const r = await run(['which', '/etc/passwd', '--root', d.root]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dataroot: USAGE_PATH_OUTSIDE_ROOT: /);
      const up = await run(['which', '../x', '--root', d.root]);
      expect(up.code).toBe(2);
    });
  });
});

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dockerd } from './dockerd.js';

/** GET of the daemon's API over its unix socket, parsed as JSON. */
export function api(d: Dockerd, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: d.sock, path: `/v1.41${path}`, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 500) >= 400) reject(new Error(`GET ${path}: ${res.statusCode} ${body}`));
        else resolve(JSON.parse(body));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export interface Scenario {
  images: string[];
  containers: string[];
  volumes: string[];
  networks: string[];
  bindDir: string;
}

/**
 * The rich scenario of the store issue, made with a real dockerd: a busybox base imported without a
 * registry; images with RUN (a whiteout and an opaque directory), COPY, ENV, LABEL, USER, WORKDIR,
 * EXPOSE, CMD; a second tag; a dangling image; containers that exited 0 and 3, one created and never
 * started, one with a named volume and a bind mount, one on a user-defined network, one that added,
 * changed and deleted files; two volumes (one labelled); two networks with explicit subnets.
 */
export function buildRichScenario(d: Dockerd): Scenario {
  const ctx = mkdtempSync(join(tmpdir(), 'dataroot-scn-'));
  const bindDir = mkdtempSync(join(tmpdir(), 'dataroot-bind-'));
  try {
    d.importBusybox('base:busybox');
    const build = (tag: string, dockerfile: string, files: Record<string, string> = {}): void => {
      const dir = join(ctx, tag.replace(/[/:]/g, '_'));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'Dockerfile'), dockerfile);
      for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
      d.docker(['build', '-q', '-t', tag, dir], { env: { DOCKER_BUILDKIT: '0' } });
    };
    build(
      'rich/app:1',
      [
        'FROM base:busybox',
        'RUN mkdir -p /opt/dir/sub && echo one > /opt/dir/sub/a && echo keep > /etc/keep && echo gone > /etc/gone',
        'RUN rm /etc/gone && rm -rf /opt/dir && mkdir -p /opt/dir && echo two > /opt/dir/b',
        'COPY file.txt /srv/file.txt',
        'ENV APP_MODE=prod',
        'LABEL org.example.role=app',
        'USER nobody',
        'WORKDIR /srv',
        'EXPOSE 8080/tcp',
        'CMD ["cat", "/srv/file.txt"]',
        '',
      ].join('\n'),
      { 'file.txt': 'hello from the rich scenario\n' },
    );
    d.docker(['tag', 'rich/app:1', 'rich/app:latest']);
    build('rich/other:1', 'FROM base:busybox\nRUN echo hi > /hi\nCMD ["cat", "/hi"]\n');
    build('rich/tmp:1', 'FROM base:busybox\nRUN echo first > /v\n');
    build('rich/tmp:1', 'FROM base:busybox\nRUN echo second > /v\n'); // the first rich/tmp:1 is now dangling
    d.docker(['volume', 'create', '--label', 'team=core', '--label', 'tier=db', 'labeledvol']);
    d.docker(['network', 'create', '--subnet', '10.77.0.0/24', 'richnet1']);
    d.docker(['network', 'create', '--subnet', '10.78.0.0/24', '--gateway', '10.78.0.254', '--label', 'env=test', 'richnet2']);
    writeFileSync(join(bindDir, 'host.txt'), 'from the host\n');
    d.docker(['run', '--name', 'c-exit0', 'rich/app:1']);
    d.docker(['run', '--name', 'c-exit3', 'base:busybox', 'sh', '-c', 'exit 3'], { check: false });
    d.docker(['create', '--name', 'c-created', 'rich/other:1']);
    d.docker([
      'run',
      '--name',
      'c-vol',
      '-v',
      'richvol:/data',
      '-v',
      `${bindDir}:/host:ro`,
      'base:busybox',
      'sh',
      '-c',
      'echo x > /data/x && cat /host/host.txt',
    ]);
    d.docker(['run', '--name', 'c-net', '--network', 'richnet1', 'base:busybox', 'true']);
    d.docker([
      'run',
      '--name',
      'c-changes',
      '--user',
      'root',
      'rich/app:1',
      'sh',
      '-c',
      'echo new > /srv/new.txt && echo more >> /etc/keep && rm /srv/file.txt && mkdir -p /tmp/d/e && echo f > /tmp/d/e/f && rm /opt/dir/b',
    ]);
    return {
      images: ['rich/app:1', 'rich/app:latest', 'rich/other:1', 'rich/tmp:1', 'base:busybox'],
      containers: ['c-exit0', 'c-exit3', 'c-created', 'c-vol', 'c-net', 'c-changes'],
      volumes: ['richvol', 'labeledvol'],
      networks: ['richnet1', 'richnet2'],
      bindDir,
    };
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** Everything the daemon's API says about the scenario's objects, recorded while it runs. */
export interface Recorded {
  imagesAll: unknown[];
  imagesTop: unknown[];
  /** `/images/json` with each filter the store issue names, keyed by the filter as dataroot takes it. */
  imagesFiltered: Record<string, unknown[]>;
  imageInspect: Record<string, any>;
  history: Record<string, any[]>;
  containersAll: any[];
  containerInspect: Record<string, any>;
  changes: Record<string, { Path: string; Kind: number }[] | null>;
  volumes: any;
  volumeInspect: Record<string, any>;
  networks: any[];
  networkInspect: Record<string, any>;
}

export async function record(d: Dockerd): Promise<Recorded> {
  const imagesAll = (await api(d, '/images/json?all=1')) as any[];
  const imagesTop = (await api(d, '/images/json')) as any[];
  const imagesFiltered: Record<string, unknown[]> = {};
  for (const [k, v] of [
    ['dangling', 'true'],
    ['dangling', 'false'],
    ['label', 'org.example.role=app'],
    ['label', 'org.example.role'],
    ['reference', 'rich/*'],
    ['reference', 'base'],
  ] as const) {
    imagesFiltered[`${k}=${v}`] = (await api(d, `/images/json?filters=${encodeURIComponent(JSON.stringify({ [k]: [v] }))}`)) as unknown[];
  }
  const imageInspect: Record<string, any> = {};
  const history: Record<string, any[]> = {};
  for (const i of imagesAll) {
    imageInspect[i.Id] = await api(d, `/images/${i.Id}/json`);
    history[i.Id] = (await api(d, `/images/${i.Id}/history`)) as any[];
  }
  const containersAll = (await api(d, '/containers/json?all=1')) as any[];
  const containerInspect: Record<string, any> = {};
  const changes: Record<string, any> = {};
  for (const c of containersAll) {
    containerInspect[c.Id] = await api(d, `/containers/${c.Id}/json`);
    changes[c.Id] = await api(d, `/containers/${c.Id}/changes`);
  }
  const volumes = (await api(d, '/volumes')) as any;
  const volumeInspect: Record<string, any> = {};
  for (const v of volumes.Volumes ?? []) volumeInspect[v.Name] = await api(d, `/volumes/${v.Name}`);
  const networks = (await api(d, '/networks')) as any[];
  const networkInspect: Record<string, any> = {};
  for (const n of networks) networkInspect[n.Id] = await api(d, `/networks/${n.Id}`);
  return {
    imagesAll,
    imagesTop,
    imagesFiltered,
    imageInspect,
    history,
    containersAll,
    containerInspect,
    changes,
    volumes,
    volumeInspect,
    networks,
    networkInspect,
  };
}

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dockerd } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { run } from '../support/cli.js';

/**
 * Issue 7's acceptance with a real dockerd, skopeo and umoci: the seed's manual mini image packed
 * in both formats loads, runs and is accepted by skopeo and umoci; a --config-file keeps its bytes
 * (the ID docker load shows is its sha256sum); two images share a layer stored once; edit of a
 * docker save archive and of skopeo's OCI conversion changes only the label; --add-layer is seen
 * by docker run; --squash gives one layer whose container exports the same tree as the original.
 */

type Obj = Record<string, any>;

const HELLO_SRC = fileURLToPath(new URL('../fixtures/hello/hello.S', import.meta.url));

function sh(cmd: string, input?: string): string {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 28, ...(input !== undefined ? { input } : {}) });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return r.stdout;
}

const sha256sum = (file: string): string => `sha256:${sh(`sha256sum ${file}`).split(' ')[0]}`;

/** Entries of a tar as GNU tar lists them (type, mode, owner, size, name, link), without times; plus sha256 of every file. */
function exportFacts(tar: string, dir: string): { listing: string; sums: string } {
  const listing = sh(`tar --numeric-owner -tvf ${tar}`)
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(/\s+/);
      return [f[0], f[1], f[2], ...f.slice(5)].join(' ');
    })
    .sort()
    .join('\n');
  mkdirSync(dir, { recursive: true });
  sh(`tar --numeric-owner -xf ${tar} -C ${dir}`);
  return { listing, sums: sh(`cd ${dir} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum`) };
}

describe.runIf(needs('dockerd', 'docker', 'busybox', 'skopeo', 'umoci', 'gcc'))('pack and edit e2e', () => {
  const d = new Dockerd('overlay2');
  let work: string;
  let hello: string;
  let site: string;

  const dr = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Obj> => {
    const r = await run(['--json', ...args], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as Obj;
  };
  const load = (tar: string): string => d.docker(['load', '-i', tar]).stdout;
  const inspect = (ref: string): Obj => JSON.parse(d.docker(['image', 'inspect', ref]).stdout)[0] as Obj;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'dataroot-pack-e2e-'));
    hello = join(work, 'hello');
    const cc = spawnSync('gcc', ['-nostdlib', '-static', '-s', '-Wl,--build-id=none', '-Wl,-n', '-o', hello, HELLO_SRC], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`gcc: ${cc.stderr}`);
    site = join(work, 'site');
    mkdirSync(site);
    writeFileSync(join(site, 'index.html'), '<h1>manual mini image</h1>\n');
    await d.start();
    d.importBusybox('base:busybox');
  });
  afterAll(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('the manual mini image, in both formats: docker load and run, skopeo inspect, umoci unpack', async () => {
    const common = ['--layer', `${hello}:/hello`, '--layer', `${site}:/www`, '--entrypoint', '/hello', '--expose', '8080'];
    const dockerTar = join(work, 'mini-docker.tar');
    const ociTar = join(work, 'mini-oci.tar');
    const a = await dr(['pack', '-o', dockerTar, ...common, '-t', 'mini:docker']);
    const b = await dr(['pack', '-o', ociTar, '--format', 'oci', '--gzip', ...common, '-t', 'mini:oci']);
    // Same config either way: the same image ID; gzip changes the blobs, not the diffIDs.
    expect(b.images[0].id).toBe(a.images[0].id);
    expect(b.images[0].layers.map((l: Obj) => l.diffId)).toEqual(a.images[0].layers.map((l: Obj) => l.diffId));
    expect(b.images[0].layers.every((l: Obj) => l.digest !== l.diffId)).toBe(true);

    for (const [tar, tag] of [
      [dockerTar, 'mini:docker'],
      [ociTar, 'mini:oci'],
    ] as const) {
      expect(load(tar)).toContain(`Loaded image: ${tag}`);
      const img = inspect(tag);
      expect(img['Id']).toBe(a.images[0].id);
      expect(img['Config']['ExposedPorts']).toEqual({ '8080/tcp': {} });
      expect(img['Config']['Entrypoint']).toEqual(['/hello']);
      expect(img['RootFS']['Layers']).toEqual(a.images[0].layers.map((l: Obj) => l.diffId));
      expect(d.docker(['run', '--rm', tag]).stdout).toBe('hello from dataroot\n');
      expect(d.docker(['run', '--rm', '--entrypoint', '/hello', tag, '7'], { check: false }).status).toBe(7);
    }
    const s1 = JSON.parse(sh(`skopeo inspect docker-archive:${dockerTar}`)) as Obj;
    expect(s1['Layers']).toEqual(a.images[0].layers.map((l: Obj) => l.diffId));
    const s2 = JSON.parse(sh(`skopeo inspect oci-archive:${ociTar}`)) as Obj;
    expect(s2['Layers']).toEqual(b.images[0].layers.map((l: Obj) => l.digest));
    expect(s2['Architecture']).toBe('amd64');
    const raw = JSON.parse(sh(`skopeo inspect --raw oci-archive:${ociTar}`)) as Obj;
    expect(raw['layers'].map((l: Obj) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+gzip']);

    const layout = join(work, 'mini-layout');
    mkdirSync(layout);
    sh(`tar -xf ${ociTar} -C ${layout}`);
    const bundle = join(work, 'mini-bundle');
    sh(`umoci unpack --rootless --image ${layout}:oci ${bundle}`);
    expect(readFileSync(join(bundle, 'rootfs', 'hello')).equals(readFileSync(hello))).toBe(true);
    expect(readFileSync(join(bundle, 'rootfs', 'www', 'index.html'), 'utf8')).toBe('<h1>manual mini image</h1>\n');
    const cfg = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as Obj;
    expect(cfg['process']['args']).toEqual(['/hello']);
  });

  it('--config-file keeps its bytes: the reported ID and the one docker load shows are its sha256sum', async () => {
    const files = join(work, 'cfg-files');
    mkdirSync(join(files, 'etc'), { recursive: true });
    writeFileSync(join(files, 'etc', 'motd'), 'config-file test\n');
    const layer = join(work, 'cfg-layer.tar');
    sh(`tar --numeric-owner --owner=0 --group=0 -C ${files} -cf ${layer} etc`);
    // Hand-written, with spacing and key order no serializer would choose.
    const cfg = join(work, 'config.json');
    writeFileSync(
      cfg,
      `{\n  "os": "linux",   "architecture": "amd64",\n  "config": {"Cmd": ["/bin/sh"], "Labels": {"made": "by hand"}},\n  "rootfs": {"type": "layers", "diff_ids": ["${sha256sum(layer)}"]}\n}\n`,
    );
    const out = join(work, 'cfg.tar');
    const r = await dr(['pack', '-o', out, '--layer-tar', layer, '--config-file', cfg]);
    expect(r.images[0].id).toBe(sha256sum(cfg));
    expect(load(out)).toContain(`Loaded image ID: ${sha256sum(cfg)}`);
    expect(inspect(sha256sum(cfg))['Config']['Labels']).toEqual({ made: 'by hand' });
  });

  it('two images in one archive share their base layer, stored once; docker load prints both tags', async () => {
    const rootfs = join(work, 'busybox-rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    sh(`cp /bin/busybox ${rootfs}/bin/busybox`);
    symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
    symlinkSync('busybox', join(rootfs, 'bin', 'cat'));
    const out = join(work, 'two.tar');
    const r = await dr([
      'pack',
      '-o',
      out,
      '--image',
      '-t',
      'hello:scratch',
      '--layer',
      `${hello}:/hello`,
      '--entrypoint',
      '/hello',
      '--image',
      '-t',
      'hello:busybox',
      '--layer',
      rootfs,
      '--layer',
      `${hello}:/hello`,
      '--cmd',
      '/hello',
    ]);
    const [one, two] = r.images as Obj[];
    const helloLayer = one!.layers[0].diffId;
    expect(two!.layers[1].diffId).toBe(helloLayer);
    const members = sh(`tar -tf ${out}`)
      .split('\n')
      .filter((n) => n.endsWith('layer.tar'));
    expect(members).toHaveLength(2);
    const loaded = load(out);
    expect(loaded).toContain('Loaded image: hello:scratch');
    expect(loaded).toContain('Loaded image: hello:busybox');
    expect(d.docker(['run', '--rm', 'hello:scratch']).stdout).toBe('hello from dataroot\n');
    expect(d.docker(['run', '--rm', 'hello:busybox', 'sh', '-c', 'cat /proc/1/cmdline >/dev/null && /hello']).stdout).toBe('hello from dataroot\n');
  });

  describe('edit', () => {
    let saved: string;
    let before: Obj;
    beforeAll(() => {
      const ctx = join(work, 'edit-ctx');
      mkdirSync(ctx);
      writeFileSync(join(ctx, 'Dockerfile'), 'FROM base:busybox\nRUN echo one > /one\nLABEL org.example.keep=yes\nENV GREETING=hi\nCMD ["cat", "/one"]\n');
      d.docker(['build', '-q', '-t', 'edit/src:1', ctx], { env: { DOCKER_BUILDKIT: '0' } });
      saved = join(work, 'edit-src.tar');
      d.docker(['save', '-o', saved, 'edit/src:1']);
      before = inspect('edit/src:1');
    });

    /**
     * Everything docker inspect shows, but what an edit is expected to change (and Parent: the
     * unedited docker-save image is the one built here, whose parent an archive does not carry).
     */
    const comparable = (img: Obj): Obj => {
      const c = structuredClone<Obj>(img);
      for (const k of ['Id', 'RepoTags', 'RepoDigests', 'Metadata', 'Descriptor', 'Parent']) delete c[k];
      return c;
    };

    it.each(['docker-save', 'skopeo-oci'])('--set-label on a %s archive: only the label changes', async (kind) => {
      let input = saved;
      if (kind === 'skopeo-oci') {
        input = join(work, 'edit-src-oci.tar');
        rmSync(input, { force: true });
        sh(`skopeo copy docker-archive:${saved} oci-archive:${input}:edit/src:1`);
        expect(sh(`tar -tf ${input}`)).toContain('index.json');
      } else expect(sh(`tar -tf ${saved}`)).toMatch(/\/layer\.tar/);
      // The baseline: the same archive through edit with no config change (the ID must stay), as
      // docker load shows it (skopeo's OCI conversion rewrites the config, so its ID differs).
      const same = join(work, `unedited-${kind}.tar`);
      const b = await dr(['edit', input, '-o', same, '--tag', `edit/base:${kind}`]);
      expect(b.after).toBe(b.before);
      if (kind === 'docker-save') expect(b.before).toBe(before['Id']);
      expect(load(same)).toContain(`Loaded image: edit/base:${kind}`);
      const base = inspect(`edit/base:${kind}`);
      expect(base['Id']).toBe(b.before);
      const out = join(work, `edited-${kind}.tar`);
      const r = await dr(['edit', input, '-o', out, '--set-label', 'org.example.new=added', '--tag', `edit/labelled:${kind}`, '--untag', 'edit/src:1']);
      expect(r.before).toBe(b.before);
      expect(r.after).not.toBe(r.before);
      expect(r.images[0].tags).toEqual([`edit/labelled:${kind}`]);
      expect(load(out)).toContain(`Loaded image: edit/labelled:${kind}`);
      const after = inspect(`edit/labelled:${kind}`);
      expect(after['Id']).toBe(r.after);
      const want = comparable(base);
      want['Config']['Labels'] = { ...want['Config']['Labels'], 'org.example.new': 'added' };
      expect(comparable(after)).toEqual(want);
      expect(d.docker(['run', '--rm', `edit/labelled:${kind}`]).stdout).toBe('one\n');
    });

    it('--add-layer of a small tar: the file is there in docker run', async () => {
      const files = join(work, 'added');
      mkdirSync(files);
      writeFileSync(join(files, 'added.txt'), 'from an added layer\n');
      const tar = join(work, 'added.tar');
      sh(`tar -C ${files} -cf ${tar} added.txt`);
      const out = join(work, 'edited-add.tar');
      const r = await dr(['edit', saved, '-o', out, '--add-layer', tar, '--tag', 'edit/added:1']);
      expect(r.images[0].layers.at(-1).diffId).toBe(sha256sum(tar));
      load(out);
      const img = inspect('edit/added:1');
      expect(img['RootFS']['Layers']).toEqual([...before['RootFS']['Layers'], sha256sum(tar)]);
      expect(d.docker(['history', '--format', '{{.CreatedBy}}', 'edit/added:1']).stdout.split('\n')[0]).toContain('dataroot edit --add-layer added.tar');
      expect(d.docker(['run', '--rm', 'edit/added:1', 'cat', '/added.txt', '/one']).stdout).toBe('from an added layer\none\n');
    });

    it('--squash of a multi-layer image with whiteouts: one layer, and its container exports the same tree', async () => {
      const ctx = join(work, 'squash-ctx');
      mkdirSync(ctx);
      writeFileSync(
        join(ctx, 'Dockerfile'),
        [
          'FROM base:busybox',
          'RUN rm /etc/group && mkdir -p /opt/d/sub && echo 1 > /opt/d/sub/f && echo keep > /keep && chmod 0640 /keep',
          'RUN rm -rf /opt/d && mkdir /opt/d && echo 2 > /opt/d/new && ln /keep /keep-link && mknod /fifo p',
          'RUN echo changed > /opt/d/new && rm /bin/cat',
          '',
        ].join('\n'),
      );
      d.docker(['build', '-q', '-t', 'squash/src:1', ctx], { env: { DOCKER_BUILDKIT: '0' } });
      const src = join(work, 'squash-src.tar');
      d.docker(['save', '-o', src, 'squash/src:1']);
      expect(inspect('squash/src:1')['RootFS']['Layers'].length).toBe(4);
      const out = join(work, 'squashed.tar');
      await dr(['edit', src, '-o', out, '--squash', '--untag', 'squash/src:1', '--tag', 'squash/flat:1']);
      load(out);
      const flat = inspect('squash/flat:1');
      expect(flat['RootFS']['Layers']).toHaveLength(1);
      expect(d.docker(['history', '-q', 'squash/flat:1']).stdout.trim().split('\n')).toHaveLength(1);
      const exports: { listing: string; sums: string }[] = [];
      for (const ref of ['squash/src:1', 'squash/flat:1']) {
        const name = `exp-${ref.replace(/[/:]/g, '-')}`;
        d.docker(['create', '--name', name, ref, 'true']);
        const tar = join(work, `${name}.tar`);
        d.docker(['export', '-o', tar, name]);
        exports.push(exportFacts(tar, join(work, name)));
      }
      expect(exports[1]!.listing).toBe(exports[0]!.listing);
      expect(exports[1]!.sums).toBe(exports[0]!.sums);
      // What the whiteouts removed is gone; the hard link and the fifo survived.
      expect(exports[0]!.listing).not.toMatch(/ etc\/group$/m);
      expect(exports[0]!.listing).not.toMatch(/opt\/d\/sub/);
      expect(exports[0]!.listing).toMatch(/^h.* keep-link link to keep$/m);
      expect(exports[0]!.listing).toMatch(/^p.* fifo$/m);
      expect(d.docker(['run', '--rm', 'squash/flat:1', 'sh', '-c', 'cat /opt/d/new; ls /bin/cat 2>&1; ls -l /keep | cut -c1-10']).stdout).toBe(
        'changed\nls: /bin/cat: No such file or directory\n-rw-r-----\n',
      );
    });
  });

  it('--into-root writes the packed image into a stopped root that dockerd then runs', async () => {
    const root = new Dockerd('overlay2');
    try {
      const r = await dr([
        'pack',
        '--layer',
        `${hello}:/hello`,
        '--entrypoint',
        '/hello',
        '-t',
        'seeded/hello:1',
        '--into-root',
        root.root,
        '--driver',
        'overlay2',
      ]);
      expect(r.injected.images[0].tags).toEqual(['seeded/hello:1']);
      await root.start();
      expect(root.docker(['run', '--rm', 'seeded/hello:1']).stdout).toBe('hello from dataroot\n');
    } finally {
      await root.cleanup();
    }
  });

  it('leaves no temporary files next to the outputs', () => {
    expect(readdirSync(work).filter((n) => n.startsWith('.dataroot-') || n.includes('dataroot-tmp'))).toEqual([]);
  });
});

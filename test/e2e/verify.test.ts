import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dockerd, type Driver } from '../support/dockerd.js';
import { needs } from '../support/env.js';
import { run } from '../support/cli.js';
import { buildRichScenario, type Scenario } from '../support/scenario.js';

/**
 * Issue 5's acceptance: verify --deep is clean on roots a real dockerd made and rebuilds every
 * layer byte for byte as docker save exports it; a tamper suite (one copy of the root per case)
 * is detected with the expected codes and nothing else, and for each case a dockerd started on the
 * tampered root shows the consequence the finding's text names.
 */

type Obj = Record<string, any>;

function cpA(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  const r = spawnSync('cp', ['-a', `${from}/.`, to]);
  if (r.status !== 0) throw new Error(`cp -a failed: ${String(r.stderr)}`);
}

const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe.runIf(needs('dockerd', 'docker', 'busybox'))('verify e2e', () => {
  describe.each(['overlay2', 'vfs'] as Driver[])('%s', (driver) => {
    const d = new Dockerd(driver);
    let scn: Scenario;
    let work: string;
    let saved: string;
    /** image ref → ID, layer diffIDs, top chainID; as the running daemon reported them. */
    const images: Record<string, { id: string; layers: string[] }> = {};

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'dataroot-verify-e2e-'));
      await d.start();
      scn = buildRichScenario(d);
      for (const ref of ['rich/app:1', 'rich/other:1', 'base:busybox']) {
        const i = JSON.parse(d.docker(['image', 'inspect', ref]).stdout)[0] as Obj;
        images[ref] = { id: i['Id'], layers: i['RootFS']['Layers'] };
      }
      saved = join(work, 'saved');
      mkdirSync(saved);
      d.docker(['save', '-o', join(work, 'saved.tar'), 'rich/app:1', 'rich/other:1']);
      spawnSync('tar', ['-xf', join(work, 'saved.tar'), '-C', saved]);
      await d.stop();
    });
    afterAll(async () => {
      await d.cleanup();
      rmSync(work, { recursive: true, force: true });
      rmSync(scn?.bindDir ?? '/nonexistent', { recursive: true, force: true });
    });

    it('verify --deep on the untouched root reports nothing', async () => {
      const r = await run(['--json', 'verify', '--deep', '--root', d.root]);
      const out = JSON.parse(r.stdout) as Obj;
      expect(out['findings']).toEqual([]);
      expect(r.code).toBe(0);
      expect(out['checked'].layers).toBeGreaterThanOrEqual(6);
      expect(out['checked'].layerBytes).toBeGreaterThan(1_000_000);
    });

    it('every layer rebuilt by dataroot layer tar is byte-identical to the layer docker save exported', async () => {
      const manifest = JSON.parse(readFileSync(join(saved, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
      const files = [...new Set(manifest.flatMap((m) => m.Layers))];
      expect(files.length).toBeGreaterThanOrEqual(4);
      for (const f of files) {
        const want = readFileSync(join(saved, f));
        const r = await run(['layer', 'tar', sha(want), '--root', d.root]);
        expect(r.code, f).toBe(0);
        expect(r.stdoutBytes.equals(want), f).toBe(true);
      }
    });

    it('verify of the docker save archive itself is clean; a changed byte in a layer is ARCHIVE_DIFFID_MISMATCH', async () => {
      const ok = await run(['--json', 'verify', join(work, 'saved.tar')]);
      expect(JSON.parse(ok.stdout).findings).toEqual([]);
      expect(ok.code).toBe(0);
      const manifest = JSON.parse(readFileSync(join(saved, 'manifest.json'), 'utf8')) as { Layers: string[] }[];
      const bad = join(work, 'bad');
      cpA(saved, bad);
      // The base layer is mostly busybox's binary: a byte in its middle is file content.
      const layer = join(bad, manifest[0]!.Layers[0]!);
      const b = readFileSync(layer);
      const at = Math.floor(b.length / 2);
      b[at] = b[at]! ^ 1;
      unlinkSync(layer);
      writeFileSync(layer, b);
      const r = await run(['--json', 'verify', bad]);
      expect(r.code).toBe(1);
      expect((JSON.parse(r.stdout).findings as Obj[]).map((f) => f['code'])).toContain('ARCHIVE_DIFFID_MISMATCH');
    });

    /** One tamper case: what to do to a copy, the codes verify must report, and what dockerd then does. */
    interface Case {
      name: string;
      drivers?: Driver[];
      tamper(root: string): void;
      codes: string[] | ((driver: Driver) => string[]);
      /** Runs against a dockerd on the tampered root; returns what it showed. */
      consequence(dd: Dockerd): string;
      /** What the finding's text must say about that consequence. */
      text: RegExp;
      /** What the daemon's behaviour must show. */
      shows: RegExp;
    }

    const L = (root: string) => join(root, 'image', driver, 'layerdb', 'sha256');
    const topChain = (root: string, ref: string): string => {
      // The chain of an image's layers, computed as dockerd does.
      const ids = images[ref]!.layers;
      let c = ids[0]!;
      for (const x of ids.slice(1)) c = sha(Buffer.from(`${c} ${x}`));
      void root;
      return c.slice(7);
    };
    const cacheOf = (root: string, ref: string) => readFileSync(join(L(root), topChain(root, ref), 'cache-id'), 'utf8');
    const layerContent = (root: string, ref: string) =>
      driver === 'vfs' ? join(root, 'vfs', 'dir', cacheOf(root, ref)) : join(root, 'overlay2', cacheOf(root, ref), 'diff');
    const listed = (dd: Dockerd) => dd.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']).stdout;
    const tryRun = (dd: Dockerd, ...args: string[]) => {
      const r = dd.docker(['run', '--rm', ...args], { check: false });
      return `exit ${r.status}: ${r.stdout}${r.stderr}`;
    };
    const trySave = (dd: Dockerd, ref: string) => {
      const r = dd.docker(['save', '-o', join(dd.dir, 'save-check.tar'), ref], { check: false });
      return `save exit ${r.status}: ${r.stderr}`;
    };

    const cases: Case[] = [
      {
        name: 'one byte changed in an image config',
        tamper: (root) => {
          const p = join(root, 'image', driver, 'imagedb', 'content', 'sha256', images['rich/other:1']!.id.slice(7));
          const b = readFileSync(p);
          b[b.indexOf('"os"') + 2] = 0x4f; // "oS"
          writeFileSync(p, b);
        },
        codes: ['IMAGE_ID_MISMATCH'],
        consequence: (dd) => `${listed(dd)}\n${dd.tail(400)}`,
        text: /dockerd skips it/,
        shows: /invalid image/,
      },
      {
        name: 'a config file renamed',
        tamper: (root) => {
          const dir = join(root, 'image', driver, 'imagedb', 'content', 'sha256');
          renameSync(join(dir, images['rich/other:1']!.id.slice(7)), join(dir, 'f'.repeat(64)));
        },
        codes: ['IMAGE_ID_MISMATCH', 'TAG_DANGLING', 'ORPHAN_IMAGE_METADATA', 'CONTAINER_IMAGE_MISSING'],
        consequence: (dd) => `${listed(dd)}\n${dd.tail(400)}\n${dd.docker(['rmi', 'rich/other:1'], { check: false }).stderr}`,
        text: /No such image/,
        shows: /No such image/,
      },
      {
        name: 'a tag pointing to a removed image',
        tamper: (root) => {
          const p = join(root, 'image', driver, 'repositories.json');
          const repos = JSON.parse(readFileSync(p, 'utf8')) as Obj;
          repos['Repositories']['ghost'] = { 'ghost:1': `sha256:${'a'.repeat(64)}` };
          writeFileSync(p, JSON.stringify(repos));
        },
        codes: ['TAG_DANGLING'],
        consequence: (dd) => `${listed(dd)}\n${dd.docker(['rmi', 'ghost:1'], { check: false }).stderr}`,
        text: /docker images hides it.*No such image/,
        shows: /No such image: ghost:1/,
      },
      {
        name: 'a layerdb directory deleted',
        tamper: (root) => rmSync(join(L(root), topChain(root, 'rich/other:1')), { recursive: true }),
        codes: ['LAYER_CHAIN_MISSING', 'ORPHAN_DRIVER_DIR', 'CONTAINER_LAYER_MISSING'],
        consequence: (dd) => `${listed(dd)}\n${dd.tail(400)}`,
        text: /not restoring image/,
        shows: /not restoring image/,
      },
      {
        name: 'size rewritten with a trailing newline',
        tamper: (root) => appendFileSync(join(L(root), topChain(root, 'rich/other:1'), 'size'), '\n'),
        codes: ['LAYER_METADATA_INVALID', 'LAYER_CHAIN_MISSING', 'CONTAINER_LAYER_MISSING'],
        consequence: (dd) => `${listed(dd)}\n${dd.tail(400)}`,
        text: /not restoring image/,
        shows: /not restoring image/,
      },
      {
        name: 'cache-id pointing to a missing directory',
        tamper: (root) => writeFileSync(join(L(root), topChain(root, 'rich/other:1'), 'cache-id'), 'e'.repeat(64)),
        codes: ['LAYER_DIR_MISSING', 'ORPHAN_DRIVER_DIR'],
        consequence: (dd) => `${listed(dd)}\n${tryRun(dd, 'rich/other:1')}`,
        text: /listed but creating a container fails/,
        shows: /rich\/other:1[\s\S]*exit 12[57]: [\s\S]*no such file or directory/,
      },
      {
        name: 'tar-split.json.gz deleted',
        tamper: (root) => unlinkSync(join(L(root), topChain(root, 'rich/other:1'), 'tar-split.json.gz')),
        codes: ['TARSPLIT_MISSING'],
        consequence: (dd) => `${tryRun(dd, 'rich/other:1')}\n${trySave(dd, 'rich/other:1')}`,
        text: /the image runs, but docker save and docker push fail/,
        shows: /exit 0: hi[\s\S]*save exit 1:[\s\S]*tar-split\.json\.gz: no such file/,
      },
      {
        name: 'one byte changed in a file inside a layer',
        tamper: (root) => writeFileSync(join(layerContent(root, 'rich/other:1'), 'hi'), 'ho\n'),
        codes: ['LAYER_DIFFID_MISMATCH', 'LAYER_FILE_MODIFIED'],
        consequence: (dd) => `${tryRun(dd, 'rich/other:1')}\n${trySave(dd, 'rich/other:1')}`,
        text: /"hi" was modified.*docker save fails/,
        shows: /exit 0: ho[\s\S]*save exit 1:[\s\S]*(file integrity checksum failed|could not verify layer data)/,
      },
      {
        name: 'a file added to a layer',
        tamper: (root) => writeFileSync(join(layerContent(root, 'rich/other:1'), 'extra'), 'smuggled\n'),
        codes: (drv) => (drv === 'overlay2' ? ['LAYER_FILE_ADDED', 'LAYER_SIZE_MISMATCH'] : ['LAYER_FILE_ADDED']),
        consequence: (dd) => {
          const out = tryRun(dd, 'rich/other:1', 'cat', '/extra');
          const tar = join(work, `saved-extra-${driver}.tar`);
          dd.docker(['save', '-o', tar, 'rich/other:1']);
          const names = spawnSync('sh', ['-c', `tar -xOf ${tar} --wildcards '*/layer.tar' | tar -t 2>/dev/null`], { encoding: 'utf8' }).stdout;
          return `${out}\nsaved layer entries: ${names.includes('extra') ? 'has extra' : 'no extra'}`;
        },
        text: /containers see it, docker save does not carry it/,
        shows: /exit 0: smuggled[\s\S]*no extra/,
      },
      {
        name: 'an l/ symlink removed',
        drivers: ['overlay2'],
        tamper: (root) => {
          const c = readFileSync(join(L(root), images['base:busybox']!.layers[0]!.slice(7), 'cache-id'), 'utf8');
          unlinkSync(join(root, 'overlay2', 'l', readFileSync(join(root, 'overlay2', c, 'link'), 'utf8')));
        },
        codes: ['OVERLAY_LINK_BROKEN'],
        consequence: (dd) => tryRun(dd, 'rich/other:1'),
        text: /docker run fails/,
        shows: /exit 12[57]: [\s\S]*(error creating overlay mount|no such file or directory)/,
      },
      {
        name: 'a staging directory left behind',
        tamper: (root) => {
          mkdirSync(join(L(root), `${topChain(root, 'rich/other:1')}-123456-removing`));
          mkdirSync(join(root, 'image', driver, 'layerdb', 'tmp', 'write-set-42'), { recursive: true });
        },
        codes: ['STAGING_LEFTOVER'],
        consequence: (dd) => `${listed(dd)}\n${tryRun(dd, 'rich/other:1')}`,
        text: /dockerd ignores it|never committed/,
        shows: /rich\/other:1[\s\S]*exit 0: hi/,
      },
    ];

    for (const c of cases.filter((x) => x.drivers === undefined || x.drivers.includes(driver))) {
      it(`tamper: ${c.name}`, async () => {
        const caseDir = mkdtempSync(join(work, 'case-'));
        const root = join(caseDir, 'root');
        cpA(d.root, root);
        c.tamper(root);
        const r = await run(['--json', 'verify', '--deep', '--root', root]);
        const out = JSON.parse(r.stdout) as { findings: Obj[]; errors: number };
        const codes = [...new Set(out.findings.map((f) => f['code']))].sort();
        const want = typeof c.codes === 'function' ? c.codes(driver) : c.codes;
        expect(codes, JSON.stringify(out.findings, null, 1)).toEqual([...want].sort());
        expect(r.code).toBe(out.errors > 0 ? 1 : 0);
        const text = out.findings.map((f) => f['message']).join('\n');
        expect(text).toMatch(c.text);
        // What dockerd does with the same root.
        const dd = new Dockerd(driver, caseDir);
        try {
          await dd.start();
          expect(c.consequence(dd)).toMatch(c.shows);
        } finally {
          await dd.cleanup();
        }
      });
    }

    describe('bad tar-split streams: coded findings, never a crash', () => {
      const corrupt = async (name: string, content: Buffer): Promise<Obj[]> => {
        const root = join(mkdtempSync(join(work, 'ts-')), 'root');
        cpA(d.root, root);
        writeFileSync(join(L(root), topChain(root, 'rich/other:1'), 'tar-split.json.gz'), content);
        void name;
        const r = await run(['--json', 'verify', '--deep', '--root', root]);
        expect(r.code).toBe(1);
        return (JSON.parse(r.stdout) as { findings: Obj[] }).findings;
      };
      it.each([
        ['truncated', () => readFileSync(join(L(d.root), topChain(d.root, 'rich/other:1'), 'tar-split.json.gz')).subarray(0, 40), 'TARSPLIT_INVALID'],
        ['not gzip', () => Buffer.from('{"type":2,"payload":null,"position":0}\n'), 'TARSPLIT_INVALID'],
        ['a file entry of impossible size', () => gzipSync('{"type":1,"name":"hi","size":-3,"payload":null,"position":0}\n'), 'TARSPLIT_INVALID'],
        [
          'a path escaping the layer',
          () => gzipSync('{"type":1,"name":"../../../../etc/passwd","size":5,"payload":"AAAAAAAAAAA=","position":0}\n'),
          'TARSPLIT_PATH_ESCAPE',
        ],
      ])('%s', async (_name, make, code) => {
        const findings = await corrupt(_name, make());
        expect(findings.map((f) => f['code'])).toContain(code);
      });
    });
  });
});

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, SAMPLES } from '../support/cli.js';
import { fingerprint } from '../support/tree.js';
import { untar } from '../support/untar.js';

/**
 * Bugs the hostile data-root fuzzer (test/hostile/fuzz.test.ts) found, one test each, on a copy
 * of a shipped sample root with the mutation that found it. Each test restores what it changed.
 */

const OVERLAY_CONTAINER = '6e1fc4473ba3e8fcff64203844ec840f5ef8903296e6082fcd879babec0bb1e5';

let overlay: { dir: string; cleanup(): void };

beforeAll(() => {
  overlay = untar(join(SAMPLES, 'after-build.tar.gz'));
});
afterAll(() => overlay.cleanup());

/** Runs fn with a file of the root rewritten, and puts it back. */
async function withFile(rel: string, content: string | ((old: string) => string), fn: () => Promise<void>): Promise<void> {
  const abs = join(overlay.dir, rel);
  const old = readFileSync(abs);
  writeFileSync(abs, typeof content === 'string' ? content : content(old.toString('utf8')));
  try {
    await fn();
  } finally {
    writeFileSync(abs, old);
  }
}

function jsonEdit(edit: (v: Record<string, unknown>) => void): (old: string) => string {
  return (old) => {
    const v = JSON.parse(old) as Record<string, unknown>;
    edit(v);
    return JSON.stringify(v);
  };
}

describe('hostile fuzz regressions', () => {
  it('--json output stays valid JSON when evidence holds C1 or DEL characters (json-escapes)', async () => {
    // The terminal filter turned a raw U+009B into the text `\233` inside a JSON string.
    const cfg = `containers/${OVERLAY_CONTAINER}/hostconfig.json`;
    await withFile(cfg, jsonEdit((v) => (v['NetworkMode'] = 'x\u009b2Jy\u007fz')), async () => {
      const before = fingerprint(overlay.dir);
      const r = await run(['container', 'inspect', 'sample', '--json', '--root', overlay.dir]);
      expect(r.code).toBe(0);
      const doc = JSON.parse(r.stdout) as { HostConfig: { NetworkMode: string } }[];
      expect(doc[0]!.HostConfig.NetworkMode).toBe('x\u009b2Jy\u007fz');
      expect(r.stdout).not.toMatch(/[\u007f-\u009f]/);
      expect(fingerprint(overlay.dir)).toEqual(before);
    });
  });

  it('a config.v2.json whose Name is a number is CONTAINER_CONFIG_INVALID, not INTERNAL (plant-json)', async () => {
    const cfg = `containers/${OVERLAY_CONTAINER}/config.v2.json`;
    await withFile(cfg, jsonEdit((v) => (v['Name'] = 7)), async () => {
      const r = await run(['ps', '--root', overlay.dir]);
      expect(r.stderr).not.toMatch(/INTERNAL/);
      expect(r.stderr).toMatch(/^dataroot: CONTAINER_CONFIG_INVALID: .*Name is a number, where a string is expected/m);
      expect(r.code).toBe(1);
      const j = await run(['ps', '--json', '--root', overlay.dir]);
      expect(JSON.parse(j.stdout)).toEqual([]);
      expect(j.code).toBe(1);
    });
  });

  it('wrong types in the fields of config.v2.json that dataroot reads are findings, for every container command (json-type)', async () => {
    const cfg = `containers/${OVERLAY_CONTAINER}/config.v2.json`;
    const edits: [string, (v: Record<string, unknown>) => void][] = [
      ['Args [null]', (v) => (v['Args'] = [null])],
      ['State a string', (v) => (v['State'] = 'running')],
      ['MountPoints an array', (v) => (v['MountPoints'] = ['x'])],
      ['MountPoints value null', (v) => (v['MountPoints'] = { '/x': null })],
      ['Ports binding null', (v) => ((v['NetworkSettings'] as Record<string, unknown>)['Ports'] = { '80/tcp': [null] })],
      ['Created a number', (v) => (v['Created'] = 5)],
    ];
    for (const [what, edit] of edits) {
      await withFile(cfg, jsonEdit(edit), async () => {
        for (const args of [['ps'], ['container', 'inspect', 'sample'], ['container', 'diff', 'sample'], ['volumes'], ['verify'], ['info'], ['gc', '--dry-run']]) {
          const r = await run([...args, '--root', overlay.dir]);
          expect(r.stderr, `${what}: ${args.join(' ')}`).not.toMatch(/INTERNAL/);
          expect([0, 1, 2], `${what}: ${args.join(' ')}`).toContain(r.code);
        }
        const r = await run(['ps', '--root', overlay.dir]);
        expect(r.stderr, what).toMatch(/CONTAINER_CONFIG_INVALID/);
      });
    }
  });
});

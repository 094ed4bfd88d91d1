import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainIds } from '../../formats/digest/digest.js';
import { Confined } from '../../io/confined.js';
import { CdRoot } from './model.js';

const SAMPLE = fileURLToPath(new URL('../../../snapshots/containerd.tar.gz', import.meta.url));

describe('CdRoot.hasSnapshot (the one-lookup answer an image list uses)', () => {
  let dir: string;
  const open = (): CdRoot => new CdRoot(Confined.open(dir), { dir, shown: dir, how: 'flag' });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-cdmodel-'));
    expect(spawnSync('tar', ['-xzf', SAMPLE, '-C', dir]).status).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('says what snapshotByKey says, for every snapshot, every image chainID and keys that are not there, before and after the records are read', () => {
    const full = open();
    const queries: [string, string, string][] = [];
    for (const ns of full.namespaceNames()) {
      for (const s of full.snapshots(ns)) queries.push([ns, s.snapshotter, s.Name], [ns, s.snapshotter, `${s.Name}x`], [ns, 'native', s.Name]);
      for (const img of full.meta.images(ns)) {
        for (const m of full.resolve(img).manifests) for (const c of chainIds(m.diffIds)) queries.push([ns, 'overlayfs', c]);
      }
      queries.push([ns, 'overlayfs', ''], [ns, 'no-such-snapshotter', 'k'], [ns, 'overlayfs', 'sha256:é'], [ns, 'overlayfs', '\uD800']);
    }
    const present = queries.filter(([ns, sn, k]) => full.snapshotByKey(ns, sn, k) !== undefined).length;
    expect(present).toBeGreaterThan(5);
    expect(queries.length - present).toBeGreaterThan(5);
    const fresh = open();
    for (const [ns, sn, k] of queries) expect(fresh.hasSnapshot(ns, sn, k), `${ns} ${sn} ${k}`).toBe(full.snapshotByKey(ns, sn, k) !== undefined);
    // and once the records were read, from them: meta.db's records only, then the merged index
    const metaRead = open();
    for (const ns of metaRead.namespaceNames()) metaRead.meta.snapshots(ns);
    for (const [ns, sn, k] of queries) expect(metaRead.hasSnapshot(ns, sn, k), `${ns} ${sn} ${k}`).toBe(full.snapshotByKey(ns, sn, k) !== undefined);
    for (const [ns, sn, k] of queries) expect(full.hasSnapshot(ns, sn, k), `${ns} ${sn} ${k}`).toBe(full.snapshotByKey(ns, sn, k) !== undefined);
    full.close();
    fresh.close();
    metaRead.close();
  });
});

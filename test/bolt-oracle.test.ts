import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from './support/env.js';
import { gen, oracle } from './support/gobolt.js';
import { run } from './support/cli.js';

/**
 * Differential test against Go's bbolt 1.3.6 (Debian): databases written by the Go oracle from
 * random seeds, dumped and checked by both readers; the outputs must be equal byte for byte.
 */
const SCENARIOS = ['basic', 'deep', 'many', 'inline', 'bigvalues', 'binary', 'deletes', 'growshrink', 'nofreelist', 'sequences', 'mixed'];
const PAGE_SIZES = [1024, 4096, 16384, 65536];
const CASES = SCENARIOS.flatMap((s, i) => PAGE_SIZES.map((ps, j) => ({ scenario: s, pageSize: ps, seed: 1000 + i * 10 + j })));
CASES.push({ scenario: 'bigfreelist', pageSize: 1024, seed: 7 });

describe.runIf(needs('go'))('bolt reader vs Go bbolt', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dataroot-oracle-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`covers at least 40 databases (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES)('$scenario, page size $pageSize, seed $seed: dump --format ndjson, check and stats equal the oracle', async ({ scenario, pageSize, seed }) => {
    const file = join(dir, `${scenario}-${pageSize}-${seed}.db`);
    gen(file, seed, scenario, pageSize);
    const want = oracle(['dump', file]);
    expect(want.status).toBe(0);
    expect(want.stdout.length).toBeGreaterThan(0);
    const got = await run(['bolt', 'dump', '--format', 'ndjson', file]);
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    expect(got.stdout).toBe(want.stdout);
    const wantCheck = oracle(['check', file]);
    const gotCheck = await run(['bolt', 'check', file]);
    expect(gotCheck.stdout).toBe(wantCheck.stdout);
    expect(gotCheck.code).toBe(wantCheck.status);
    const wantStats = oracle(['stats', file]);
    expect(wantStats.status).toBe(0);
    expect((await run(['bolt', 'stats', file])).stdout).toBe(wantStats.stdout);
  });

  it('the 0xFFFF freelist escape is exercised and read in full', async () => {
    const file = join(dir, 'bigfreelist-1024-7.db');
    const pages = await run(['bolt', 'pages', file]);
    const row = pages.stdout.split('\n').find((l) => /\sfreelist\s/.test(l));
    expect(row).toMatch(/freelist\s+65535\s/);
    const stats = await run(['--json', 'bolt', 'stats', file]);
    expect(JSON.parse(stats.stdout).freePages).toBeGreaterThan(65535);
  });

  describe('corrupted copies: check agrees with tx.Check()', () => {
    /** Rewrites the freelist page of a copy; returns the copy's path. */
    function withFreelist(src: string, name: string, edit: (ids: bigint[]) => bigint[]): string {
      const out = join(dir, name);
      copyFileSync(src, out);
      const f = readFileSync(out);
      const ps = f.readUInt32LE(24);
      // The meta with the higher txid names the freelist page.
      const m0 = f.readBigUInt64LE(64);
      const m1 = f.readBigUInt64LE(ps + 64);
      const meta = m1 > m0 ? ps : 0;
      const fl = Number(f.readBigUInt64LE(meta + 48));
      const p = fl * ps;
      const count = f.readUInt16LE(p + 10);
      const ids: bigint[] = [];
      for (let i = 0; i < count; i++) ids.push(f.readBigUInt64LE(p + 16 + 8 * i));
      const next = edit(ids);
      f.writeUInt16LE(next.length, p + 10);
      next.forEach((id, i) => f.writeBigUInt64LE(id, p + 16 + 8 * i));
      writeFileSync(out, f);
      return out;
    }

    it.each([
      ['a dropped free id', (ids: bigint[]) => ids.slice(0, -1)],
      ['a duplicated free id', (ids: bigint[]) => [ids[0]!, ...ids]],
      ['a reachable page listed as free', (ids: bigint[]) => [3n, ...ids.slice(1)].sort((a, b) => (a < b ? -1 : 1))],
    ])('%s', async (name, edit) => {
      const src = join(dir, 'deletes-4096-corrupt-src.db');
      gen(src, 42, 'deletes', 4096);
      const file = withFreelist(src, `corrupt-${name.replace(/ /g, '-')}.db`, edit);
      const want = oracle(['check', file]);
      const got = await run(['bolt', 'check', file]);
      expect(want.stdout).toMatch(/errors found/);
      expect(got.stdout).toBe(want.stdout);
      expect(got.code).toBe(1);
    });
  });
});

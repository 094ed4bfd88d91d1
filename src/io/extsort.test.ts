import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ExternalSorter } from './extsort.js';

const sortDirs = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('dataroot-sort-'));

describe('ExternalSorter', () => {
  it('sorted runs merged equal one sort in memory (non-ASCII split across read chunks too), and the runs are removed', () => {
    const before = new Set(sortDirs());
    let seed = 3;
    const lines: string[] = [];
    for (let i = 0; i < 30000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      lines.push(`${String(seed % 100000).padStart(6, '0')}\t{"n":${i},"s":"ärger ✓ ${'x'.repeat(seed % 50)}"}`);
    }
    const s = new ExternalSorter(7000);
    for (const l of lines) s.add(l);
    expect(s.runCount).toBeGreaterThanOrEqual(2);
    const out = [...s.sorted()];
    expect(out).toEqual([...lines].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(sortDirs().filter((d) => !before.has(d))).toEqual([]);
  });

  it('fewer lines than a run never touch the disk', () => {
    const s = new ExternalSorter(100);
    for (const l of ['b', 'a', 'c']) s.add(l);
    expect([...s.sorted()]).toEqual(['a', 'b', 'c']);
    expect(s.runCount).toBe(0);
  });
});

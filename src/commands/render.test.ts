import { describe, expect, it } from 'vitest';
import type { Ctx } from './context.js';
import { CLI_TABLE3_ROWS, displayWidth, table, TABLE_CHUNK_ROWS, terminalSafe, writeTable } from './render.js';

const plain = { color: false } as Ctx;
const colour = { color: true } as Ctx;

// Expected outputs written out by hand: columns padded to the widest cell, four spaces between
// them, no trailing blanks.
describe('table', async () => {
  it('pads columns to the widest cell and trims each line', async () => {
    expect(
      await table(
        plain,
        ['NAME', 'SIZE'],
        [
          ['a', 1],
          ['longer', 22],
        ],
      ),
    ).toBe('NAME      SIZE\na         1\nlonger    22\n');
  });

  it('prints the header alone when there are no rows', async () => {
    expect(await table(plain, ['REPOSITORY', 'TAG'], [])).toBe('REPOSITORY    TAG\n');
  });

  it('measures wide characters as two columns and colour codes as none', async () => {
    expect(
      await table(
        plain,
        ['N', 'X'],
        [
          ['日本', 'a'],
          ['abcd', 'b'],
        ],
      ),
    ).toBe('N       X\n日本    a\nabcd    b\n');
    expect(terminalSafe(await table(colour, ['N', 'X'], [['abc', 'y']]))).toBe('\u001b[1mN\u001b[22m      \u001b[1mX\u001b[22m\nabc    y\n');
  });

  it('gives a cell with a newline as many lines', async () => {
    expect(await table(plain, ['A', 'B'], [['x\nyy', 'z']])).toBe('A     B\nx     z\nyy\n');
  });

  it('escapes control characters of cells (a name with OSC/CSI codes cannot drive the terminal), colours kept', async () => {
    const evil = 'x\u001b]0;pwned\u0007\u001b[2Jy';
    expect(terminalSafe(await table(colour, ['N'], [[evil]]))).toBe('\u001b[1mN\u001b[22m\nx\\033]0;pwned\\a\\033[2Jy\n');
    expect(terminalSafe('a\u009bb\rc\n')).toBe('a\\233b\\rc\n');
  });

  it('measures U+1F680–1F6FF (transport and map symbols) as two columns, as terminals show them', async () => {
    // 🚀 U+1F680, 🛌 U+1F6CC, 🛸 U+1F6F8: East Asian Width W (Unicode 15 EastAsianWidth.txt).
    for (const c of ['🚀', '🛌', '🛸', '🚗']) expect(await displayWidth(c), c).toBe(2);
    expect(
      await table(
        plain,
        ['N', 'X'],
        [
          ['🚀🚀', 'a'],
          ['🛸', 'b'],
          ['abc', 'c'],
        ],
      ),
    ).toBe('N       X\n🚀🚀    a\n🛸      b\nabc     c\n');
  });

  it('renders a long table in chunks of fixed widths that make one seamless table (widest cell in the last chunk)', async () => {
    const n = 2 * TABLE_CHUNK_ROWS + 50;
    const rows: string[][] = [];
    for (let i = 0; i < n; i++) rows.push([`r${i}`, i === n - 3 ? 'the widest cell of all' : 'x', String(i)]);
    const chunks: string[] = [];
    await writeTable(plain, ['A', 'B', 'C'], rows, (s) => void chunks.push(s));
    expect(chunks.length).toBe(3);
    // The oracle: padEnd to the widest cell of each column (ASCII only), four spaces between.
    const w = [`r${n - 1}`.length, 'the widest cell of all'.length];
    const line = (c: string[]): string => `${c[0]!.padEnd(w[0]!)}    ${c[1]!.padEnd(w[1]!)}    ${c[2]}\n`;
    expect(chunks.join('')).toBe(line(['A', 'B', 'C']) + rows.map(line).join(''));
  });

  it('past CLI_TABLE3_ROWS, rows padded directly are the bytes cli-table3 gives (wide, emoji, combining, escaped, multi-line, empty cells)', async () => {
    const samples = ['a', '', '日本語', '🚀x', 'e\u0301te', 'x\u001b[2Jy', 'tab\there', 'ab ', '🛸🛸🛸🛸', 'two\nlines'];
    const rows: string[][] = [];
    for (let i = 0; i < 3 * TABLE_CHUNK_ROWS + 7; i++)
      rows.push([samples[i % samples.length]!, String(i * 7919), samples[(i * 3) % samples.length]!, samples[(i * 7) % samples.length]!]);
    for (const ctx of [plain, colour]) {
      let byTable = '';
      let direct = '';
      await writeTable(ctx, ['NAME', 'N', 'PATH', 'LAST'], rows, (s) => void (byTable += s), Infinity);
      await writeTable(ctx, ['NAME', 'N', 'PATH', 'LAST'], rows, (s) => void (direct += s), 0);
      expect(direct.split('\n').length).toBe(byTable.split('\n').length);
      expect(direct).toBe(byTable);
    }
    expect(CLI_TABLE3_ROWS).toBeGreaterThanOrEqual(1000);
  });

  it('renders 100,000 rows (no stack overflow; one line a row)', { timeout: 300_000 }, async () => {
    const rows: (string | number)[][] = [];
    for (let i = 0; i < 100_000; i++) rows.push(['file', i, `dir/${i % 10 === 0 ? '日本' : 'ab'}/${i}`]);
    let lines = 0;
    let last = '';
    await writeTable(plain, ['TYPE', 'SIZE', 'PATH'], rows, (s) => {
      for (let k = s.indexOf('\n'); k >= 0; k = s.indexOf('\n', k + 1)) lines++;
      last = s;
    });
    expect(lines).toBe(100_001);
    expect(last.endsWith('file    99999    dir/ab/99999\n')).toBe(true);
  });

  it('counts display columns', async () => {
    expect(await displayWidth('e\u0301')).toBe(1);
    expect(await displayWidth('😀')).toBe(2);
    expect(await displayWidth('\u001b[31mred\u001b[39m')).toBe(3);
  });
});

import { describe, expect, it } from 'vitest';
import type { Ctx } from './context.js';
import { displayWidth, table, terminalSafe } from './render.js';

const plain = { color: false } as Ctx;
const colour = { color: true } as Ctx;

// Expected outputs written out by hand: columns padded to the widest cell, four spaces between
// them, no trailing blanks.
describe('table', () => {
  it('pads columns to the widest cell and trims each line', () => {
    expect(table(plain, ['NAME', 'SIZE'], [['a', 1], ['longer', 22]])).toBe('NAME      SIZE\na         1\nlonger    22\n');
  });

  it('prints the header alone when there are no rows', () => {
    expect(table(plain, ['REPOSITORY', 'TAG'], [])).toBe('REPOSITORY    TAG\n');
  });

  it('measures wide characters as two columns and colour codes as none', () => {
    expect(table(plain, ['N', 'X'], [['日本', 'a'], ['abcd', 'b']])).toBe('N       X\n日本    a\nabcd    b\n');
    expect(terminalSafe(table(colour, ['N', 'X'], [['abc', 'y']]))).toBe('\u001b[1mN\u001b[22m      \u001b[1mX\u001b[22m\nabc    y\n');
  });

  it('gives a cell with a newline as many lines', () => {
    expect(table(plain, ['A', 'B'], [['x\nyy', 'z']])).toBe('A     B\nx     z\nyy\n');
  });

  it('escapes control characters of cells (a name with OSC/CSI codes cannot drive the terminal), colours kept', () => {
    const evil = 'x\u001b]0;pwned\u0007\u001b[2Jy';
    expect(terminalSafe(table(colour, ['N'], [[evil]]))).toBe('\u001b[1mN\u001b[22m\nx\\033]0;pwned\\a\\033[2Jy\n');
    expect(terminalSafe('a\u009bb\rc\n')).toBe('a\\233b\\rc\n');
  });

  it('counts display columns', () => {
    expect(displayWidth('e\u0301')).toBe(1);
    expect(displayWidth('😀')).toBe(2);
    expect(displayWidth('\u001b[31mred\u001b[39m')).toBe(3);
  });
});

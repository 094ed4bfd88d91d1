import { describe, expect, it } from 'vitest';
import { CTR_TAB_TABLE, CTR_TABLE, tabwrite } from './tabwriter.js';

describe("Go's tabwriter as ctr sets it up", () => {
  it('ctr snapshots ls: every cell padded to its column plus one space (bytes as ctr printed them)', () => {
    const a = 'sha256:aa5f5b11006850750062583c2e298de6091ce414941bde70dcfbc7f8e1947a89';
    const b = 'sha256:ba6972c716a9fd54f2a73e502d909bca421bb76d41a09c85d3fe59ce665557f5';
    const out = tabwrite(['KEY\tPARENT\tKIND\t', `c1\t${b}\tActive\t`, `${a}\t\tCommitted\t`, `${b}\t${a}\tCommitted\t`], CTR_TABLE);
    expect(out).toBe(
      [
        `KEY${' '.repeat(69)}PARENT${' '.repeat(66)}KIND      `,
        `c1${' '.repeat(70)}${b} Active    `,
        `${a} ${' '.repeat(72)}Committed `,
        `${b} ${a} Committed `,
        '',
      ].join('\n'),
    );
  });

  it('ctr content ls: tab padding rounded to 8 columns, the last cell as is', () => {
    const d = 'sha256:036ce85fbca33ce52caeba997dccd864126f7464106ff71f9f6dc664bcf2f34b';
    const out = tabwrite(['DIGEST\tSIZE\tAGE\tLABELS', `${d}\t2.56kB\t32 seconds\tx=y`], CTR_TAB_TABLE);
    expect(out).toBe(`DIGEST\t\t\t\t\t\t\t\t\tSIZE\tAGE\t\tLABELS\n${d}\t2.56kB\t32 seconds\tx=y\n`);
  });
});

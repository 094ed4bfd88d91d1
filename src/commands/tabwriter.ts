/**
 * Go's text/tabwriter as `ctr` configures it, for tables that print as ctr prints them: every
 * cell terminated by a tab is padded to its column's width (widest cell + `padding`, at least
 * `minwidth`) with `padchar`; with a tab as padchar the width is rounded up to `tabwidth` and
 * padded with tabs. A cell not followed by a tab (the last of a line) is written as is.
 */
export interface TabOptions {
  minwidth: number;
  tabwidth: number;
  padding: number;
  padchar: ' ' | '\t';
}

/** ctr's usual writer: tabwriter.NewWriter(os.Stdout, 1, 8, 1, ' ', 0). */
export const CTR_TABLE: TabOptions = { minwidth: 1, tabwidth: 8, padding: 1, padchar: ' ' };
/** `ctr content ls`: tabwriter.NewWriter(os.Stdout, 1, 8, 1, '\t', 0). */
export const CTR_TAB_TABLE: TabOptions = { minwidth: 1, tabwidth: 8, padding: 1, padchar: '\t' };

/** Code points of a cell (what Go's tabwriter counts); without surrogates, the UTF-16 length. */
const SURROGATE = /[\uD800-\uDFFF]/;
const runes = (s: string): number => (SURROGATE.test(s) ? [...s].length : s.length);

/** Lines of text with tab-separated cells (as ctr's Fprintf writes them) → the aligned output. */
export function tabwrite(lines: string[], o: TabOptions): string {
  const rows = lines.map((l) => l.split('\t'));
  // Columns are aligned over consecutive lines that have a terminated cell in that column.
  let cols = 0;
  for (const r of rows) cols = Math.max(cols, r.length - 1);
  let out = '';
  const blockWidth = (col: number, from: number): { w: number; end: number } => {
    let w = 0;
    let end = from;
    while (end < rows.length && rows[end]!.length - 1 > col) {
      w = Math.max(w, runes(rows[end]![col]!) + o.padding);
      end++;
    }
    return { w: Math.max(w, o.minwidth), end };
  };
  const widthAt: number[][] = rows.map(() => []);
  for (let col = 0; col < cols; col++) {
    let i = 0;
    while (i < rows.length) {
      if (rows[i]!.length - 1 <= col) {
        i++;
        continue;
      }
      const { w, end } = blockWidth(col, i);
      for (let k = i; k < end; k++) widthAt[k]![col] = w;
      i = end;
    }
  }
  for (let r = 0; r < rows.length; r++) {
    const cells = rows[r]!;
    let line = '';
    for (let c = 0; c < cells.length; c++) {
      const text = cells[c]!;
      if (c === cells.length - 1) {
        line += text;
        break;
      }
      const w = widthAt[r]![c]!;
      if (o.padchar === '\t') {
        const cellw = Math.ceil(w / o.tabwidth) * o.tabwidth;
        line += text + '\t'.repeat(Math.ceil((cellw - runes(text)) / o.tabwidth));
      } else line += text + ' '.repeat(w - runes(text));
    }
    out += `${line}\n`;
  }
  return out;
}

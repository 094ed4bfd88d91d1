// Renders tables of N rows (the shape of `dataroot files`: five columns, some wide names) to a
// counting sink and prints the seconds each took, median of 3, and the ratio against the reference:
// the same rows as `--json` prints them (jsonText). `npm run bench:table [-- N...]`.
import type { Ctx } from '../src/commands/context.js';
import { jsonText, writeTable } from '../src/commands/render.js';

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const ctx = { color: false, stdout: { write: () => {} } } as unknown as Ctx;
const names = ['usr/lib/x86_64-linux-gnu/libc.so.6', 'etc/日本語/設定.conf', 'home/🚀rocket/launch.sh', 'var/lib/dpkg/info/base-files.list'];

function rows(n: number): (string | number)[][] {
  const out = new Array<(string | number)[]>(n);
  for (let i = 0; i < n; i++)
    out[i] = [i % 7 === 0 ? 'dir' : 'file', (i * 7919) % 10_000_000, (0o100644).toString(8), `${i % 3}:${i % 5}`, `${names[i % names.length]}.${i}`];
  return out;
}

for (const n of sizes.length > 0 ? sizes : [1_000, 10_000, 100_000]) {
  const data = rows(n);
  const times: number[] = [];
  let bytes = 0;
  for (let k = 0; k < 3; k++) {
    bytes = 0;
    const t0 = performance.now();
    await writeTable(ctx, ['TYPE', 'SIZE', 'MODE', 'OWNER', 'PATH'], data, (s) => void (bytes += s.length));
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  const ref: number[] = [];
  let jsonChars = 0;
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    jsonChars = jsonText(data, 2).length;
    ref.push((performance.now() - t0) / 1000);
  }
  ref.sort((a, b) => a - b);
  process.stdout.write(
    `${String(n).padStart(8)} rows  table ${times[1]!.toFixed(3)} s  --json ${ref[1]!.toFixed(3)} s  ratio ${(times[1]! / ref[1]!).toFixed(1)}×  (${bytes} table chars, ${jsonChars} JSON chars)\n`,
  );
}

// Writes docs/errors.md from the error catalog (src/formats/errorcodes.ts). `--check` writes
// nothing and exits 1 when the committed file differs. `npm run docs:errors`.
import { readFileSync, writeFileSync } from 'node:fs';
import { errorCatalogMarkdown } from '../src/formats/errorcodes.js';

const path = new URL('../docs/errors.md', import.meta.url);
const text = errorCatalogMarkdown();
if (process.argv.includes('--check')) {
  let old = '';
  try {
    old = readFileSync(path, 'utf8');
  } catch {
    // missing: differs
  }
  if (old !== text) {
    process.stderr.write('docs/errors.md is out of date: run npm run docs:errors\n');
    process.exit(1);
  }
} else {
  writeFileSync(path, text);
  process.stdout.write(`docs/errors.md: ${text.split('\n').filter((l) => l.startsWith('| `')).length} codes\n`);
}

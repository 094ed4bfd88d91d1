import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOG, NOT_FOUND_CODES, catalogEntry, errorCatalogMarkdown, exitCodeOf, ioErrorCode, severityOf } from './errorcodes.js';
import { DatarootError } from './errors.js';

const SRC = new URL('..', import.meta.url).pathname;
const CATALOG_FILE = join(SRC, 'formats', 'errorcodes.ts');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && p !== CATALOG_FILE) out.push(p);
  }
  return out;
}

/** Names of the code's shape that are not codes: environment variables read by dataroot. */
const NOT_CODES = /^(DATAROOT_[A-Z0-9_]+|NO_COLOR|SOURCE_DATE_EPOCH)$/;
/** An upper-case string literal: a code when its words are joined by underscores, or a one-word catalog code (INTERNAL). */
const LITERAL = /'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)'/g;
const isCode = (s: string): boolean => !NOT_CODES.test(s) && (s.includes('_') || Object.hasOwn(ERROR_CATALOG, s));

const used = new Map<string, string>();
for (const f of sources(SRC)) {
  for (const m of readFileSync(f, 'utf8').matchAll(LITERAL)) if (isCode(m[1]!) && !used.has(m[1]!)) used.set(m[1]!, f.slice(SRC.length));
}
const catalog = Object.keys(ERROR_CATALOG);

describe('error catalog', () => {
  it('has every code that src uses', () => {
    const missing = [...used].filter(([c]) => catalogEntry(c) === undefined);
    const fix = missing.map(([c, f]) => `  ${c}: error('<one line: what it means>'),   // used in src/${f}`).join('\n');
    expect(
      missing.length,
      `codes used in src but not in the catalog: add these lines to ERROR_CATALOG in src/formats/errorcodes.ts (notFound(...) for a lookup of something absent, exit 1; warning(...) for a verify finding that is not damage), then run npm run docs:errors:\n${fix}\n`,
    ).toBe(0);
  });

  it('has no code that src does not use', () => {
    const unused = catalog.filter((c) => !used.has(c));
    expect(
      unused,
      `catalog entries no file of src uses: remove their lines from ERROR_CATALOG in src/formats/errorcodes.ts, then run npm run docs:errors: ${unused.join(', ')}`,
    ).toEqual([]);
  });

  it('is in code order and each meaning is one line', () => {
    expect(catalog).toEqual([...catalog].sort());
    for (const [c, e] of Object.entries(ERROR_CATALOG)) {
      expect(e.meaning, c).not.toMatch(/\n/);
      expect(e.meaning.length, c).toBeGreaterThan(10);
    }
  });

  it('docs/errors.md is the text generated from the catalog', () => {
    const committed = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    expect(committed === errorCatalogMarkdown(), 'docs/errors.md is out of date: run npm run docs:errors and commit docs/errors.md').toBe(true);
    for (const c of catalog) expect(committed).toContain(`| \`${c}\` |`);
  });

  it('exit codes: 1 for lookups of something absent, 2 for the rest (as main.ts ends the command)', () => {
    // The lookups that `docker` answers with exit 1 ("No such image"), checked by hand against docker 20.10;
    // `docker logs` of a container whose driver keeps no file exits 1 too (issue 17).
    expect([...NOT_FOUND_CODES].sort()).toEqual([
      'CONTAINERD_NAMESPACE_NOT_FOUND',
      'CONTAINER_AMBIGUOUS',
      'CONTAINER_NOT_FOUND',
      'IMAGE_AMBIGUOUS',
      'IMAGE_NOT_FOUND',
      'LAYER_AMBIGUOUS',
      'LAYER_NOT_FOUND',
      'LOGS_NOT_ON_DISK',
      'NETWORK_NOT_FOUND',
      'SNAPSHOT_NOT_FOUND',
      'TARGET_NOT_FOUND',
      'VOLUME_NOT_FOUND',
    ]);
    expect(new DatarootError('IMAGE_NOT_FOUND', 'x').exitCode).toBe(1);
    expect(new DatarootError('SNAPSHOT_NOT_FOUND', 'x').exitCode).toBe(1);
    expect(new DatarootError('BOLT_NOT_BOLT', 'x').exitCode).toBe(2);
    expect(new DatarootError('IO_EACCES', 'x').exitCode).toBe(2);
    expect(exitCodeOf('NO_SUCH_CODE')).toBe(2);
  });

  it('severities: the warnings of verify are the catalog warnings', () => {
    expect(severityOf('ORPHAN_LAYER')).toBe('warning');
    expect(severityOf('CONTAINERD_GC_WOULD_DELETE')).toBe('warning');
    expect(severityOf('LAYER_FILE_MODIFIED')).toBe('error');
  });

  it('system errors map to IO_<errno>, documented by the family row', () => {
    expect(ioErrorCode('EACCES')).toBe('IO_EACCES');
    expect(ioErrorCode(undefined)).toBe('IO_ERROR');
    expect(ioErrorCode('weird code')).toBe('IO_ERROR');
    expect(catalogEntry('IO_EXDEV')?.exit).toBe(2);
    expect(errorCatalogMarkdown()).toContain('| `IO_E<errno>` | 2 | error |');
  });

  it('an unknown code literal does not type-check', () => {
    // @ts-expect-error: not a catalog code (tsc fails if this line ever compiles)
    const e = new DatarootError('NOT_A_CATALOG_CODE', 'x');
    expect(e.exitCode).toBe(2);
  });
});

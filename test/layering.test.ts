import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const LAYERS = ['formats', 'io', 'store', 'ops', 'commands', 'cli'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

function layerOf(path: string): number {
  const top = relative(SRC, path).split('/')[0] ?? '';
  return LAYERS.indexOf(top);
}

/** Every import of a source file, resolved to a path when relative. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

export function violations(): string[] {
  const out: string[] = [];
  for (const f of files(SRC)) {
    const mine = layerOf(f);
    if (mine < 0) {
      out.push(`${relative(SRC, f)} is in no layer (${LAYERS.join(', ')})`);
      continue;
    }
    for (const spec of imports(f)) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(f), spec);
        const theirs = layerOf(target);
        if (theirs > mine) out.push(`${relative(SRC, f)} (${LAYERS[mine]}) imports ${relative(SRC, target)} (${LAYERS[theirs]})`);
      } else if (mine === 0 && /^(node:)?(fs|child_process|process|os|path|zlib|crypto)(\/|$)/.test(spec)) {
        out.push(`${relative(SRC, f)} (formats) imports ${spec}: formats are pure codecs`);
      }
    }
    if (mine === 0 && /\bBuffer\.|\bprocess\./.test(readFileSync(f, 'utf8'))) out.push(`${relative(SRC, f)} (formats) uses Buffer or process`);
  }
  return out;
}

/**
 * The snapshot store is one folder (src/store/snapshots/) over its own codecs
 * (src/formats/snapstore/): it imports nothing of the data-root model beside it, and only the
 * snapshot operations and their command reach into it.
 */
export function snapshotStoreViolations(): string[] {
  const out: string[] = [];
  const folder = join(SRC, 'store', 'snapshots');
  const users = new Set(['ops/snapshot.ts', 'ops/scantree.ts', 'ops/snapdiff.ts', 'ops/restore.ts', 'ops/reset.ts', 'commands/snapshot.ts']);
  // the addon's facade classifies the content pipeline's head samples by the format's rule
  const codecUsers = new Set([...users, 'io/native.ts']);
  for (const f of files(SRC)) {
    const inside = f.startsWith(`${folder}/`);
    for (const spec of imports(f)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(f), spec);
      const rel = relative(SRC, target);
      if (inside && rel.startsWith('store/') && !rel.startsWith('store/snapshots/'))
        out.push(`${relative(SRC, f)} imports ${rel}: the snapshot store stands apart from the data-root model`);
      if (!inside && rel.startsWith('store/snapshots/') && !users.has(relative(SRC, f)))
        out.push(`${relative(SRC, f)} imports ${rel}: only the snapshot operations use the snapshot store`);
      if (rel.startsWith('formats/snapstore/') && !inside && !codecUsers.has(relative(SRC, f)) && !relative(SRC, f).startsWith('formats/snapstore/'))
        out.push(`${relative(SRC, f)} imports ${rel}: the snapshot formats are the snapshot store's`);
    }
  }
  return out;
}

describe('architecture layering formats -> io -> store -> ops -> commands -> cli', () => {
  it('the snapshot store is one folder over its own codecs, used only by the snapshot operations', () => {
    expect(existsSync(join(SRC, 'store', 'snapshots', 'store.ts'))).toBe(true);
    expect(existsSync(join(SRC, 'formats', 'snapstore', 'pack.ts'))).toBe(true);
    expect(snapshotStoreViolations()).toEqual([]);
  });

  it('no module imports a layer to its right, and formats stay pure', () => {
    expect(violations()).toEqual([]);
  });

  it('the check itself catches a rightward import', () => {
    // A line as it would appear in src/formats: importing the store layer must be reported.
    const fake = "import { openRoot } from '../store/root.js';";
    const spec = /from\s+['"]([^'"]+)['"]/.exec(fake)![1]!;
    const target = resolve(join(SRC, 'formats'), spec);
    expect(layerOf(target)).toBeGreaterThan(layerOf(join(SRC, 'formats', 'x.ts')));
  });
});

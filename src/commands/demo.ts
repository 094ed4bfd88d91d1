import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { info } from '../ops/info.js';
import { listFiles } from '../ops/files.js';
import { dumpTree } from '../ops/bolt.js';
import { openBolt } from '../store/bolt.js';
import { withRoot } from '../store/root.js';
import { readFileSync } from 'node:fs';
import type { Ctx } from './context.js';
import { renderInfo } from './info.js';
import { paint, table } from './render.js';

/** The shipped sample data-roots, next to the package. */
export function samplesDir(): string {
  return fileURLToPath(new URL('../../snapshots/', import.meta.url));
}

const SAMPLES = ['fresh', 'after-build', 'after-build-vfs'];

function heading(ctx: Ctx, s: string): void {
  ctx.stdout.write(`\n${paint(ctx, 'cyan', `━━ ${s}`)}\n`);
}

/** A guided tour over the shipped samples; it grows as features land. */
export async function runDemo(ctx: Ctx): Promise<void> {
  const dir = samplesDir();
  for (const name of SAMPLES) {
    const archive = join(dir, `${name}.tar.gz`);
    if (!existsSync(archive)) throw new DatarootError('DEMO_SAMPLES_MISSING', `sample ${archive} is missing`, { file: archive });
    await withRoot(archive, (r) => {
      heading(ctx, `dataroot info --root snapshots/${name}.tar.gz`);
      renderInfo(ctx, info(r));
      if (name === 'fresh') return;
      heading(ctx, `dataroot files --type bolt --root snapshots/${name}.tar.gz   (BoltDB found by magic, not by name)`);
      const bolts = listFiles(r.dir, { type: 'bolt', sort: false });
      ctx.stdout.write(table(ctx, ['TYPE', 'SIZE', 'PATH'], bolts.map((f) => [f.kind, f.size, f.path])));
      heading(ctx, `dataroot files --type json --sort --root snapshots/${name}.tar.gz   (first 8)`);
      const jsons = listFiles(r.dir, { type: 'json', sort: true }).slice(0, 8);
      ctx.stdout.write(table(ctx, ['TYPE', 'SIZE', 'PATH'], jsons.map((f) => [f.kind, f.size, f.path])));
      const driver = r.drivers[0] ?? 'overlay2';
      const repos = `image/${driver}/repositories.json`;
      heading(ctx, `dataroot cat ${repos} --root snapshots/${name}.tar.gz`);
      ctx.stdout.write(`${JSON.stringify(JSON.parse(readFileSync(join(r.dir, repos), 'utf8')), null, 2)}\n`);
      for (const db of ['network/files/local-kv.db', 'volumes/metadata.db']) {
        heading(ctx, `dataroot bolt dump ${db} --root snapshots/${name}.tar.gz   (decoded by our own B+tree reader)`);
        const b = openBolt(join(r.dir, db));
        try {
          const tree = dumpTree(b.db, { values: 'auto', docker: true, kind: b.kind });
          ctx.stdout.write(`${JSON.stringify(tree, null, 2)}\n`);
        } finally {
          b.close();
        }
      }
    });
  }
}

export function registerDemo(program: Command, ctx: Ctx): void {
  program
    .command('demo')
    .description('a guided tour of dataroot over the shipped sample data-roots (no daemon needed)')
    .action(async () => {
      await runDemo(ctx);
    });
}

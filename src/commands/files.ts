import { Command, InvalidArgumentError } from 'commander';
import { listFiles, type FileInfo, type FilesOptions } from '../ops/files.js';
import { withRoot } from '../store/root.js';
import { rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { emitJson, writeTable } from './render.js';

const TYPES = ['json', 'bolt', 'gz', 'all'] as const;

function parseType(v: string): FilesOptions['type'] {
  if (!(TYPES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${TYPES.join(', ')}`);
  return v as FilesOptions['type'];
}

export async function runFiles(g: GlobalOpts, opts: FilesOptions, ctx: Ctx): Promise<FileInfo[]> {
  return withRoot(rootOf(g, ctx).root, (r) => listFiles(r.fs, opts), rootOptions(g, ctx));
}

export function registerFiles(program: Command, ctx: Ctx): void {
  program
    .command('files')
    .description('regular files under the root, classified by content (BoltDB by its magic at offset 16, gzip, JSON)')
    .option('--type <type>', 'json | bolt | gz | all', parseType, 'all')
    .option('--sort', 'largest first', false)
    .action(async (o: FilesOptions, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const files = await runFiles(g, o, ctx);
      if (g.json) emitJson(ctx, files);
      else
        await writeTable(
          ctx,
          ['TYPE', 'SIZE', 'MODE', 'OWNER', 'PATH'],
          files.map((f) => [f.kind, f.size, f.mode, `${f.uid}:${f.gid}`, f.path]),
        );
    });
}

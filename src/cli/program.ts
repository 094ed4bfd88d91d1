import { Command, Option } from 'commander';
import type { Ctx } from '../commands/context.js';
import { registerInfo } from '../commands/info.js';
import { registerFiles } from '../commands/files.js';
import { registerCat } from '../commands/cat.js';
import { registerBolt } from '../commands/bolt.js';
import { registerDemo } from '../commands/demo.js';
import { registerImages } from '../commands/images.js';
import { registerContainers } from '../commands/containers.js';
import { registerObjects } from '../commands/objects.js';

/** Builds the commander tree. It never parses: main.ts does. */
export function buildProgram(ctx: Ctx): Command {
  const program = new Command('dataroot');
  program
    .description("Read, verify, snapshot, diff and write a stopped Docker daemon's data directory")
    .version('0.1.0')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void ctx.stdout.write(s),
      writeErr: (s) => void ctx.stderr.write(s),
      outputError: () => {},
    })
    .showSuggestionAfterError(true)
    .addOption(new Option('--root <dir>', 'data-root directory or .tar/.tar.gz archive (default /var/lib/docker, or DATAROOT_ROOT)'))
    .option('--json', 'print exactly one JSON document (NDJSON for streams)', false)
    .option('--no-color', 'no colour (also NO_COLOR)');
  registerInfo(program, ctx);
  registerFiles(program, ctx);
  registerCat(program, ctx);
  registerBolt(program, ctx);
  registerImages(program, ctx);
  registerContainers(program, ctx);
  registerObjects(program, ctx);
  registerDemo(program, ctx);
  return program;
}

import { Command, Option } from 'commander';
import type { Ctx } from '../commands/context.js';

type Register = (program: Command, ctx: Ctx) => void;

/**
 * Command groups, each loaded only when its command is run (the bundle splits them into chunks),
 * so a short command does not pay for parsing the code of every other one.
 */
const GROUPS: Record<string, () => Promise<Register>> = {
  info: async () => (await import('../commands/info.js')).registerInfo,
  export: async () => (await import('../commands/export.js')).registerExport,
  mount: async () => (await import('../commands/mount.js')).registerMount,
  find: async () => (await import('../commands/find.js')).registerFind,
  files: async () => (await import('../commands/files.js')).registerFiles,
  cat: async () => (await import('../commands/cat.js')).registerCat,
  bolt: async () => (await import('../commands/bolt.js')).registerBolt,
  images: async () => (await import('../commands/images.js')).registerImages,
  containers: async () => (await import('../commands/containers.js')).registerContainers,
  objects: async () => (await import('../commands/objects.js')).registerObjects,
  verify: async () => (await import('../commands/verify.js')).registerVerify,
  builder: async () => (await import('../commands/builder.js')).registerBuilder,
  inject: async () => (await import('../commands/inject.js')).registerInject,
  snapshot: async () => (await import('../commands/snapshot.js')).registerSnapshot,
  pack: async () => (await import('../commands/pack.js')).registerPack,
  demo: async () => (await import('../commands/demo.js')).registerDemo,
  logs: async () => (await import('../commands/logs.js')).registerLogs,
  timeline: async () => (await import('../commands/timeline.js')).registerTimeline,
  which: async () => (await import('../commands/which.js')).registerWhich,
  containerd: async () => (await import('../commands/containerd.js')).registerContainerd,
};

/** The group that defines each top-level command word. */
const WORDS: Record<string, string> = {
  info: 'info',
  export: 'export',
  mount: 'mount',
  umount: 'mount',
  find: 'find',
  files: 'files',
  cat: 'cat',
  bolt: 'bolt',
  images: 'images',
  image: 'images',
  history: 'images',
  containers: 'containers',
  ps: 'containers',
  container: 'containers',
  layers: 'objects',
  layer: 'objects',
  volumes: 'objects',
  volume: 'objects',
  networks: 'objects',
  network: 'objects',
  verify: 'verify',
  builder: 'builder',
  inject: 'inject',
  gc: 'inject',
  snapshot: 'snapshot',
  snapshots: 'snapshot',
  restore: 'snapshot',
  reset: 'snapshot',
  diff: 'snapshot',
  pack: 'pack',
  edit: 'pack',
  'inspect-archive': 'pack',
  archive: 'pack',
  demo: 'demo',
  logs: 'logs',
  timeline: 'timeline',
  which: 'which',
  containerd: 'containerd',
};

/** Global options that take a value (their value is not the command word). */
const GLOBAL_WITH_VALUE = new Set(['--root', '--driver', '--unpack-limit', '--containerd-root']);

/** The first word of a command line that is not a global option or its value. */
export function commandWord(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (GLOBAL_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return a;
  }
  return undefined;
}

/**
 * Builds the commander tree for a command line (after `dataroot`): only the group of its command,
 * or every group when the command is unknown or absent (help, suggestions). It never parses:
 * main.ts does.
 */
export async function buildProgram(ctx: Ctx, args: readonly string[] = []): Promise<Command> {
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
    .addHelpText(
      'after',
      '\nExit codes: 0 clean; 1 problems or differences found, or an object that does not exist; 2 usage\nerror, unreadable input or refused write. Every error code, with its exit code and meaning, is\nlisted in docs/errors.md (in the package directory).\n',
    )
    .addOption(new Option('--root <dir>', 'data-root directory or .tar/.tar.gz archive (default /var/lib/docker, or DATAROOT_ROOT)'))
    .addOption(new Option('--driver <name>', 'the graphdriver whose store is read (default: chosen as dockerd chooses)'))
    .addOption(
      new Option(
        '--containerd-root <dir>',
        "containerd's root, a directory or archive (default <root>/containerd/daemon when it holds a meta.db, else /var/lib/containerd when --root is the default)",
      ),
    )
    .addOption(new Option('--unpack-limit <size>', 'most bytes an archive root may unpack to (default 100× the archive, 256M to 16G)'))
    .option('--json', 'print exactly one JSON document (NDJSON for streams)', false)
    .option('--no-color', 'no colour (also NO_COLOR)');
  const word = commandWord(args);
  const group = word === undefined ? undefined : WORDS[word];
  const wanted = group === undefined ? Object.keys(GROUPS) : [group];
  const registers = await Promise.all(wanted.map((g) => GROUPS[g]!()));
  for (const r of registers) r(program, ctx);
  return program;
}

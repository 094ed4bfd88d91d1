import { Option, type Command } from 'commander';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { commandWords, keyValue, portKey } from '../formats/docker/imageconfig.js';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { parseLayerArg } from '../io/layertar.js';
import { inspectArchive, type ArchiveInfo } from '../ops/archivels.js';
import type { WrittenArchive } from '../ops/archivewrite.js';
import { edit, type EditOp } from '../ops/edit.js';
import { inject, type InjectResult } from '../ops/inject.js';
import { pack, type ConfigFlags, type PackImage } from '../ops/pack.js';
import type { Ctx, GlobalOpts } from './context.js';
import { withWritableStore } from '../ops/writable.js';
import { requireOutputDir } from '../io/atomic.js';
import { bytesHuman, emitJson, paint, warn } from './render.js';
import { shortId } from './storectx.js';
import { removeTree } from '../io/confined.js';

/**
 * pack, edit, inspect-archive (archive ls). `pack` and `edit` read their options in command-line
 * order (image groups, edits applied as given): each option is declared once in a table below,
 * commander parses it and reports every occurrence through its `option:<name>` event, and the
 * help is generated from the same table.
 */

interface OptSpec {
  /** Commander flags: `-o, --output <file>` or `--gzip`. */
  flags: string;
  help: string;
  /** The section of the help it belongs to. */
  group: string;
}

type Parsed = { name: string; value: string | undefined }[];

/** The help of --entrypoint and --cmd. */
const COMMAND_HELP = 'a JSON array, or words split like a shell ("" clears)';

/** The limits on a layer tar's decompressed size, the same for pack and edit. */
const LIMIT_OPTS: OptSpec[] = [
  { flags: '--max-ratio <n>', group: 'Output', help: 'refuse a layer tar that decompresses to more than n times its size (default 500)' },
  { flags: '--max-bytes <n>', group: 'Output', help: 'refuse a layer tar that decompresses to more than n bytes (default 100 GiB)' },
];

const PACK_OPTS: OptSpec[] = [
  { flags: '-o, --output <OUT.tar>', group: 'Output', help: 'the archive to write (replaced if it exists)' },
  {
    flags: '--format <docker|oci>',
    group: 'Output',
    help: 'docker: the docker save layout (manifest.json); oci: an OCI layout (index.json) with manifest.json too (default docker)',
  },
  { flags: '--gzip', group: 'Output', help: 'gzip the layers (oci only)' },
  { flags: '--mtime <SECONDS|DATE>', group: 'Output', help: 'time of every file and of the config (default SOURCE_DATE_EPOCH, else 0)' },
  { flags: '--keep-owner', group: 'Output', help: "keep files' uid/gid (default 0:0)" },
  {
    flags: '--into-root <R>',
    group: 'Output',
    help: 'also (or, without -o, only) write the images into the data-root R (global --driver names the driver of a root never started)',
  },
  ...LIMIT_OPTS,
  { flags: '--image', group: 'Per image', help: 'start the next image (options before the first --image make an image too; shared layers are stored once)' },
  {
    flags: '--layer <SRC[:DEST]>',
    group: 'Per image',
    help: "a file or directory as one layer, at DEST in the image (default: a directory's contents at /, a file at /NAME)",
  },
  { flags: '--layer-tar <FILE>', group: 'Per image', help: 'a layer tar (plain, gzip, zstd, bzip2 or xz)' },
  {
    flags: '--config-file <FILE>',
    group: 'Per image',
    help: "the config, byte for byte (its sha256 is the image ID; its diff_ids must be the layers'); excludes the flags below",
  },
  { flags: '-t, --tag <NAME:TAG>', group: 'Per image', help: 'repeatable' },
  { flags: '--entrypoint <CMD>', group: 'Per image', help: COMMAND_HELP },
  { flags: '--cmd <CMD>', group: 'Per image', help: COMMAND_HELP },
  { flags: '--env <K=V>', group: 'Per image', help: 'repeatable' },
  { flags: '--label <K=V>', group: 'Per image', help: 'repeatable' },
  { flags: '--expose <PORT[/PROTO]>', group: 'Per image', help: 'repeatable' },
  { flags: '--volume </PATH>', group: 'Per image', help: 'repeatable' },
  { flags: '--workdir <DIR>', group: 'Per image', help: 'the working directory' },
  { flags: '--user <USER>', group: 'Per image', help: 'the user' },
  { flags: '--stop-signal <SIG>', group: 'Per image', help: 'the stop signal' },
  { flags: '--arch <ARCH>', group: 'Per image', help: 'architecture (default amd64)' },
  { flags: '--os <OS>', group: 'Per image', help: 'operating system (default linux)' },
  { flags: '--variant <V>', group: 'Per image', help: 'architecture variant' },
  { flags: '--author <A>', group: 'Per image', help: 'author' },
  { flags: '--history <TEXT>', group: 'Per image', help: "created_by of the next layer's history entry" },
];

const EDIT_OPTS: OptSpec[] = [
  { flags: '--set-label <K=V>', group: 'Operations, applied in the order given', help: 'set a label' },
  { flags: '--rm-label <K>', group: 'Operations, applied in the order given', help: 'remove a label' },
  { flags: '--set-env <K=V>', group: 'Operations, applied in the order given', help: 'set an environment variable' },
  { flags: '--entrypoint <CMD>', group: 'Operations, applied in the order given', help: COMMAND_HELP },
  { flags: '--cmd <CMD>', group: 'Operations, applied in the order given', help: COMMAND_HELP },
  {
    flags: '--add-layer <TAR|DIR[:DEST]>',
    group: 'Operations, applied in the order given',
    help: 'a layer tar, or files as a new top layer (history entry added)',
  },
  { flags: '-t, --tag <NAME:TAG>', group: 'Operations, applied in the order given', help: 'add a tag' },
  { flags: '--untag <NAME:TAG>', group: 'Operations, applied in the order given', help: 'remove a tag' },
  { flags: '--squash', group: 'Operations, applied in the order given', help: 'all layers into one, whiteouts applied (like docker export | import)' },
  { flags: '-o, --output <OUT.tar>', group: 'Output', help: 'the new archive (must not be the input)' },
  { flags: '--format <docker|oci>', group: 'Output', help: "default: the input's (oci when it has index.json)" },
  { flags: '--image <REF|ID>', group: 'Output', help: 'which image of a multi-image archive to edit' },
  { flags: '--mtime <SECONDS|DATE>', group: 'Output', help: "time of new history entries and new layers' files (default 0)" },
  { flags: '--into-root <R>', group: 'Output', help: 'also (or, without -o, only) write the result into the data-root R' },
  ...LIMIT_OPTS,
];

/** The long name of a table entry: `--layer-tar`. */
function longOf(spec: OptSpec): string {
  return /--[a-z-]+/.exec(spec.flags)![0];
}

/**
 * Declares the table's options on a command and collects every occurrence in command-line order
 * (commander's `option:<name>` events); the help text lists them by group.
 */
function orderedOptions(cmd: Command, specs: OptSpec[]): Parsed {
  const seen: Parsed = [];
  for (const spec of specs) {
    const o = new Option(spec.flags, spec.help);
    o.helpGroup?.(spec.group);
    cmd.addOption(o);
    cmd.on(`option:${o.name()}`, (v: string | undefined) => seen.push({ name: longOf(spec), value: v }));
  }
  return seen;
}

const CONFIG_FLAGS = new Set([
  '--entrypoint',
  '--cmd',
  '--env',
  '--label',
  '--expose',
  '--workdir',
  '--user',
  '--volume',
  '--stop-signal',
  '--arch',
  '--os',
  '--variant',
  '--author',
  '--history',
]);

/** Seconds since the epoch: --mtime (seconds, or an ISO date), else SOURCE_DATE_EPOCH, else 0. */
function mtimeOf(v: string | undefined, env: NodeJS.ProcessEnv): number {
  const s = v ?? env['SOURCE_DATE_EPOCH'];
  if (s === undefined || s === '') return 0;
  const what = v !== undefined ? '--mtime' : 'SOURCE_DATE_EPOCH';
  if (/^\d+$/.test(s)) return Number(s);
  if (v !== undefined) {
    const t = Date.parse(s);
    if (Number.isFinite(t) && t >= 0) return Math.floor(t / 1000);
  }
  throw new DatarootError('USAGE_BAD_MTIME', `${what} ${JSON.stringify(s)}: use seconds since the epoch${v !== undefined ? ' or an ISO 8601 date' : ''}`);
}

function formatOf(v: string | undefined): 'docker' | 'oci' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'docker' && v !== 'oci') throw new DatarootError('USAGE_BAD_FORMAT', `--format ${JSON.stringify(v)}: use docker or oci`);
  return v;
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new DatarootError('USAGE_BAD_NUMBER', `${name} ${JSON.stringify(v)}: expected a positive number`);
  return n;
}

function checkTag(t: string): string {
  const r = parseReference(t);
  if (r === undefined || r.digest !== undefined) throw new DatarootError('USAGE_BAD_TAG', `--tag ${JSON.stringify(t)} is not a name:tag reference`);
  return t;
}

/** Options that set one string of the image config, as given. */
const CONFIG_STRINGS: Partial<Record<string, 'workdir' | 'user' | 'stopSignal' | 'architecture' | 'os' | 'variant' | 'author'>> = {
  '--workdir': 'workdir',
  '--user': 'user',
  '--stop-signal': 'stopSignal',
  '--arch': 'architecture',
  '--os': 'os',
  '--variant': 'variant',
  '--author': 'author',
};

function emptyConfig(): ConfigFlags {
  return { architecture: 'amd64', os: 'linux', env: [], labels: [], exposed: [], volumes: [] };
}

/** The options pack and edit share. */
interface Common {
  out: string | undefined;
  format: string | undefined;
  mtime: string | undefined;
  intoRoot: string | undefined;
  maxBytes: number;
  maxRatio: number;
}

function common(): Common {
  return { out: undefined, format: undefined, mtime: undefined, intoRoot: undefined, maxBytes: 100 * 2 ** 30, maxRatio: 500 };
}

/** Takes a shared option into `c`; false when `name` is not one. */
function takeCommon(c: Common, name: string, v: string, ctx: Ctx): boolean {
  switch (name) {
    case '--output':
      c.out = resolve(ctx.cwd, v);
      return true;
    case '--format':
      c.format = v;
      return true;
    case '--mtime':
      c.mtime = v;
      return true;
    case '--into-root':
      c.intoRoot = resolve(ctx.cwd, v);
      return true;
    case '--max-bytes':
      c.maxBytes = positive(name, v);
      return true;
    case '--max-ratio':
      c.maxRatio = positive(name, v);
      return true;
    default:
      return false;
  }
}

/** pack's options, in command-line order → images and options. */
export function parsePackArgs(
  opts: Parsed,
  ctx: Ctx,
): {
  out: string | undefined;
  format: 'docker' | 'oci';
  gzip: boolean;
  mtime: number;
  keepOwner: boolean;
  intoRoot: string | undefined;
  maxBytes: number;
  maxRatio: number;
  images: (PackImage & { configFlagsUsed: string[] })[];
} {
  const images: (PackImage & { configFlagsUsed: string[] })[] = [];
  const fresh = (): PackImage & { configFlagsUsed: string[] } => ({ layers: [], tags: [], config: emptyConfig(), history: [], configFlagsUsed: [] });
  let cur = fresh();
  let started = false;
  const c = common();
  let gzip = false;
  let keepOwner = false;
  for (const { name, value } of opts) {
    const v = value ?? '';
    if (CONFIG_FLAGS.has(name)) cur.configFlagsUsed.push(name);
    if (takeCommon(c, name, v, ctx)) continue;
    const field = CONFIG_STRINGS[name];
    if (field !== undefined) {
      cur.config[field] = v;
      continue;
    }
    switch (name) {
      case '--gzip':
        gzip = true;
        break;
      case '--keep-owner':
        keepOwner = true;
        break;
      case '--image':
        // Options before the first --image make an image of their own.
        if (started || cur.layers.length > 0 || cur.tags.length > 0 || cur.configFile !== undefined || cur.configFlagsUsed.length > 0) images.push(cur);
        cur = fresh();
        started = true;
        break;
      case '--layer': {
        const l = parseLayerArg('--layer', v.startsWith('/') ? v : resolve(ctx.cwd, v));
        cur.layers.push({ kind: 'files', sources: [l] });
        break;
      }
      case '--layer-tar':
        cur.layers.push({ kind: 'tar', path: resolve(ctx.cwd, v) });
        break;
      case '--config-file':
        cur.configFile = resolve(ctx.cwd, v);
        break;
      case '--tag':
        cur.tags.push(checkTag(v));
        break;
      case '--entrypoint':
        cur.config.entrypoint = commandWords(name, v);
        break;
      case '--cmd':
        cur.config.cmd = commandWords(name, v);
        break;
      case '--env':
        if (!v.includes('=')) throw new DatarootError('USAGE_BAD_KEY_VALUE', `--env ${JSON.stringify(v)}: use KEY=VALUE`);
        cur.config.env.push(v);
        break;
      case '--label':
        cur.config.labels.push(keyValue(name, v));
        break;
      case '--expose':
        portKey(v);
        cur.config.exposed.push(v);
        break;
      case '--volume':
        if (!v.startsWith('/')) throw new DatarootError('USAGE_BAD_VOLUME', `--volume ${JSON.stringify(v)}: an absolute path in the image`);
        cur.config.volumes.push(v);
        break;
      case '--history':
        cur.history.push(v);
        break;
    }
  }
  images.push(cur);
  for (const [i, img] of images.entries()) {
    const what = images.length > 1 ? `image ${i + 1}: ` : '';
    if (img.configFile !== undefined && img.configFlagsUsed.length > 0) {
      throw new DatarootError(
        'USAGE_CONFIG_CONFLICT',
        `${what}--config-file is used verbatim; ${img.configFlagsUsed[0]} cannot change it (edit the file, or drop --config-file)`,
      );
    }
    if (img.layers.length === 0 && img.configFile === undefined) throw new DatarootError('USAGE_NO_LAYERS', `${what}no --layer, --layer-tar or --config-file`);
  }
  const fmt = formatOf(c.format) ?? 'docker';
  if (gzip && fmt !== 'oci') throw new DatarootError('USAGE_GZIP_NEEDS_OCI', '--gzip compresses the layers of the OCI format: add --format oci');
  if (c.out === undefined && c.intoRoot === undefined)
    throw new DatarootError('USAGE_NO_OUTPUT', 'pack: name the archive with -o OUT.tar (or write into a data-root with --into-root R)');
  return {
    out: c.out,
    format: fmt,
    gzip,
    mtime: mtimeOf(c.mtime, ctx.env),
    keepOwner,
    intoRoot: c.intoRoot,
    maxBytes: c.maxBytes,
    maxRatio: c.maxRatio,
    images,
  };
}

/** edit's input and options, in command-line order → input, output and the operations in order. */
export function parseEditArgs(
  inputArg: string,
  opts: Parsed,
  ctx: Ctx,
): {
  input: string;
  out: string | undefined;
  format: 'docker' | 'oci' | undefined;
  mtime: number;
  image: string | undefined;
  intoRoot: string | undefined;
  maxBytes: number;
  maxRatio: number;
  ops: EditOp[];
} {
  const ops: EditOp[] = [];
  const c = common();
  let image: string | undefined;
  for (const { name, value } of opts) {
    const v = value ?? '';
    if (takeCommon(c, name, v, ctx)) continue;
    switch (name) {
      case '--image':
        image = v;
        break;
      case '--set-label': {
        const [key, val] = keyValue(name, v);
        ops.push({ op: 'set-label', key, value: val });
        break;
      }
      case '--rm-label':
        ops.push({ op: 'rm-label', key: v });
        break;
      case '--set-env':
        if (!v.includes('=')) throw new DatarootError('USAGE_BAD_KEY_VALUE', `--set-env ${JSON.stringify(v)}: use KEY=VALUE`);
        ops.push({ op: 'set-env', entry: v });
        break;
      case '--entrypoint':
        ops.push({ op: 'entrypoint', words: commandWords(name, v) });
        break;
      case '--cmd':
        ops.push({ op: 'cmd', words: commandWords(name, v) });
        break;
      case '--add-layer':
        ops.push({ op: 'add-layer', arg: v.startsWith('/') ? v : resolve(ctx.cwd, v) });
        break;
      case '--tag':
        ops.push({ op: 'tag', ref: checkTag(v) });
        break;
      case '--untag':
        ops.push({ op: 'untag', ref: checkTag(v) });
        break;
      case '--squash':
        ops.push({ op: 'squash' });
        break;
    }
  }
  const input = resolve(ctx.cwd, inputArg);
  if (!existsSync(input)) throw new DatarootError('ARCHIVE_NOT_FOUND', `${input} does not exist`, { file: input });
  if (c.out === undefined && c.intoRoot === undefined)
    throw new DatarootError('USAGE_NO_OUTPUT', 'edit: name the new archive with -o OUT.tar (or write into a data-root with --into-root R)');
  if (c.out !== undefined && c.out === input) throw new DatarootError('USAGE_OUTPUT_IS_INPUT', 'edit: -o must name a new file, not the input archive');
  return {
    input,
    out: c.out,
    format: formatOf(c.format),
    mtime: mtimeOf(c.mtime, ctx.env),
    image,
    intoRoot: c.intoRoot,
    maxBytes: c.maxBytes,
    maxRatio: c.maxRatio,
    ops,
  };
}

function renderWritten(ctx: Ctx, verb: string, r: WrittenArchive, onlyIds?: Set<string>): void {
  ctx.stdout.write(`${verb} ${r.path} (${r.format}, ${bytesHuman(r.size)})\n`);
  for (const img of r.images) {
    if (onlyIds !== undefined && !onlyIds.has(img.id)) continue;
    ctx.stdout.write(`  ${paint(ctx, 'bold', shortId(img.id))} ${img.tags.length > 0 ? img.tags.join(', ') : '<untagged>'}  ${img.id}\n`);
    for (const l of img.layers) ctx.stdout.write(`    ${l.diffId} ${bytesHuman(l.size)}${l.digest !== l.diffId ? ` (blob ${l.digest})` : ''}\n`);
  }
}

/** Writes an archive into a data-root with inject (the daemon lock held, as inject holds it). */
async function intoRoot(ctx: Ctx, g: GlobalOpts, root: string, archive: string): Promise<InjectResult> {
  return withWritableStore(
    { root, driver: g.driver },
    (store) => inject(store, { sources: [archive], tags: [], dryRun: false, maxRatio: 500, maxBytes: 100 * 2 ** 30 }),
    { create: true, lock: true },
  );
}

/** Runs a write of an archive, to -o or (through a temporary archive) into a data-root. */
async function produce<T extends WrittenArchive>(
  ctx: Ctx,
  g: GlobalOpts,
  out: string | undefined,
  root: string | undefined,
  write: (out: string) => Promise<T>,
): Promise<{ written: T; injected?: InjectResult }> {
  if (root !== undefined && existsSync(root) && statSync(root).isFile())
    throw new DatarootError('STORE_NOT_WRITABLE', `${root} is a file: --into-root names a data-root directory`, { file: root });
  if (out !== undefined) requireOutputDir(out);
  let tmp: string | undefined;
  const target = out ?? join((tmp = mkdtempSync(join(tmpdir(), 'dataroot-pack-'))), 'image.tar');
  try {
    const written = await write(target);
    if (root === undefined) return { written };
    try {
      return { written, injected: await intoRoot(ctx, g, root, target) };
    } catch (e) {
      if (out !== undefined && e instanceof DatarootError) {
        throw new DatarootError(e.code, `${e.message} (the archive ${out} was written; inject it again with dataroot inject)`, e.details);
      }
      throw e;
    }
  } finally {
    if (tmp !== undefined) removeTree(tmp);
  }
}

function renderInjected(ctx: Ctx, root: string, r: InjectResult): void {
  for (const img of r.images)
    ctx.stdout.write(
      `injected ${paint(ctx, 'bold', shortId(img.id))} ${img.tags.join(', ') || '<untagged>'} into ${root} (${img.layers.filter((l) => l.action === 'write').length} layers written)\n`,
    );
}

function renderArchive(ctx: Ctx, a: ArchiveInfo): void {
  ctx.stdout.write(`${a.path}: ${a.layouts.join(' + ')}, ${a.images.length} image${a.images.length === 1 ? '' : 's'}\n`);
  for (const p of a.problems) warn(ctx, `${p.code}: ${p.message}`);
  for (const img of a.images) {
    ctx.stdout.write(`\n${paint(ctx, 'bold', shortId(img.id))} ${img.tags.length > 0 ? img.tags.join(', ') : '<untagged>'}\n  id       ${img.id}\n`);
    if (img.manifestDigest !== undefined) ctx.stdout.write(`  manifest ${img.manifestDigest}${img.platform !== undefined ? ` (${img.platform})` : ''}\n`);
    ctx.stdout.write(`  created  ${img.created ?? '-'}  ${img.os ?? '?'}/${img.architecture ?? '?'}  ${img.history} history entries\n`);
    for (const [k, v] of Object.entries(img.config)) ctx.stdout.write(`  ${k.padEnd(12)} ${JSON.stringify(v)}\n`);
    ctx.stdout.write(`  layers (${img.layers.length}):\n`);
    for (const l of img.layers) {
      const facts = [
        l.compression !== 'none' ? l.compression : undefined,
        l.blobSize !== undefined ? `blob ${bytesHuman(l.blobSize)}` : undefined,
        l.size !== undefined ? `tar ${bytesHuman(l.size)}` : undefined,
        l.entries !== undefined ? `${l.entries} entries` : undefined,
      ]
        .filter((x) => x !== undefined)
        .join(', ');
      const mark = l.error !== undefined ? paint(ctx, 'red', '✗') : l.verified ? paint(ctx, 'green', '✓') : ' ';
      ctx.stdout.write(`   ${mark} ${l.diffId ?? '(no diffID)'}  ${l.member}  ${facts}\n`);
      if (l.error !== undefined) ctx.stdout.write(`     ${l.error}\n`);
    }
    for (const p of img.problems) warn(ctx, `${shortId(img.id)}: ${p.code}: ${p.message}`);
  }
}

const PACK_EXAMPLE = `
Each image is a group of options; --image starts the next one. Options are read in order.

Example: dataroot pack -o hello.tar --layer ./hello:/hello --layer ./site:/www \\
           --entrypoint /hello --expose 8080 -t hello:1
`;

export function registerPack(program: Command, ctx: Ctx): void {
  const packCmd = program
    .command('pack')
    .description('build an image archive (docker or OCI) from files, directories and layer tars, without a daemon, reproducibly')
    .addHelpText('after', PACK_EXAMPLE);
  const packOpts = orderedOptions(packCmd, PACK_OPTS);
  packCmd.action(async (_o: unknown, cmd: Command) => {
    const g = cmd.optsWithGlobals<GlobalOpts>();
    const p = parsePackArgs(packOpts, ctx);
    const { written, injected } = await produce(ctx, g, p.out, p.intoRoot, (out) =>
      pack({ out, format: p.format, gzip: p.gzip, mtime: p.mtime, keepOwner: p.keepOwner, images: p.images, maxBytes: p.maxBytes, maxRatio: p.maxRatio }),
    );
    if (g.json)
      emitJson(ctx, {
        ...(p.out !== undefined ? written : { images: written.images, format: written.format }),
        ...(injected !== undefined ? { injected } : {}),
      });
    else {
      if (p.out !== undefined) renderWritten(ctx, 'packed', written);
      if (injected !== undefined) renderInjected(ctx, p.intoRoot!, injected);
      for (const w of written.warnings) warn(ctx, w);
    }
  });

  const editCmd = program
    .command('edit')
    .description('change an image in an archive (labels, env, entrypoint, cmd, layers, tags, squash) and write a new archive')
    .argument('<input>', 'a docker save archive or OCI layout (tar or directory)');
  const editOpts = orderedOptions(editCmd, EDIT_OPTS);
  editCmd.action(async (input: string, _o: unknown, cmd: Command) => {
    const g = cmd.optsWithGlobals<GlobalOpts>();
    const p = parseEditArgs(input, editOpts, ctx);
    const { written, injected } = await produce(ctx, g, p.out, p.intoRoot, (out) =>
      edit({
        input: p.input,
        out,
        ops: p.ops,
        ...(p.image !== undefined ? { image: p.image } : {}),
        ...(p.format !== undefined ? { format: p.format } : {}),
        mtime: p.mtime,
        maxBytes: p.maxBytes,
        maxRatio: p.maxRatio,
      }),
    );
    if (g.json)
      emitJson(ctx, {
        ...(p.out !== undefined ? written : { images: written.images, format: written.format, before: written.before, after: written.after }),
        ...(injected !== undefined ? { injected } : {}),
      });
    else {
      ctx.stdout.write(
        `${written.before === written.after ? 'image ID unchanged' : 'new image ID'}: ${written.after}${written.before !== written.after ? ` (was ${written.before})` : ''}\n`,
      );
      if (p.out !== undefined) renderWritten(ctx, 'wrote', written, new Set([written.after]));
      if (injected !== undefined) renderInjected(ctx, p.intoRoot!, injected);
      for (const w of written.warnings) warn(ctx, w);
    }
  });

  const inspect = async (path: string, o: { layers: boolean }, cmd: Command): Promise<void> => {
    const g = cmd.optsWithGlobals<GlobalOpts>();
    const a = await inspectArchive(resolve(ctx.cwd, path), { layers: o.layers, maxBytes: 100 * 2 ** 30, maxRatio: 500 });
    const bad = a.problems.length > 0 || a.images.some((i) => i.problems.length > 0 || i.layers.some((l) => l.error !== undefined));
    if (bad) ctx.exitCode = 1;
    if (g.json) emitJson(ctx, a);
    else renderArchive(ctx, a);
  };
  program
    .command('inspect-archive')
    .description('list the images of an archive: tags, config summary, layers (diffID, sizes, entries, checked against the config)')
    .argument('<archive>', 'docker save archive or OCI layout (tar, tar.gz or directory)')
    .option('--no-layers', 'do not read the layers (no entry counts, no diffID check)')
    .action(inspect);
  program
    .command('archive')
    .description('image archives')
    .command('ls')
    .description('the same as inspect-archive')
    .argument('<archive>', 'docker save archive or OCI layout')
    .option('--no-layers', 'do not read the layers')
    .action(inspect);
}

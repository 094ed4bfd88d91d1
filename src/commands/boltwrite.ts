import { lstatSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { BoltEdit } from '../formats/bolt/edit.js';
import type { BoltFile } from '../formats/bolt/db.js';
import { MAX_VALUE_SIZE } from '../formats/bolt/write.js';
import { DatarootError } from '../formats/errors.js';
import { encodeUtf8, fromHex, toHex } from '../formats/bytes.js';
import { isFlockedAsync } from '../io/lock.js';
import { readRegularFile, readStreamBounded } from '../io/input.js';
import { beneathRoot } from '../io/rooted.js';
import { compactBolt, editBolt, loadBolt, probePath, type BoltWriteReport } from '../ops/boltwrite.js';
import { showKey } from '../store/boltdecode.js';
import { openRoot } from '../store/root.js';
import { fileArg, rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { emitJson, warn } from './render.js';

/**
 * The writing bolt commands: compact, put, delete, load. Each builds a complete new file with the
 * pure-TypeScript writer and renames it over the target (the old file is never modified in place);
 * put, delete and load refuse a file a running process holds locked.
 */

function parsePageSize(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 512 || n > 1 << 24 || (n & (n - 1)) !== 0) throw new InvalidArgumentError('a power of two from 512 to 16777216');
  return n;
}

function keyBytes(parts: string[], hex: boolean | undefined): Uint8Array[] {
  return parts.map((p) => {
    if (!hex) return encodeUtf8(p);
    const b = fromHex(p);
    if (b === undefined) throw new DatarootError('USAGE_BAD_HEX', `"${p}" is not hex`);
    return b;
  });
}

/** A file to write: absolute, or inside --root (a directory) when one is named, else from the working directory. */
function writeTarget(file: string, g: GlobalOpts, ctx: Ctx): string {
  const { root, explicit } = rootOf(g, ctx);
  if (!explicit || isAbsolute(file)) return fileArg(file, undefined, ctx);
  let dir: boolean;
  try {
    dir = statSync(root).isDirectory();
  } catch {
    throw new DatarootError('STORE_NOT_FOUND', `data-root ${root} does not exist`, { file: root });
  }
  if (!dir)
    throw new DatarootError('BOLT_ROOT_NOT_WRITABLE', `--root ${root} is not a directory: bolt writes go to a data-root directory (or give an absolute path)`, {
      file: root,
    });
  return beneathRoot(root, file);
}

function showPath(path: readonly Uint8Array[]): string {
  return path.map(showKey).join('/');
}

function summary(r: BoltWriteReport): string {
  return `${r.pages} pages of ${r.pageSize} bytes, ${r.size} bytes`;
}

function jsonReport<T extends BoltWriteReport>(r: T, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...r, ...extra };
}

interface PutOpts {
  hex?: boolean;
  valueFile?: string;
  parents?: boolean;
  bucket?: boolean;
}

interface DeleteOpts {
  hex?: boolean;
  bucket?: boolean;
}

async function valueOf(o: PutOpts, inline: string | undefined, ctx: Ctx): Promise<Uint8Array> {
  if (o.valueFile === undefined) {
    if (!o.hex) return encodeUtf8(inline!);
    const b = fromHex(inline!);
    if (b === undefined) throw new DatarootError('USAGE_BAD_HEX', `the value "${inline}" is not hex`);
    return b;
  }
  if (o.valueFile === '-') {
    if (ctx.stdin === undefined || ctx.stdin.isTTY === true)
      throw new DatarootError('USAGE_STDIN_IS_TTY', '--value-file -: give the value on standard input (a pipe or a file)');
    return readStreamBounded(ctx.stdin, MAX_VALUE_SIZE, 'the value on standard input');
  }
  return readRegularFile(resolve(ctx.cwd, o.valueFile), MAX_VALUE_SIZE, 'value file');
}

const globals = (cmd: Command): GlobalOpts => cmd.optsWithGlobals<GlobalOpts>();

/** `dataroot bolt compact`. */
function addCompact(bolt: Command, ctx: Ctx): void {
  bolt
    .command('compact')
    .argument('<src>')
    .requiredOption('-o, --output <file>', 'the new file (relative to the working directory)')
    .option('--page-size <bytes>', "page size of the new file (default: the source's)", parsePageSize)
    .option('--force', 'replace an existing output file', false)
    .description('a compacted copy, packed as bbolt compact packs it (full pages, inline buckets, empty freelist); the source is only read')
    .action(async (src: string, o: { output: string; pageSize?: number; force: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const dst = resolve(ctx.cwd, o.output);
      const { root, explicit } = rootOf(g, ctx);
      let close = (): void => {};
      let base: string | undefined;
      if (explicit && !isAbsolute(src)) {
        const r = await openRoot(root, rootOptions(g, ctx));
        base = r.dir;
        close = r.close;
      }
      try {
        // a file of the root: no symlink followed out of it, the file itself included
        const path = base !== undefined ? beneathRoot(base, src) : fileArg(src, undefined, ctx);
        if (base !== undefined && lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) {
          throw new DatarootError('SYMLINK_NOT_FOLLOWED', `${src} is a symbolic link inside the data-root: not followed`, { file: src });
        }
        const live = isFlockedAsync(path);
        const r = await compactBolt(path, dst, { ...(o.pageSize !== undefined ? { pageSize: o.pageSize } : {}), force: o.force });
        if (await live) warn(ctx, `${src} is locked by a running process (a daemon): the copy of a live file may be inconsistent`);
        if (g.json) return emitJson(ctx, jsonReport(r, { source: src, file: o.output }));
        const gain = r.sourceSize! / r.size;
        ctx.stdout.write(`${r.sourceSize} -> ${r.size} bytes (gain=${gain.toFixed(2)}x): ${o.output}, ${summary(r)}\n`);
      } finally {
        close();
      }
    });
}

/** `dataroot bolt put`. */
function addPut(bolt: Command, ctx: Ctx): void {
  bolt
    .command('put')
    .argument('<file>')
    .argument('<args...>', 'bucket path, key, then the value (no value with --value-file or --bucket)')
    .option('--value-file <file>', 'the value is the content of this regular file ("-": standard input)')
    .option('--hex', 'bucket names, key and value are given in hex')
    .option('-p, --parents', 'create missing buckets along the path (sequence 0), like mkdir -p')
    .option('--bucket', 'create an empty bucket named KEY instead of setting a value')
    .description('sets one value (or creates a bucket) and rewrites the file; refused while a process holds the file locked')
    .action(async (file: string, args: string[], o: PutOpts, cmd: Command) => {
      const g = globals(cmd);
      if (o.bucket && o.valueFile !== undefined) throw new DatarootError('USAGE_CONFLICTING_OPTIONS', '--bucket creates a bucket; it takes no --value-file');
      let inline: string | undefined;
      let names = args;
      if (!o.bucket && o.valueFile === undefined) {
        if (args.length < 3)
          throw new DatarootError('USAGE_MISSING_VALUE', 'give a bucket path, a key and a value (or --value-file F; values live in buckets)');
        inline = args[args.length - 1];
        names = args.slice(0, -1);
      }
      const bytes = keyBytes(names, o.hex);
      const key = bytes[bytes.length - 1]!;
      const path = bytes.slice(0, -1);
      if (!o.bucket && path.length === 0) {
        throw new DatarootError(
          'USAGE_MISSING_BUCKET',
          'a value needs a bucket path: bbolt keeps only buckets at the top level (or give --bucket to create one)',
        );
      }
      const value = o.bucket ? undefined : await valueOf(o, inline, ctx);
      const target = writeTarget(file, g, ctx);
      let created: Uint8Array[] = [];
      let replaced = false;
      const r = await editBolt(target, (db: BoltFile): BoltEdit[] => {
        const p = probePath(db, path, key);
        if (p.notBucket >= 0) throw new DatarootError('BOLT_NOT_A_BUCKET', `${showPath(path.slice(0, p.notBucket + 1))} holds a value, not a bucket`, { file });
        const edits: BoltEdit[] = [];
        if (p.missing >= 0) {
          if (!o.parents)
            throw new DatarootError(
              'BOLT_BUCKET_NOT_FOUND',
              `bucket not found: ${showPath(path.slice(0, p.missing + 1))} (give -p to create missing buckets)`,
              { file },
            );
          created = path.slice(p.missing);
          for (let i = p.missing; i < path.length; i++) edits.push({ op: 'bucket', path: path.slice(0, i), key: path[i]! });
        } else if (o.bucket && p.target.kind !== 'absent') {
          throw new DatarootError(
            p.target.kind === 'bucket' ? 'BOLT_BUCKET_EXISTS' : 'BOLT_KEY_EXISTS',
            `${showPath([...path, key])} already exists${p.target.kind === 'value' ? ' as a value' : ''}`,
            { file },
          );
        } else if (p.target.kind === 'bucket') {
          throw new DatarootError('BOLT_KEY_IS_BUCKET', `${showPath([...path, key])} is a bucket, not a value`, { file });
        }
        replaced = p.target.kind === 'value';
        edits.push(o.bucket ? { op: 'bucket', path, key } : { op: 'put', path, key, value: value! });
        return edits;
      });
      const where = `${showPath([...path, key])}${o.hex ? ` (hex ${[...path, key].map(toHex).join('/')})` : ''}`;
      if (g.json)
        return emitJson(
          ctx,
          jsonReport(r, {
            file,
            path: names.slice(0, -1),
            key: names[names.length - 1],
            bucket: o.bucket === true,
            replaced,
            createdBuckets: created.map(showKey),
          }),
        );
      const what = o.bucket ? 'created bucket' : replaced ? 'replaced' : 'put';
      const extra = created.length > 0 && !o.bucket ? ` (created buckets ${created.map(showKey).join('/')})` : '';
      ctx.stdout.write(`${what} ${where}${extra}: ${file} rewritten, ${summary(r)}\n`);
    });
}

/** `dataroot bolt delete`. */
function addDelete(bolt: Command, ctx: Ctx): void {
  bolt
    .command('delete')
    .argument('<file>')
    .argument('<path...>', 'bucket path, then the key')
    .option('--hex', 'bucket names and key are given in hex')
    .option('--bucket', 'KEY is a bucket: delete it and everything in it')
    .description('deletes one key (or a bucket with --bucket) and rewrites the file; refused while a process holds the file locked')
    .action(async (file: string, names: string[], o: DeleteOpts, cmd: Command) => {
      const g = globals(cmd);
      const bytes = keyBytes(names, o.hex);
      const key = bytes[bytes.length - 1]!;
      const path = bytes.slice(0, -1);
      const target = writeTarget(file, g, ctx);
      const r = await editBolt(target, (db: BoltFile): BoltEdit[] => {
        const p = probePath(db, path, key);
        if (p.notBucket >= 0) throw new DatarootError('BOLT_NOT_A_BUCKET', `${showPath(path.slice(0, p.notBucket + 1))} holds a value, not a bucket`, { file });
        if (p.missing >= 0) throw new DatarootError('BOLT_BUCKET_NOT_FOUND', `bucket not found: ${showPath(path.slice(0, p.missing + 1))}`, { file });
        const t = p.target;
        if (t.kind === 'absent') throw new DatarootError('BOLT_KEY_NOT_FOUND', `key not found: ${showPath([...path, key])}`, { file });
        if (t.kind === 'bucket' && !o.bucket)
          throw new DatarootError('BOLT_KEY_IS_BUCKET', `${showPath([...path, key])} is a bucket: give --bucket to delete it with everything in it`, { file });
        if (t.kind === 'value' && o.bucket) throw new DatarootError('BOLT_NOT_A_BUCKET', `${showPath([...path, key])} is a value, not a bucket`, { file });
        return [o.bucket ? { op: 'deleteBucket', path, key } : { op: 'delete', path, key }];
      });
      if (g.json) return emitJson(ctx, jsonReport(r, { file, path: names.slice(0, -1), key: names[names.length - 1], bucket: o.bucket === true }));
      ctx.stdout.write(`deleted ${o.bucket ? 'bucket ' : ''}${showPath([...path, key])}: ${file} rewritten, ${summary(r)}\n`);
    });
}

/** `dataroot bolt load`. */
function addLoad(bolt: Command, ctx: Ctx): void {
  bolt
    .command('load')
    .argument('<file>')
    .option('--page-size <bytes>', "page size (default: the existing file's, else this machine's)", parsePageSize)
    .description('builds FILE from an NDJSON dump on standard input (bolt dump --format ndjson), in any order; an existing FILE is replaced')
    .action(async (file: string, o: { pageSize?: number }, cmd: Command) => {
      const g = globals(cmd);
      if (ctx.stdin === undefined || ctx.stdin.isTTY === true) {
        throw new DatarootError('USAGE_STDIN_IS_TTY', 'give the dump on standard input: dataroot bolt load FILE < dump.ndjson');
      }
      const target = writeTarget(file, g, ctx);
      const r = await loadBolt(target, ctx.stdin, o.pageSize !== undefined ? { pageSize: o.pageSize } : {});
      if (g.json) return emitJson(ctx, jsonReport(r, { file }));
      ctx.stdout.write(`loaded ${r.records} records (${r.keys} keys, ${r.buckets} buckets) into ${file}, ${summary(r)}\n`);
    });
}

export function registerBoltWrite(bolt: Command, ctx: Ctx): void {
  addCompact(bolt, ctx);
  addPut(bolt, ctx);
  addDelete(bolt, ctx);
  addLoad(bolt, ctx);
}

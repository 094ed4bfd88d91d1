import { Command, InvalidArgumentError, Option } from 'commander';
import { BoltFile, isBucketEntry, type Page } from '../formats/bolt/db.js';
import { checkBolt, type CheckProblem } from '../formats/bolt/check.js';
import { dbStats, goPercent, type BucketStats } from '../formats/bolt/stats.js';
import { FLAG_BRANCH, FLAG_FREELIST, FLAG_LEAF, FLAG_META, pageTypeName } from '../formats/bolt/constants.js';
import { decodeMeta, hasFreelist } from '../formats/bolt/meta.js';
import { DatarootError } from '../formats/errors.js';
import { encodeUtf8, fromHex, printableText, toHex } from '../formats/bytes.js';
import { isFlockedAsync } from '../io/lock.js';
import { openBolt, openBoltIn, type OpenBolt } from '../store/bolt.js';
import { pathParts } from '../io/confined.js';
import type { FileSourceOptions } from '../io/pagesource.js';
import { readWindowsSync } from '../io/windows.js';
import { decodeDockerValue, showKey, showValue, VALUE_MODES, type ValueMode } from '../store/boltdecode.js';
import { openRoot } from '../store/root.js';
import { ChunkWriter, diffBolt, dumpNdjson, dumpTree, MAX_TREE_DEPTH, requireBucket, type BoltChange } from '../ops/bolt.js';
import { fileArg, rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { emitJson, paint, warn } from './render.js';
import { registerBoltWrite } from './boltwrite.js';

interface PathOpts {
  hex?: boolean;
}

function toKeyBytes(parts: string[], hex: boolean | undefined): Uint8Array[] {
  return parts.map((p) => {
    if (!hex) return encodeUtf8(p);
    const b = fromHex(p);
    if (b === undefined) throw new DatarootError('USAGE_BAD_HEX', `"${p}" is not hex`);
    return b;
  });
}

/**
 * Opens the file argument: relative paths are inside --root when a root was named (a directory or an
 * archive), else relative to the working directory. A live file (locked by a daemon) is read anyway,
 * with a warning.
 */
async function withBolt<T>(
  file: string,
  g: GlobalOpts,
  ctx: Ctx,
  fn: (b: OpenBolt, live: Promise<boolean>) => T | Promise<T>,
  source: FileSourceOptions = {},
): Promise<T> {
  const { root, explicit } = rootOf(g, ctx);
  let close = (): void => {};
  let b: OpenBolt | undefined;
  let path: string;
  try {
    if (explicit && !file.startsWith('/')) {
      // A file of the root: read through its confined layer (no symlink followed out, no FIFO opened).
      const r = await openRoot(root, rootOptions(g, ctx));
      close = r.close;
      let rel: string;
      try {
        rel = pathParts(file).join('/');
      } catch {
        throw new DatarootError('USAGE_PATH_OUTSIDE_ROOT', `${file} is outside the data-root`, { file });
      }
      path = r.fs.abs(rel);
      b = openBoltIn(r.fs, rel, source);
      if (b === undefined) throw new DatarootError('IO_NOT_FOUND', `${file} does not exist`, { file });
    } else {
      path = fileArg(file, undefined, ctx);
      b = openBolt(path, source);
    }
    // Asked in the background while the command reads; the warning follows the output.
    const live = isFlockedAsync(path);
    const result = await fn(b, live);
    if (await live) warn(ctx, `${file} is locked by a running process (a daemon): reads of a live file may be inconsistent`);
    return result;
  } finally {
    b?.close();
    close();
  }
}

/** Scan window of `bolt stats`: small enough to stay in the CPU cache between the read and the scan (256 KiB to 4 MiB measured alike on the bench file; 8 MiB was slower). */
const SCAN_WINDOW = 256 << 10;

function fmtAuto(b: Uint8Array): string {
  return printableText(b) ?? toHex(b);
}

export function renderPages(db: BoltFile): string {
  const free = new Set(db.freePages());
  let s = 'ID       TYPE       ITEMS  OVRFLW\n======== ========== ====== ======\n';
  for (let id = 0; id < db.hwm;) {
    if (free.has(id)) {
      s += `${String(id).padEnd(8)} ${'free'.padEnd(10)} ${''.padEnd(6)} ${''.padEnd(6)}\n`;
      id++;
      continue;
    }
    const h = db.header(id);
    const items = h.flags === FLAG_FREELIST || h.flags === FLAG_BRANCH || h.flags === FLAG_LEAF || h.flags === FLAG_META ? String(h.count) : String(h.count);
    s += `${String(id).padEnd(8)} ${pageTypeName(h.flags).padEnd(10)} ${items.padEnd(6)} ${(h.overflow > 0 ? String(h.overflow) : '').padEnd(6)}\n`;
    id += 1 + h.overflow;
  }
  return s;
}

function goQuote(b: Uint8Array): string {
  return JSON.stringify(new TextDecoder().decode(b));
}

export function renderPage(db: BoltFile, id: number, valueMode: 'auto' | 'hex'): string {
  if (id >= db.hwm) throw new DatarootError('BOLT_PAGE_OUT_OF_RANGE', `page ${id} is beyond the high-water mark ${db.hwm}`, { page: id });
  const p: Page = db.page(id);
  let s = `Page ID:    ${id}\nPage Type:  ${pageTypeName(p.flags)}\nTotal Size: ${p.bytes.length} bytes\nOverflow pages: ${p.overflow}\n`;
  switch (p.flags) {
    case FLAG_META: {
      const m = decodeMeta(p.bytes);
      s += `Version:    ${m.version}\nPage Size:  ${m.pageSize} bytes\nFlags:      ${m.flags.toString(16).padStart(8, '0')}\nRoot:       <pgid=${m.root}>\nFreelist:   <pgid=${m.freelist}>\nHWM:        <pgid=${m.pgid}>\nTxn ID:     ${m.txid}\nChecksum:   ${m.checksum.toString(16).padStart(16, '0')}\n\n`;
      break;
    }
    case FLAG_LEAF: {
      s += `Item Count: ${p.count}\n\n`;
      for (let i = 0; i < p.count; i++) {
        const e = db.leafEntry(p, i);
        const k = printableText(e.key) !== undefined ? goQuote(e.key) : toHex(e.key);
        let v: string;
        if (isBucketEntry(e)) {
          const dv = new DataView(e.value.buffer, e.value.byteOffset, e.value.byteLength);
          v = e.value.length >= 16 ? `<pgid=${dv.getBigUint64(0, true)},seq=${dv.getBigUint64(8, true)}>` : toHex(e.value);
        } else v = valueMode === 'hex' ? toHex(e.value) : fmtAuto(e.value);
        s += `${k}: ${v}\n`;
      }
      s += '\n';
      break;
    }
    case FLAG_BRANCH: {
      s += `Item Count: ${p.count}\n\n`;
      for (let i = 0; i < p.count; i++) {
        const e = db.branchEntry(p, i);
        const k = printableText(e.key) !== undefined ? goQuote(e.key) : toHex(e.key);
        s += `${k}: <pgid=${e.pgidBig}>\n`;
      }
      s += '\n';
      break;
    }
    case FLAG_FREELIST: {
      let count = p.count;
      let start = 16;
      if (count === 0xffff) {
        count = Number(p.view.getBigUint64(16, true));
        start = 24;
      }
      if (start + count * 8 > p.bytes.length)
        throw new DatarootError('BOLT_CORRUPT', `freelist page ${id} claims ${count} ids, more than it holds`, { page: id });
      s += `Item Count: ${count}\nOverflow: ${p.overflow}\n\n`;
      for (let i = 0; i < count; i++) s += `${p.view.getBigUint64(start + 8 * i, true)}\n`;
      s += '\n';
      break;
    }
    default:
      break;
  }
  return s;
}

export function renderStats(buckets: number, st: BucketStats): string {
  return [
    `Aggregate statistics for ${buckets} buckets`,
    '',
    'Page count statistics',
    `\tNumber of logical branch pages: ${st.BranchPageN}`,
    `\tNumber of physical branch overflow pages: ${st.BranchOverflowN}`,
    `\tNumber of logical leaf pages: ${st.LeafPageN}`,
    `\tNumber of physical leaf overflow pages: ${st.LeafOverflowN}`,
    'Tree statistics',
    `\tNumber of keys/value pairs: ${st.KeyN}`,
    `\tNumber of levels in B+tree: ${st.Depth}`,
    'Page size utilization',
    `\tBytes allocated for physical branch pages: ${st.BranchAlloc}`,
    `\tBytes actually used for branch data: ${st.BranchInuse} (${goPercent(st.BranchInuse, st.BranchAlloc)}%)`,
    `\tBytes allocated for physical leaf pages: ${st.LeafAlloc}`,
    `\tBytes actually used for leaf data: ${st.LeafInuse} (${goPercent(st.LeafInuse, st.LeafAlloc)}%)`,
    'Bucket statistics',
    `\tTotal number of buckets: ${st.BucketN}`,
    `\tTotal number on inlined buckets: ${st.InlineBucketN} (${goPercent(st.InlineBucketN, st.BucketN)}%)`,
    `\tBytes used for inlined buckets: ${st.InlineBucketInuse} (${goPercent(st.InlineBucketInuse, st.LeafInuse)}%)`,
    '',
  ].join('\n');
}

export function renderCheck(problems: CheckProblem[]): string {
  if (problems.length === 0) return 'OK\n';
  return `${problems.map((p) => p.message).join('\n')}\n${problems.length} errors found\n`;
}

function renderChange(c: BoltChange): string {
  const where = [...c.path, c.key].join(' / ');
  const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
  if (c.change === 'added') return `+ ${where}${c.bucket ? ' (bucket)' : ` = ${show(c.right)}`}`;
  if (c.change === 'removed') return `- ${where}${c.bucket ? ' (bucket)' : ` = ${show(c.left)}`}`;
  return `~ ${where}\n    - ${show(c.left)}\n    + ${show(c.right)}`;
}

function parseValueMode(v: string): ValueMode {
  if (!(VALUE_MODES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${VALUE_MODES.join(', ')}`);
  return v as ValueMode;
}

function parsePageId(v: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new DatarootError('USAGE_BAD_PAGE_ID', `page id "${v}" is not a non-negative integer`);
  return Number(v);
}

const globals = (cmd: Command): GlobalOpts => cmd.optsWithGlobals<GlobalOpts>();
const hexOpt = (): Option => new Option('--hex', 'bucket names and keys are given in hex');

/** `dataroot bolt info`. */
function addInfo(bolt: Command, ctx: Ctx): void {
  bolt
    .command('info')
    .argument('<file>')
    .description('page size, selected meta, high-water mark, freelist')
    .action(async (file: string, _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(file, g, ctx, async (b, liveP) => {
        const live = await liveP;
        const db = b.db;
        const m = db.meta;
        const r = {
          file,
          pageSize: db.pageSize,
          fileSize: b.source.size,
          kind: b.kind,
          live,
          meta: db.metaIndex,
          txid: m.txid,
          root: m.root,
          freelist: hasFreelist(m) ? m.freelist : null,
          highWaterMark: db.hwm,
          pagesInFile: db.pagesInFile,
          metas: db.metas.map((x, i) => ({ page: i, txid: x?.txid, valid: x?.problem === undefined, problem: x?.problem ?? null })),
        };
        if (g.json) return emitJson(ctx, r);
        ctx.stdout.write(
          `Page Size: ${r.pageSize}\nFile Size: ${r.fileSize}\nKind: ${r.kind}\nMeta: page ${r.meta} (txid ${r.txid})\nRoot: <pgid=${r.root}>\nFreelist: ${r.freelist === null ? 'not persisted (NoFreelistSync)' : `<pgid=${r.freelist}>`}\nHWM: <pgid=${r.highWaterMark}> (${r.pagesInFile} pages in file)\n` +
            r.metas.map((x) => `Meta ${x.page}: txid ${x.txid} ${x.valid ? 'valid' : `INVALID (${x.problem})`}`).join('\n') +
            '\n',
        );
      });
    });
}

/** `dataroot bolt buckets`. */
function addBuckets(bolt: Command, ctx: Ctx): void {
  bolt
    .command('buckets')
    .argument('<file>')
    .description('top-level buckets')
    .action(async (file: string, _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(file, g, ctx, (b) => {
        const names: string[] = [];
        b.db.forEachEntry(b.db.rootBucket(), b.db.newSeen(), (e) => {
          if (isBucketEntry(e)) names.push(showKey(e.key));
        });
        if (g.json) emitJson(ctx, names);
        else ctx.stdout.write(names.map((n) => `${n}\n`).join(''));
      });
    });
}

/** `dataroot bolt keys`. */
function addKeys(bolt: Command, ctx: Ctx): void {
  bolt
    .command('keys')
    .argument('<file>')
    .argument('<bucket...>', 'bucket path')
    .addOption(hexOpt())
    .description('keys of a bucket (sub-bucket names included)')
    .action(async (file: string, path: string[], o: PathOpts, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(file, g, ctx, (b) => {
        const ref = requireBucket(b.db, toKeyBytes(path, o.hex));
        const keys: { key: string; bucket: boolean }[] = [];
        b.db.forEachEntry(ref, b.db.newSeen(), (e) => keys.push({ key: fmtAuto(e.key), bucket: isBucketEntry(e) }));
        if (g.json) emitJson(ctx, keys);
        else ctx.stdout.write(keys.map((k) => `${k.key}\n`).join(''));
      });
    });
}

/** `dataroot bolt get`. */
function addGet(bolt: Command, ctx: Ctx): void {
  bolt
    .command('get')
    .argument('<file>')
    .argument('<path...>', 'bucket path, then the key')
    .addOption(hexOpt())
    .addOption(new Option('--values <mode>', 'auto | hex | base64 | utf8 | json | redacted').argParser(parseValueMode).default('auto'))
    .option('--raw', 'no Docker-aware decoding; print the bytes as text or hex', false)
    .description('the value of one key')
    .action(async (file: string, parts: string[], o: PathOpts & { values: ValueMode; raw: boolean }, cmd: Command) => {
      const g = globals(cmd);
      if (parts.length < 2) throw new DatarootError('USAGE_MISSING_KEY', 'give a bucket path and a key');
      await withBolt(file, g, ctx, (b) => {
        const bytes = toKeyBytes(parts, o.hex);
        const key = bytes[bytes.length - 1]!;
        const ref = requireBucket(b.db, bytes.slice(0, -1));
        const e = b.db.lookup(ref, key);
        if (e === undefined || isBucketEntry(e)) {
          throw new DatarootError('BOLT_KEY_NOT_FOUND', `key not found: ${showKey(key)} (hex ${toHex(key)})${e !== undefined ? ' is a bucket' : ''}`, { file });
        }
        const pathText = parts.slice(0, -1);
        const shown = !o.raw && o.values === 'auto' ? decodeDockerValue(b.kind, pathText, showKey(key), e.value) : showValue(e.value, o.values);
        if (g.json) return emitJson(ctx, { path: pathText, key: showKey(key), value: shown });
        ctx.stdout.write(typeof shown === 'string' ? `${shown}\n` : `${JSON.stringify(shown, null, 2)}\n`);
      });
    });
}

/** `dataroot bolt dump`. */
function addDump(bolt: Command, ctx: Ctx): void {
  bolt
    .command('dump')
    .argument('<file>')
    .argument('[bucket...]', 'start at this bucket path')
    .addOption(hexOpt())
    .addOption(new Option('--format <format>', 'json | ndjson').choices(['json', 'ndjson']).default('json'))
    .addOption(new Option('--values <mode>', 'auto | hex | base64 | utf8 | json | redacted').argParser(parseValueMode).default('auto'))
    .option('--raw', 'no Docker-aware decoding', false)
    .description(
      `every bucket and key; ndjson is one hex record per entry, depth-first in key order, at any depth; json is a tree of at most ${MAX_TREE_DEPTH} nested levels`,
    )
    .action(async (file: string, path: string[], o: PathOpts & { format: string; values: ValueMode; raw: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(
        file,
        g,
        ctx,
        (b) => {
          const bytes = toKeyBytes(path, o.hex);
          const start = requireBucket(b.db, bytes);
          if (o.format === 'ndjson') {
            dumpNdjson(b.db, new ChunkWriter((c) => ctx.stdout.write(c)), start, bytes);
            return;
          }
          const tree = dumpTree(b.db, { values: o.values, docker: !o.raw, kind: b.kind }, start, path);
          emitJson(ctx, { file, kind: b.kind, pageSize: b.db.pageSize, txid: b.db.meta.txid, ...tree });
        },
        o.format === 'ndjson' ? { recycle: true, chunkSize: 512 << 10, maxChunks: 4 } : {},
      );
    });
}

/** `dataroot bolt pages`. */
function addPages(bolt: Command, ctx: Ctx): void {
  bolt
    .command('pages')
    .argument('<file>')
    .description("every page: id, type, items, overflow (bbolt's pages table)")
    .action(async (file: string, _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(file, g, ctx, (b) => {
        if (!g.json) return void ctx.stdout.write(renderPages(b.db));
        const free = new Set(b.db.freePages());
        const rows: { id: number; type: string; items: number | null; overflow: number }[] = [];
        for (let id = 0; id < b.db.hwm;) {
          if (free.has(id)) {
            rows.push({ id, type: 'free', items: null, overflow: 0 });
            id++;
          } else {
            const h = b.db.header(id);
            rows.push({ id, type: pageTypeName(h.flags), items: h.count, overflow: h.overflow });
            id += 1 + h.overflow;
          }
        }
        emitJson(ctx, rows);
      });
    });
}

/** `dataroot bolt page`. */
function addPage(bolt: Command, ctx: Ctx): void {
  bolt
    .command('page')
    .argument('<file>')
    .argument('<pageid...>')
    .addOption(new Option('--format-value <mode>', 'auto | hex').choices(['auto', 'hex']).default('auto'))
    .description('one or more pages in detail (elements, meta fields, freelist ids)')
    .action(async (file: string, ids: string[], o: { formatValue: 'auto' | 'hex' }, cmd: Command) => {
      const g = globals(cmd);
      const pageIds = ids.map(parsePageId);
      await withBolt(file, g, ctx, (b) => {
        const text = pageIds.map((id) => renderPage(b.db, id, o.formatValue)).join('===============================================\n');
        if (g.json) emitJson(ctx, { pages: pageIds, text });
        else ctx.stdout.write(text);
      });
    });
}

/** `dataroot bolt stats`. */
function addStats(bolt: Command, ctx: Ctx): void {
  bolt
    .command('stats')
    .argument('<file>')
    .argument('[prefix]', 'only top-level buckets whose name starts with this')
    .description('page counts by kind, bytes used and allocated, depth, inline buckets, keys (every page visited)')
    .action(async (file: string, prefix: string | undefined, _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(file, g, ctx, async (b) => {
        // One sequential pass over the file builds the page index.
        const windowBytes = Math.max(b.db.pageSize, Math.floor(SCAN_WINDOW / b.db.pageSize) * b.db.pageSize);
        const r = await dbStats(b.db, encodeUtf8(prefix ?? ''), readWindowsSync(b.source.path, b.db.hwm * b.db.pageSize, windowBytes));
        if (!g.json) return void ctx.stdout.write(renderStats(r.buckets, r.stats));
        const free = b.db.freePages().length;
        emitJson(ctx, { buckets: r.buckets, ...r.stats, pageSize: b.db.pageSize, freePages: free, freeBytes: free * b.db.pageSize, highWaterMark: b.db.hwm });
      });
    });
}

/** `dataroot bolt check`. */
function addCheck(bolt: Command, ctx: Ctx): void {
  bolt
    .command('check')
    .argument('<file>')
    .description("bbolt's consistency check: every problem with its page id, then 'N errors found' (exit 1) or OK")
    .action(async (file: string, _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(file, g, ctx, (b) => {
        const problems = checkBolt(b.db);
        if (g.json) emitJson(ctx, { file, ok: problems.length === 0, errors: problems });
        else ctx.stdout.write(renderCheck(problems));
        if (problems.length > 0) ctx.exitCode = 1;
      });
    });
}

/** `dataroot bolt diff`. */
function addDiff(bolt: Command, ctx: Ctx): void {
  bolt
    .command('diff')
    .argument('<a>')
    .argument('<b>')
    .option('--raw', 'no Docker-aware decoding', false)
    .description('key-level differences of two files, nested buckets included; exit 1 when they differ')
    .action(async (a: string, bfile: string, o: { raw: boolean }, cmd: Command) => {
      const g = globals(cmd);
      await withBolt(a, g, ctx, async (left) =>
        withBolt(bfile, g, ctx, (right) => {
          const changes = diffBolt({ db: left.db, kind: left.kind }, { db: right.db, kind: right.kind }, !o.raw);
          if (g.json) emitJson(ctx, { a, b: bfile, equal: changes.length === 0, changes });
          else if (changes.length === 0) ctx.stdout.write('no differences\n');
          else ctx.stdout.write(`${changes.map(renderChange).join('\n')}\n${paint(ctx, 'bold', `${changes.length} differences`)}\n`);
          if (changes.length > 0) ctx.exitCode = 1;
        }),
      );
    });
}

export function registerBolt(program: Command, ctx: Ctx): void {
  const bolt = program
    .command('bolt')
    .description('BoltDB (bbolt) files in pure TypeScript: reads never lock or write; compact, put, delete and load write a new file and rename it into place');
  addInfo(bolt, ctx);
  addBuckets(bolt, ctx);
  addKeys(bolt, ctx);
  addGet(bolt, ctx);
  addDump(bolt, ctx);
  addPages(bolt, ctx);
  addPage(bolt, ctx);
  addStats(bolt, ctx);
  addCheck(bolt, ctx);
  addDiff(bolt, ctx);
  registerBoltWrite(bolt, ctx);
}

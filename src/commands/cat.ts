import type { Command } from 'commander';
import { gunzipSync } from 'node:zlib';
import { DatarootError } from '../formats/errors.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { LIMITS, pathParts } from '../io/confined.js';
import { withRoot } from '../store/root.js';
import { rootOf, rootOptions, type Ctx, type GlobalOpts } from './context.js';
import { emitJson, safeText } from './render.js';

interface CatOptions {
  raw: boolean;
  l: boolean;
}

const MAX_CAT = LIMITS.cat;

export interface CatResult {
  path: string;
  kind: 'json' | 'gzip' | 'text' | 'binary';
  /** Parsed JSON (json kind), or text. */
  content: unknown;
}

function decode(bytes: Buffer, rel: string): CatResult {
  let data = bytes;
  let gz = false;
  if (data[0] === 0x1f && data[1] === 0x8b) {
    try {
      data = gunzipSync(data, { maxOutputLength: MAX_CAT });
      gz = true;
    } catch (e) {
      throw new DatarootError('CAT_BAD_GZIP', `gzip data is corrupt: ${(e as Error).message}`, { file: rel });
    }
  }
  const text = data.toString('utf8');
  // tar-split streams are newline-delimited JSON: show each record.
  try {
    return { path: rel, kind: gz ? 'gzip' : 'json', content: parseJsonBounded(text) };
  } catch {
    /* not one JSON document */
  }
  if (gz) {
    const lines = text.split('\n').filter((l) => l.length > 0);
    try {
      return { path: rel, kind: 'gzip', content: lines.map((l) => parseJsonBounded(l)) };
    } catch {
      return { path: rel, kind: 'gzip', content: text };
    }
  }
  const binary = data.includes(0);
  return { path: rel, kind: binary ? 'binary' : 'text', content: binary ? data.toString('base64') : text };
}

export function registerCat(program: Command, ctx: Ctx): void {
  program
    .command('cat')
    .argument('<relpath>', 'path of a file inside the data-root')
    .description('print a file of the root: JSON pretty-printed, gzip decompressed, text as is')
    .option('--raw', 'the bytes exactly as stored', false)
    .option('-l', 'add a final newline when the file lacks one (lastUpdated, size, diff files)', false)
    .action(async (relpath: string, o: CatOptions, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      await withRoot(
        rootOf(g, ctx).root,
        (r) => {
          let parts: string[];
          try {
            parts = pathParts(relpath.replace(/^\/+/, ''));
          } catch {
            throw new DatarootError('USAGE_PATH_OUTSIDE_ROOT', `${relpath} is outside the data-root`, { file: relpath });
          }
          const rel = parts.join('/');
          const bytes = r.fs.readFile(rel, { max: MAX_CAT });
          if (bytes === undefined) throw new DatarootError('IO_NOT_FOUND', `${rel} does not exist`, { file: rel });
          if (o.raw) {
            ctx.stdout.write(bytes);
            if (o.l && bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) ctx.stdout.write('\n');
            return;
          }
          const res = decode(bytes, rel);
          if (g.json) return emitJson(ctx, res);
          if (res.kind === 'json' || (res.kind === 'gzip' && typeof res.content !== 'string')) {
            ctx.stdout.write(`${JSON.stringify(res.content, null, 2)}\n`);
            return;
          }
          // Text from evidence: control characters are escaped (except newlines and tabs); --raw gives the bytes.
          const s = res.kind === 'binary' ? String(res.content) : safeText(String(res.content), '\n\t');
          ctx.stdout.write(s);
          if (o.l && s.length > 0 && !s.endsWith('\n')) ctx.stdout.write('\n');
        },
        rootOptions(g, ctx),
      );
    });
}

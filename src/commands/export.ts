import type { Command } from 'commander';
import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { requireOutputDir } from '../io/atomic.js';
import { cleanupOnSignal } from '../io/cleanup.js';
import { TarFile, TarFileOut, TarStream } from '../io/tarsink.js';
import { exportDir, exportTar, type DirExportSummary, type ExportSummary } from '../ops/export.js';
import { dockerCdView } from '../ops/cdviews.js';
import { graphView, type TargetView } from '../ops/views.js';
import type { Ctx, GlobalOpts } from './context.js';
import { bytesHuman, emitJson } from './render.js';
import { chosenContainerd, noteBothStores, withDockerStores } from './cddocker.js';
import { legacyUnsupported } from './legacy.js';
import { reportProblems, requireContent } from './storectx.js';

export interface ExportOpts {
  output?: string;
}

export interface ExportResult extends Partial<DirExportSummary> {
  output: string;
  format: 'tar' | 'dir';
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Whether `-o` names a directory that exists (not through a symlink). */
function isDirOutput(out: string): boolean {
  try {
    return lstatSync(out).isDirectory();
  } catch {
    return false;
  }
}

/** `dataroot export`: runs the export; with no -o the tar goes to stdout. */
export async function runExport(q: string, o: ExportOpts, g: GlobalOpts, ctx: Ctx): Promise<ExportResult | undefined> {
  return withDockerStores(g, ctx, async (st) => {
    if (st.legacy !== undefined) throw legacyUnsupported(st.legacy.root);
    noteBothStores(ctx, st);
    // The view of the store dockerd would use, read once the output is known to be acceptable.
    const viewOf = (): TargetView => {
      const cd = chosenContainerd(st);
      if (cd !== undefined) return dockerCdView(cd, q);
      const s = st.graph!();
      requireContent(s);
      return graphView(s, q);
    };
    if (o.output === undefined || o.output === '-') {
      if (ctx.stdoutTTY === true)
        throw new DatarootError('USAGE_OUTPUT_IS_TERMINAL', 'refusing to write a tar archive to a terminal: use -o FILE.tar, -o DIR, or redirect stdout');
      const summary = await exportTar(viewOf(), new TarStream((b) => ctx.stdout.write(b)));
      reportProblems(ctx, summary.problems);
      return undefined;
    }
    const out = resolve(ctx.cwd, o.output);
    // The output is the user's, not evidence; still, a symlink there is refused rather than followed or replaced.
    if (isSymlink(out))
      throw new DatarootError('OUTPUT_IS_SYMLINK', `${out} is a symlink: give a real directory, or a file path that does not name a symlink`, { file: out });
    if (o.output.endsWith('/') || isDirOutput(out)) {
      const r = await exportDir(viewOf(), out.replace(/\/+$/, '') || '/');
      return { ...r, output: out, format: 'dir' as const };
    }
    requireOutputDir(out);
    const view = viewOf();
    const file = new TarFile(out);
    const unregister = cleanupOnSignal(() => file.abort());
    let r: ExportSummary;
    try {
      r = await exportTar(view, new TarFileOut(file.fd));
      file.commit();
    } catch (e) {
      file.abort();
      throw e;
    } finally {
      unregister();
    }
    return { ...r, output: out, format: 'tar' as const };
  });
}

function notes(r: DirExportSummary): string[] {
  const n = r.notPreserved;
  const out: string[] = [];
  if (n.owners > 0) out.push(`not root: the owners of ${n.owners} entries are not set (they are the user's)`);
  if (n.setid > 0) out.push(`setuid/setgid bits dropped from ${n.setid} entries whose owner could not be set`);
  if (n.devices > 0) out.push(`not root: ${n.devices} device nodes not made`);
  if (n.capabilities > 0) out.push(`not root: ${n.capabilities} file capabilities (security.capability) not set`);
  if (n.special > 0) out.push(`${n.special} FIFOs or devices not made (name not UTF-8, or the native addon is missing)`);
  if (n.sockets > 0) out.push(`${n.sockets} sockets left out (as docker export leaves them out)`);
  return out;
}

export function registerExport(program: Command, ctx: Ctx): void {
  program
    .command('export')
    .argument('<target>', 'container (ID, name or prefix) or image (reference or ID)')
    .option('-o, --output <FILE.tar|DIR>', 'a tar file, or a directory (one that exists and is empty, or a path ending in /); default: the tar on stdout')
    .description('the merged file system built offline from the layers: a container as docker export gives it, an image as docker create + docker export would')
    .action(async (q: string, o: ExportOpts, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      const r = await runExport(q, o, g, ctx);
      if (r === undefined) return;
      const dirNotes = r.format === 'dir' ? notes(r as DirExportSummary) : [];
      if (g.json) emitJson(ctx, r);
      else {
        ctx.stdout.write(
          `exported ${r.target!.kind} ${r.target!.name !== '' ? r.target!.name : r.target!.id.replace(/^sha256:/, '').slice(0, 12)} (${r.target!.id.replace(/^sha256:/, '').slice(0, 12)}): ${r.entries} entries, ${r.files} ${r.files === 1 ? 'file' : 'files'}, ${bytesHuman(r.bytes!)} to ${r.output}${r.format === 'dir' ? '/' : ''}\n`,
        );
        for (const n of dirNotes) ctx.stderr.write(`dataroot: note: ${n}\n`);
      }
      reportProblems(ctx, r.problems ?? []);
    });
}

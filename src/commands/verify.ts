import type { Command } from 'commander';
import { resolve } from 'node:path';
import { verifyArchive } from '../ops/verifyarchive.js';
import { verifyRoot, type Finding } from '../ops/verify.js';
import type { Ctx, GlobalOpts } from './context.js';
import { bytesHuman, emitJson, paint } from './render.js';
import { verifyContainerd, type CdVerifyResult } from '../ops/containerdverify.js';
import { noteBothStores, withDockerStores } from './cddocker.js';
import { verifyLegacy } from '../ops/legacy.js';
import { renderLegacyVerify } from './legacy.js';
import { Progress } from './progress.js';

function renderFindings(ctx: Ctx, findings: Finding[]): void {
  for (const f of findings) {
    const sev = f.severity === 'error' ? paint(ctx, 'red', 'ERROR  ') : paint(ctx, 'yellow', 'WARNING');
    ctx.stdout.write(`${sev} ${paint(ctx, 'bold', f.code)} ${f.subject}\n`);
    ctx.stdout.write(`        ${f.message}\n`);
    for (const p of f.paths) ctx.stdout.write(`        ${paint(ctx, 'dim', p)}\n`);
    if (f.fix !== '') ctx.stdout.write(`        fix: ${f.fix}\n`);
  }
}

function renderCd(ctx: Ctx, r: CdVerifyResult): void {
  renderFindings(ctx, r.findings);
  const c = r.checked;
  ctx.stdout.write(
    `checked ${c.namespaces} namespaces, ${c.images} images, ${c.blobs} blobs (${bytesHuman(c.blobBytes)} hashed), ${c.snapshots} snapshots, ${c.containers} containers, ${c.boltFiles} BoltDB files${r.deep ? `, ${c.layers} layers against their snapshots` : ''}\n`,
  );
  const g = r.gc;
  ctx.stdout.write(
    `containerd's collector at its next start would delete ${g.records.length} records, ${g.blobFiles.length} blob files, ${g.snapshotDirs.length} snapshot directories\n`,
  );
  ctx.stdout.write(`${r.errors === 0 ? paint(ctx, 'green', 'OK') : paint(ctx, 'red', `${r.errors} errors`)}, ${r.warnings} warnings\n`);
}

export function registerVerify(program: Command, ctx: Ctx): void {
  program
    .command('verify')
    .argument('[archive]', 'a docker save archive or OCI layout to check instead of the root')
    .option('--deep', 'rebuild every layer from tar-split and check it against its diffID', false)
    .option('--image <ref...>', 'only these images and their layers')
    .option('--platform <os/arch>', 'platform to choose from an OCI index (archives)', 'linux/amd64')
    .description('prove every image ID, chain, layer and reference of a root (or a docker save / OCI archive); exit 1 on errors')
    .action(async (archive: string | undefined, o: { deep: boolean; image?: string[]; platform: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOpts>();
      if (archive !== undefined) {
        const r = await verifyArchive(resolve(ctx.cwd, archive), { platform: o.platform });
        if (g.json) emitJson(ctx, r);
        else {
          renderFindings(ctx, r.findings);
          ctx.stdout.write(`${r.kind} archive: ${r.images.length} image(s): ${r.images.map((i) => i.label).join(', ')}\n`);
          ctx.stdout.write(`${r.errors === 0 ? paint(ctx, 'green', 'OK') : paint(ctx, 'red', `${r.errors} errors`)}, ${r.warnings} warnings\n`);
        }
        if (r.errors > 0) ctx.exitCode = 1;
        return;
      }
      await withDockerStores(g, ctx, async (st) => {
        if (st.legacy !== undefined) {
          const lr = verifyLegacy(st.legacy, o.image !== undefined ? { images: o.image } : {});
          if (g.json) emitJson(ctx, lr);
          else renderLegacyVerify(ctx, lr);
          if (lr.errors > 0) ctx.exitCode = 1;
          return;
        }
        noteBothStores(ctx, st);
        let cdr: CdVerifyResult | undefined;
        if (st.containerd !== undefined) {
          cdr = await verifyContainerd(st.containerd.cd, { deep: o.deep });
          if (st.graph === undefined) {
            if (g.json) emitJson(ctx, cdr);
            else renderCd(ctx, cdr);
            if (cdr.errors > 0) ctx.exitCode = 1;
            return;
          }
        }
        const s = st.graph!();
        const progress = o.deep && ctx.stderrTTY ? new Progress(ctx, 'verify --deep') : undefined;
        const r = await verifyRoot(s, {
          deep: o.deep,
          ...(o.image !== undefined ? { images: o.image } : {}),
          ...(progress !== undefined ? { onProgress: (p) => progress.update(p.bytes, p.totalBytes, `layer ${p.layer}/${p.layers}`) } : {}),
        });
        progress?.done();
        if (g.json) emitJson(ctx, cdr === undefined ? r : { graphdriver: r, containerd: cdr, uses: st.choice.uses });
        else {
          renderFindings(ctx, r.findings);
          const c = r.checked;
          ctx.stdout.write(
            `checked ${c.images} images, ${c.layers} layers, ${c.containers} containers, ${c.boltFiles} BoltDB files${r.deep ? `, ${bytesHuman(c.layerBytes)} of layer content rebuilt` : ''}\n`,
          );
          ctx.stdout.write(`${r.errors === 0 ? paint(ctx, 'green', 'OK') : paint(ctx, 'red', `${r.errors} errors`)}, ${r.warnings} warnings\n`);
          if (cdr !== undefined) {
            ctx.stdout.write('\ncontainerd image store:\n');
            renderCd(ctx, cdr);
          }
        }
        if (r.errors > 0 || (cdr?.errors ?? 0) > 0) ctx.exitCode = 1;
      });
    });
}

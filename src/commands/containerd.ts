import type { Command } from 'commander';
import { goHumanDuration, goHumanSize, progressBytes } from '../formats/containerd/units.js';
import {
  containerChanges,
  containerItem,
  findContainer,
  findImage,
  inspectImage,
  listContainers,
  listContent,
  listImages,
  listIngests,
  listLeases,
  listNamespaces,
  listSnapshots,
  snapshotTree,
} from '../ops/containerd.js';
import { CHANGE_LETTER } from '../ops/containers.js';
import type { Problem } from '../store/problems.js';
import { withContainerd } from './cdctx.js';
import type { Ctx, GlobalOpts } from './context.js';
import { emitJson } from './render.js';
import { reportMissing, reportProblems } from './storectx.js';
import { CTR_TAB_TABLE, CTR_TABLE, tabwrite } from './tabwriter.js';
import { safeText } from './render.js';

interface NsOpts {
  namespace?: string;
}

const labelsText = (l: Record<string, string> | null | undefined, sorted = true): string => {
  if (l === null || l === undefined || Object.keys(l).length === 0) return '-';
  const pairs = Object.entries(l).map(([k, v]) => `${k}=${v}`);
  return (sorted ? pairs.sort() : pairs).join(',');
};

/** Cells from evidence, safe for a terminal and free of the tabs that separate them. */
const cell = (s: string): string => safeText(s).replace(/\t/g, '\\t');

function problemsOf(items: { Dataroot: { problems: Problem[] } }[]): Problem[] {
  return items.flatMap((i) => i.Dataroot.problems);
}

export function registerContainerd(program: Command, ctx: Ctx): void {
  const cd = program
    .command('containerd')
    .description("containerd's own store (Docker 29's containerd image store, Kubernetes nodes): namespaces, images, content, snapshots, containers, leases, ingests");
  const nsOpt = (c: Command): Command => c.option('-n, --namespace <ns>', 'only this namespace (default: all)');
  const globals = (cmd: Command): GlobalOpts & NsOpts => cmd.optsWithGlobals<GlobalOpts & NsOpts>();

  nsOpt(cd.command('namespaces').alias('ns').description('the namespaces, with their labels and what each holds (like ctr namespaces ls)')).action(async (_o: object, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listNamespaces(root, g.namespace);
      if (g.json) emitJson(ctx, r);
      else {
        const lines = ['NAME\tLABELS\tIMAGES\tCONTAINERS\tSNAPSHOTS\tCONTENT\tLEASES\t'];
        for (const n of r) lines.push(`${cell(n.Name)}\t${cell(labelsText(n.Labels).replace(/^-$/, ''))}\t${n.Dataroot.images}\t${n.Dataroot.containers}\t${n.Dataroot.snapshots}\t${n.Dataroot.content}\t${n.Dataroot.leases}\t`);
        ctx.stdout.write(tabwrite(lines, CTR_TABLE));
      }
      reportProblems(ctx, problemsOf(r));
    });
  });

  nsOpt(cd.command('images').description('images (like ctr images ls, with what is present: ctr images check STATUS and UNPACKED)')).action(async (_o: object, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listImages(root, g.namespace);
      if (g.json) emitJson(ctx, r);
      else {
        const all = g.namespace === undefined;
        const lines = [`${all ? 'NAMESPACE\t' : ''}REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\tSTATUS\tUNPACKED\t`];
        for (const i of r) {
          const t = i.Target as { mediaType: string; digest: string };
          lines.push(`${all ? `${cell(i.Dataroot.namespace)}\t` : ''}${cell(i.Name)}\t${cell(t.mediaType)}\t${cell(t.digest)}\t${progressBytes(i.Dataroot.size)}\t${cell(i.Dataroot.platforms)}\t${cell(labelsText(i.Labels))}\t${i.Dataroot.status}\t${i.Dataroot.unpacked}\t`);
        }
        ctx.stdout.write(tabwrite(lines, CTR_TABLE));
      }
      reportProblems(ctx, problemsOf(r));
    });
  });

  const image = cd.command('image').description('one image');
  nsOpt(image.command('inspect').argument('<image...>', 'name, normalized name, or target digest (prefix)').description('the image record and its walk: index, platform manifests, config, layers, snapshots, what is present')).action(
    async (qs: string[], _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withContainerd(g, ctx, (root) => {
        const out: unknown[] = [];
        for (const q of qs) {
          try {
            const x = inspectImage(root, findImage(root, g.namespace, q));
            out.push(x);
            reportProblems(ctx, (x['Dataroot'] as { problems: Problem[] }).problems);
          } catch (e) {
            reportMissing(ctx, e, g.json === true);
          }
        }
        emitJson(ctx, out);
      });
    },
  );

  nsOpt(cd.command('content').description('content blobs (like ctr content ls) with their state: present, missing (a record without its file), orphaned (a file no namespace records)')).action(async (_o: object, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listContent(root, g.namespace);
      if (g.json) emitJson(ctx, r);
      else {
        const all = g.namespace === undefined;
        const now = Date.now();
        const lines = [`${all ? 'NAMESPACE\t' : ''}DIGEST\tSIZE\tAGE\tSTATE\tLABELS`];
        for (const c of r) {
          const t = Date.parse(c.CreatedAt);
          lines.push(`${all ? `${cell(c.Dataroot.namespace || '-')}\t` : ''}${cell(c.Digest)}\t${goHumanSize(c.Size)}\t${Number.isNaN(t) ? '-' : goHumanDuration((now - t) / 1000)}\t${c.Dataroot.state}\t${cell(labelsText(c.Labels))}`);
        }
        ctx.stdout.write(tabwrite(lines, CTR_TAB_TABLE));
      }
      reportProblems(ctx, problemsOf(r));
    });
  });

  nsOpt(
    cd
      .command('snapshots')
      .option('--snapshotter <name>', 'only this snapshotter (default: all)')
      .option('--tree', 'the parent tree, as ctr snapshots tree prints it', false)
      .description('snapshots (like ctr snapshots ls and usage): key, parent, kind, the snapshotter id and directory, size and inodes'),
  ).action(async (o: { snapshotter?: string; tree: boolean }, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listSnapshots(root, g.namespace, o.snapshotter);
      if (g.json) emitJson(ctx, r);
      else if (o.tree) {
        const groups = new Map<string, typeof r>();
        for (const s of r) {
          const k = `${s.Dataroot.namespace}\0${s.Dataroot.snapshotter}`;
          groups.set(k, [...(groups.get(k) ?? []), s]);
        }
        const many = groups.size > 1 || g.namespace === undefined;
        for (const [k, items] of groups) {
          const [ns, sn] = k.split('\0');
          if (many) ctx.stdout.write(`${cell(ns!)} (${cell(sn!)}):\n`);
          for (const line of snapshotTree(items)) ctx.stdout.write(`${cell(line)}\n`);
        }
      } else {
        const all = g.namespace === undefined;
        const lines = [`${all ? 'NAMESPACE\t' : ''}KEY\tPARENT\tKIND\tSNAPSHOTTER\tID\tSIZE\tINODES\t`];
        for (const s of r) {
          lines.push(`${all ? `${cell(s.Dataroot.namespace)}\t` : ''}${cell(s.Name)}\t${cell(s.Parent ?? '')}\t${s.Kind}\t${cell(s.Dataroot.snapshotter)}\t${s.Dataroot.id ?? '-'}\t${progressBytes(s.Dataroot.usage.Size)}\t${s.Dataroot.usage.Inodes}\t`);
        }
        ctx.stdout.write(tabwrite(lines, CTR_TABLE));
      }
      reportProblems(ctx, problemsOf(r));
    });
  });

  nsOpt(cd.command('containers').description('containers (like ctr containers ls); --json: the objects ctr containers info prints')).action(async (_o: object, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listContainers(root, g.namespace);
      if (g.json) emitJson(ctx, r);
      else {
        const all = g.namespace === undefined;
        const lines = [`${all ? 'NAMESPACE\t' : ''}CONTAINER\tIMAGE\tRUNTIME\tSNAPSHOT\t`];
        for (const c of r) lines.push(`${all ? `${cell(String(c.Dataroot['namespace']))}\t` : ''}${cell(c.ID)}\t${cell(c.Image || '-')}\t${cell(c.Runtime.Name)}\t${cell(typeof c['SnapshotKey'] === 'string' && c['SnapshotKey'] !== '' ? c['SnapshotKey'] : '-')}\t`);
        ctx.stdout.write(tabwrite(lines, CTR_TABLE));
      }
      reportProblems(ctx, r.flatMap((c) => c.Dataroot['problems'] as Problem[]));
    });
  });

  const container = cd.command('container').description('one container: inspect, diff');
  nsOpt(container.command('inspect').argument('<id...>', 'container ID or unique prefix').description('the object ctr containers info prints (spec decoded), plus runtime options decoded and the snapshot')).action(
    async (qs: string[], _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withContainerd(g, ctx, (root) => {
        const out: unknown[] = [];
        for (const q of qs) {
          try {
            const x = containerItem(root, findContainer(root, g.namespace, q));
            out.push(x);
            reportProblems(ctx, x.Dataroot['problems'] as Problem[]);
          } catch (e) {
            reportMissing(ctx, e, g.json === true);
          }
        }
        emitJson(ctx, out);
      });
    },
  );
  nsOpt(container.command('diff').argument('<id>', 'container ID or unique prefix').description("A/C/D of the container's snapshot against its parent (overlay whiteouts and opaque directories applied)")).action(
    async (q: string, _o: object, cmd: Command) => {
      const g = globals(cmd);
      await withContainerd(g, ctx, (root) => {
        const changes = containerChanges(root, findContainer(root, g.namespace, q));
        if (g.json) emitJson(ctx, changes);
        else ctx.stdout.write(changes.map((c) => `${CHANGE_LETTER[c.Kind]} ${safeText(c.Path)}\n`).join(''));
      });
    },
  );

  nsOpt(cd.command('leases').description('leases (like ctr leases ls) with the resources each holds')).action(async (_o: object, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listLeases(root, g.namespace);
      if (g.json) emitJson(ctx, r);
      else {
        const all = g.namespace === undefined;
        const lines = [`${all ? 'NAMESPACE\t' : ''}ID\tCREATED AT\tLABELS\tRESOURCES\t`];
        for (const l of r) lines.push(`${all ? `${cell(l.Dataroot.namespace)}\t` : ''}${cell(l.ID)}\t${l.CreatedAt}\t${cell(labelsText(l.Labels))}\t${l.Dataroot.resources.length}\t`);
        ctx.stdout.write(tabwrite(lines, CTR_TABLE));
      }
      reportProblems(ctx, problemsOf(r));
    });
  });

  nsOpt(cd.command('ingests').description('partial writes (like ctr content active): ref, bytes written, expected total, the lease that holds it')).action(async (_o: object, cmd: Command) => {
    const g = globals(cmd);
    await withContainerd(g, ctx, (root) => {
      const r = listIngests(root, g.namespace);
      if (g.json) emitJson(ctx, r);
      else {
        const lines = ['NAMESPACE\tREF\tOFFSET\tTOTAL\tEXPECTED\tLEASES\t'];
        for (const i of r) lines.push(`${cell(i.Dataroot.namespace ?? '-')}\t${cell(i.Ref)}\t${i.Offset}\t${i.Total}\t${cell(i.Expected || '-')}\t${cell(i.Dataroot.leases.join(',') || '-')}\t`);
        ctx.stdout.write(tabwrite(lines, CTR_TABLE));
      }
      reportProblems(ctx, problemsOf(r));
    });
  });
}

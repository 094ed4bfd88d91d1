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
import { inspectQueries, reportProblems } from './storectx.js';
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

type Root = Parameters<Parameters<typeof withContainerd>[2]>[0];
type Opts = GlobalOpts & NsOpts & { snapshotter?: string; tree?: boolean };

/**
 * One listing command: the records of `list`, printed as `--json` or as the table `text` writes,
 * then the problems found while reading them.
 */
interface Listing<T> {
  name: string;
  alias?: string;
  description: string;
  options?: (c: Command) => Command;
  list(root: Root, o: Opts): T[];
  text(r: T[], o: Opts, ctx: Ctx): void;
  problems(r: T[]): Problem[];
}

function addListing<T>(parent: Command, ctx: Ctx, l: Listing<T>): void {
  let c = parent.command(l.name).description(l.description);
  if (l.alias !== undefined) c = c.alias(l.alias);
  nsOpt(l.options === undefined ? c : l.options(c)).action(async (_o: object, cmd: Command) => {
    const o = cmd.optsWithGlobals<Opts>();
    await withContainerd(o, ctx, (root) => {
      const r = l.list(root, o);
      if (o.json) emitJson(ctx, r);
      else l.text(r, o, ctx);
      reportProblems(ctx, l.problems(r));
    });
  });
}

const nsOpt = (c: Command): Command => c.option('-n, --namespace <ns>', 'only this namespace (default: all)');
/** The NAMESPACE column, shown when no namespace was named. */
const nsCol = (o: Opts, ns: string): string => (o.namespace === undefined ? `${cell(ns)}\t` : '');
const nsHead = (o: Opts): string => (o.namespace === undefined ? 'NAMESPACE\t' : '');
const table = (ctx: Ctx, lines: string[], t = CTR_TABLE): void => void ctx.stdout.write(tabwrite(lines, t));

const namespaces: Listing<ReturnType<typeof listNamespaces>[number]> = {
  name: 'namespaces',
  alias: 'ns',
  description: 'the namespaces, with their labels and what each holds (like ctr namespaces ls)',
  list: (root, o) => listNamespaces(root, o.namespace),
  text: (r, _o, ctx) =>
    table(ctx, [
      'NAME\tLABELS\tIMAGES\tCONTAINERS\tSNAPSHOTS\tCONTENT\tLEASES\t',
      ...r.map(
        (n) =>
          `${cell(n.Name)}\t${cell(labelsText(n.Labels).replace(/^-$/, ''))}\t${n.Dataroot.images}\t${n.Dataroot.containers}\t${n.Dataroot.snapshots}\t${n.Dataroot.content}\t${n.Dataroot.leases}\t`,
      ),
    ]),
  problems: problemsOf,
};

const images: Listing<ReturnType<typeof listImages>[number]> = {
  name: 'images',
  description: 'images (like ctr images ls, with what is present: ctr images check STATUS and UNPACKED)',
  list: (root, o) => listImages(root, o.namespace),
  text: (r, o, ctx) =>
    table(ctx, [
      `${nsHead(o)}REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\tSTATUS\tUNPACKED\t`,
      ...r.map((i) => {
        const t = i.Target as { mediaType: string; digest: string };
        return `${nsCol(o, i.Dataroot.namespace)}${cell(i.Name)}\t${cell(t.mediaType)}\t${cell(t.digest)}\t${progressBytes(i.Dataroot.size)}\t${cell(i.Dataroot.platforms)}\t${cell(labelsText(i.Labels))}\t${i.Dataroot.status}\t${i.Dataroot.unpacked}\t`;
      }),
    ]),
  problems: problemsOf,
};

const content: Listing<ReturnType<typeof listContent>[number]> = {
  name: 'content',
  description: 'content blobs (like ctr content ls) with their state: present, missing (a record without its file), orphaned (a file no namespace records)',
  list: (root, o) => listContent(root, o.namespace),
  text: (r, o, ctx) => {
    const now = Date.now();
    const age = (created: string): string => {
      const t = Date.parse(created);
      return Number.isNaN(t) ? '-' : goHumanDuration((now - t) / 1000);
    };
    table(
      ctx,
      [
        `${nsHead(o)}DIGEST\tSIZE\tAGE\tSTATE\tLABELS`,
        ...r.map(
          (c) =>
            `${nsCol(o, c.Dataroot.namespace || '-')}${cell(c.Digest)}\t${goHumanSize(c.Size)}\t${age(c.CreatedAt)}\t${c.Dataroot.state}\t${cell(labelsText(c.Labels))}`,
        ),
      ],
      CTR_TAB_TABLE,
    );
  },
  problems: problemsOf,
};

type SnapshotItem = ReturnType<typeof listSnapshots>[number];

/** `ctr snapshots tree`, one tree per namespace and snapshotter. */
function snapshotTrees(r: SnapshotItem[], o: Opts, ctx: Ctx): void {
  const groups = new Map<string, SnapshotItem[]>();
  for (const s of r) {
    const k = `${s.Dataroot.namespace}\0${s.Dataroot.snapshotter}`;
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  const many = groups.size > 1 || o.namespace === undefined;
  for (const [k, items] of groups) {
    const [ns, sn] = k.split('\0');
    if (many) ctx.stdout.write(`${cell(ns!)} (${cell(sn!)}):\n`);
    for (const line of snapshotTree(items)) ctx.stdout.write(`${cell(line)}\n`);
  }
}

const snapshots: Listing<SnapshotItem> = {
  name: 'snapshots',
  description: 'snapshots (like ctr snapshots ls and usage): key, parent, kind, the snapshotter id and directory, size and inodes',
  options: (c) =>
    c.option('--snapshotter <name>', 'only this snapshotter (default: all)').option('--tree', 'the parent tree, as ctr snapshots tree prints it', false),
  list: (root, o) => listSnapshots(root, o.namespace, o.snapshotter),
  text: (r, o, ctx) => {
    if (o.tree === true) return snapshotTrees(r, o, ctx);
    table(ctx, [
      `${nsHead(o)}KEY\tPARENT\tKIND\tSNAPSHOTTER\tID\tSIZE\tINODES\t`,
      ...r.map(
        (s) =>
          `${nsCol(o, s.Dataroot.namespace)}${cell(s.Name)}\t${cell(s.Parent ?? '')}\t${s.Kind}\t${cell(s.Dataroot.snapshotter)}\t${s.Dataroot.id ?? '-'}\t${progressBytes(s.Dataroot.usage.Size)}\t${s.Dataroot.usage.Inodes}\t`,
      ),
    ]);
  },
  problems: problemsOf,
};

const containers: Listing<ReturnType<typeof listContainers>[number]> = {
  name: 'containers',
  description: 'containers (like ctr containers ls); --json: the objects ctr containers info prints',
  list: (root, o) => listContainers(root, o.namespace),
  text: (r, o, ctx) =>
    table(ctx, [
      `${nsHead(o)}CONTAINER\tIMAGE\tRUNTIME\tSNAPSHOT\t`,
      ...r.map(
        (c) =>
          `${nsCol(o, String(c.Dataroot['namespace']))}${cell(c.ID)}\t${cell(c.Image || '-')}\t${cell(c.Runtime.Name)}\t${cell(typeof c['SnapshotKey'] === 'string' && c['SnapshotKey'] !== '' ? c['SnapshotKey'] : '-')}\t`,
      ),
    ]),
  problems: (r) => r.flatMap((c) => c.Dataroot['problems'] as Problem[]),
};

const leases: Listing<ReturnType<typeof listLeases>[number]> = {
  name: 'leases',
  description: 'leases (like ctr leases ls) with the resources each holds',
  list: (root, o) => listLeases(root, o.namespace),
  text: (r, o, ctx) =>
    table(ctx, [
      `${nsHead(o)}ID\tCREATED AT\tLABELS\tRESOURCES\t`,
      ...r.map((l) => `${nsCol(o, l.Dataroot.namespace)}${cell(l.ID)}\t${l.CreatedAt}\t${cell(labelsText(l.Labels))}\t${l.Dataroot.resources.length}\t`),
    ]),
  problems: problemsOf,
};

const ingests: Listing<ReturnType<typeof listIngests>[number]> = {
  name: 'ingests',
  description: 'partial writes (like ctr content active): ref, bytes written, expected total, the lease that holds it',
  list: (root, o) => listIngests(root, o.namespace),
  text: (r, _o, ctx) =>
    table(ctx, [
      'NAMESPACE\tREF\tOFFSET\tTOTAL\tEXPECTED\tLEASES\t',
      ...r.map(
        (i) =>
          `${cell(i.Dataroot.namespace ?? '-')}\t${cell(i.Ref)}\t${i.Offset}\t${i.Total}\t${cell(i.Expected || '-')}\t${cell(i.Dataroot.leases.join(',') || '-')}\t`,
      ),
    ]),
  problems: problemsOf,
};

/** `inspect` of each argument: found ones printed as one JSON array, missing ones reported (exit 1). */
function addInspect<T>(
  parent: Command,
  ctx: Ctx,
  arg: [string, string],
  description: string,
  one: (root: Root, o: Opts, q: string) => T,
  problems: (x: T) => Problem[],
): void {
  nsOpt(
    parent
      .command('inspect')
      .argument(...arg)
      .description(description),
  ).action(async (qs: string[], _o: object, cmd: Command) => {
    const o = cmd.optsWithGlobals<Opts>();
    await withContainerd(o, ctx, (root) => inspectQueries(ctx, o.json === true, qs, (q) => one(root, o, q), problems));
  });
}

export function registerContainerd(program: Command, ctx: Ctx): void {
  const cd = program
    .command('containerd')
    .description(
      "containerd's own store (Docker 29's containerd image store, Kubernetes nodes): namespaces, images, content, snapshots, containers, leases, ingests",
    );
  addListing(cd, ctx, namespaces);
  addListing(cd, ctx, images);
  addInspect(
    cd.command('image').description('one image'),
    ctx,
    ['<image...>', 'name, normalized name, or target digest (prefix)'],
    'the image record and its walk: index, platform manifests, config, layers, snapshots, what is present',
    (root, o, q) => inspectImage(root, findImage(root, o.namespace, q)),
    (x) => (x['Dataroot'] as { problems: Problem[] }).problems,
  );
  addListing(cd, ctx, content);
  addListing(cd, ctx, snapshots);
  addListing(cd, ctx, containers);
  const container = cd.command('container').description('one container: inspect, diff');
  addInspect(
    container,
    ctx,
    ['<id...>', 'container ID or unique prefix'],
    'the object ctr containers info prints (spec decoded), plus runtime options decoded and the snapshot',
    (root, o, q) => containerItem(root, findContainer(root, o.namespace, q)),
    (x) => x.Dataroot['problems'] as Problem[],
  );
  nsOpt(
    container
      .command('diff')
      .argument('<id>', 'container ID or unique prefix')
      .description("A/C/D of the container's snapshot against its parent (overlay whiteouts and opaque directories applied)"),
  ).action(async (q: string, _o: object, cmd: Command) => {
    const o = cmd.optsWithGlobals<Opts>();
    await withContainerd(o, ctx, (root) => {
      const changes = containerChanges(root, findContainer(root, o.namespace, q));
      if (o.json) emitJson(ctx, changes);
      else ctx.stdout.write(changes.map((c) => `${CHANGE_LETTER[c.Kind]} ${safeText(c.Path)}\n`).join(''));
    });
  });
  addListing(cd, ctx, leases);
  addListing(cd, ctx, ingests);
}

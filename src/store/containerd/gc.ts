import type { CdRoot } from './model.js';

/**
 * What containerd's garbage collector removes at its next start (containerd 1.6–2.x
 * metadata/gc.go, gc/gc.go, metadata/db.go GarbageCollect; the scheduler collects once, 100 ms
 * after start): a tri-colour mark from the roots, then every unmarked record is deleted; when a
 * content (or ingest) record went, the content store removes every blob file no record of any
 * namespace names and every ingest no record names; when a snapshot record of a snapshotter
 * went, that snapshotter removes the snapshots no record names (children first) and the overlayfs
 * snapshotter then the directories its metadata.db does not know.
 *
 * Roots, per namespace: unexpired leases (their content, snapshots and ingests; `gc.flat` keeps
 * a snapshot's labels from being followed), images (their target, and their label references),
 * unexpired ingests, blobs and snapshots labelled `containerd.io/gc.root`, containers (their
 * snapshot and label references). References: a blob's `containerd.io/gc.ref.content*` and
 * `containerd.io/gc.ref.snapshot.<snapshotter>` labels, a snapshot's parent and labels, an
 * ingest's expected digest.
 */
export type GcType = 'content' | 'snapshot' | 'lease' | 'ingest';

export interface GcNode {
  type: GcType;
  namespace: string;
  /** content: digest; snapshot: `<snapshotter>/<key>`; lease: id; ingest: key. */
  key: string;
}

export interface GcPlan {
  /** Records the collector deletes. */
  records: GcNode[];
  /** Blob files removed by the content sweep (only when a content or ingest record is deleted). */
  blobFiles: string[];
  /** Ingest directories aborted by the content sweep. */
  ingestDirs: string[];
  /** Backend snapshots removed, by snapshotter (only when one of its records is deleted). */
  backendSnapshots: { snapshotter: string; name: string; id: string | undefined }[];
  /** Snapshot directories the overlayfs snapshotter's cleanup removes (ids its metadata.db does not know). */
  snapshotDirs: string[];
  /** Whether the content sweep and which snapshotter cleanups run at all. */
  contentSweep: boolean;
  snapshotterSweeps: string[];
}

const GC_ROOT = 'containerd.io/gc.root';
const GC_CONTENT = 'containerd.io/gc.ref.content';
const GC_SNAPSHOT = 'containerd.io/gc.ref.snapshot.';
const GC_EXPIRE = 'containerd.io/gc.expire';
const GC_FLAT = 'containerd.io/gc.flat';

const id = (n: GcNode): string => `${n.type}\0${n.namespace}\0${n.key}`;

/** sendLabelRefs: the nodes a label set refers to, in label key order. */
function labelRefs(ns: string, labels: Record<string, string> | null, out: GcNode[]): void {
  if (labels === null) return;
  for (const k of Object.keys(labels).sort()) {
    const v = labels[k]!;
    if (k.startsWith(GC_CONTENT)) {
      const rest = k.slice(GC_CONTENT.length);
      if (rest === '' || rest[0] === '.' || rest[0] === '/') out.push({ type: 'content', namespace: ns, key: v });
    } else if (k.startsWith(GC_SNAPSHOT)) {
      let sn = k.slice(GC_SNAPSHOT.length);
      const slash = sn.indexOf('/');
      if (slash >= 0) sn = sn.slice(0, slash);
      out.push({ type: 'snapshot', namespace: ns, key: `${sn}/${v}` });
    }
  }
}

export function gcPlan(cd: CdRoot, now = Date.now()): GcPlan {
  const roots: GcNode[] = [];
  const flatSnapshots = new Set<string>();
  const nss = cd.namespaceNames();
  for (const ns of nss) {
    for (const l of cd.meta.leases(ns)) {
      const exp = l.Labels?.[GC_EXPIRE];
      if (exp !== undefined) {
        const t = Date.parse(exp);
        if (!Number.isNaN(t) && now > t) continue;
      }
      const flat = l.Labels?.[GC_FLAT] !== undefined;
      roots.push({ type: 'lease', namespace: ns, key: l.ID });
      for (const r of l.resources) {
        if (r.Type === 'content') roots.push({ type: 'content', namespace: ns, key: r.ID });
        else if (r.Type === 'ingests') roots.push({ type: 'ingest', namespace: ns, key: r.ID });
        else if (r.Type.startsWith('snapshots/')) {
          const n: GcNode = { type: 'snapshot', namespace: ns, key: `${r.Type.slice('snapshots/'.length)}/${r.ID}` };
          if (flat) flatSnapshots.add(id(n));
          roots.push(n);
        }
      }
    }
    for (const img of cd.meta.images(ns)) {
      if (img.Target.digest !== '') roots.push({ type: 'content', namespace: ns, key: img.Target.digest });
      labelRefs(ns, img.Labels, roots);
    }
    for (const i of cd.meta.ingests(ns)) {
      if (i.expireAt === null || Number.isNaN(i.expireMs) || now > i.expireMs) continue;
      roots.push({ type: 'ingest', namespace: ns, key: i.key });
    }
    for (const b of cd.meta.blobs(ns)) if (b.Labels?.[GC_ROOT] !== undefined) roots.push({ type: 'content', namespace: ns, key: b.Digest });
    for (const c of cd.meta.containers(ns)) {
      if (c.Snapshotter !== '') roots.push({ type: 'snapshot', namespace: ns, key: `${c.Snapshotter}/${c.SnapshotKey}` });
      labelRefs(ns, c.Labels, roots);
    }
    for (const [sn, list] of cd.meta.snapshots(ns))
      for (const s of list) if (s.labels?.[GC_ROOT] !== undefined) roots.push({ type: 'snapshot', namespace: ns, key: `${sn}/${s.key}` });
  }

  // Indexes for the reference lookups.
  const blobLabels = new Map<string, Record<string, string> | null>();
  for (const ns of nss) for (const b of cd.meta.blobs(ns)) blobLabels.set(`${ns}\0${b.Digest}`, b.Labels);
  const snaps = new Map<string, { parent: string; labels: Record<string, string> | null }>();
  for (const ns of nss)
    for (const [sn, list] of cd.meta.snapshots(ns)) for (const s of list) snaps.set(`${ns}\0${sn}/${s.key}`, { parent: s.parent, labels: s.labels });
  const ingests = new Map<string, string | null>();
  for (const ns of nss) for (const i of cd.meta.ingests(ns)) ingests.set(`${ns}\0${i.key}`, i.expected);

  const marked = new Set<string>();
  const gray: GcNode[] = [...roots];
  while (gray.length > 0) {
    const n = gray.pop()!;
    const k = id(n);
    if (marked.has(k)) continue;
    marked.add(k);
    const refs: GcNode[] = [];
    if (n.type === 'content') labelRefs(n.namespace, blobLabels.get(`${n.namespace}\0${n.key}`) ?? null, refs);
    else if (n.type === 'snapshot') {
      const s = snaps.get(`${n.namespace}\0${n.key}`);
      if (s !== undefined) {
        const sn = n.key.slice(0, n.key.indexOf('/'));
        const flat = flatSnapshots.has(k);
        if (s.parent !== '') {
          const p: GcNode = { type: 'snapshot', namespace: n.namespace, key: `${sn}/${s.parent}` };
          if (flat) flatSnapshots.add(id(p));
          refs.push(p);
        }
        if (!flat) labelRefs(n.namespace, s.labels, refs);
      }
    } else if (n.type === 'ingest') {
      const e = ingests.get(`${n.namespace}\0${n.key}`);
      if (e !== undefined && e !== null && e !== '') refs.push({ type: 'content', namespace: n.namespace, key: e });
    }
    for (const r of refs) if (!marked.has(id(r))) gray.push(r);
  }

  // Sweep: every record not marked.
  const records: GcNode[] = [];
  for (const ns of nss) {
    for (const l of cd.meta.leases(ns))
      if (!marked.has(id({ type: 'lease', namespace: ns, key: l.ID }))) records.push({ type: 'lease', namespace: ns, key: l.ID });
    for (const [sn, list] of cd.meta.snapshots(ns))
      for (const s of list)
        if (!marked.has(id({ type: 'snapshot', namespace: ns, key: `${sn}/${s.key}` })))
          records.push({ type: 'snapshot', namespace: ns, key: `${sn}/${s.key}` });
    for (const i of cd.meta.ingests(ns))
      if (!marked.has(id({ type: 'ingest', namespace: ns, key: i.key }))) records.push({ type: 'ingest', namespace: ns, key: i.key });
    for (const b of cd.meta.blobs(ns))
      if (!marked.has(id({ type: 'content', namespace: ns, key: b.Digest }))) records.push({ type: 'content', namespace: ns, key: b.Digest });
  }
  const gone = new Set(records.map(id));
  const plan: GcPlan = { records, blobFiles: [], ingestDirs: [], backendSnapshots: [], snapshotDirs: [], contentSweep: false, snapshotterSweeps: [] };

  // Content sweep, when a content or ingest record went.
  plan.contentSweep = records.some((r) => r.type === 'content' || r.type === 'ingest');
  if (plan.contentSweep) {
    const seenContent = new Set<string>();
    const seenIngest = new Set<string>();
    for (const ns of nss) {
      for (const b of cd.meta.blobs(ns)) if (!gone.has(id({ type: 'content', namespace: ns, key: b.Digest }))) seenContent.add(b.Digest);
      for (const i of cd.meta.ingests(ns)) {
        if (gone.has(id({ type: 'ingest', namespace: ns, key: i.key }))) continue;
        if (i.expected !== null && i.expected !== '') seenContent.add(i.expected);
        if (i.ref !== '') seenIngest.add(i.ref);
      }
    }
    for (const d of cd.blobFiles().digests) if (!seenContent.has(d)) plan.blobFiles.push(d);
    for (const i of cd.backendIngests()) if (!seenIngest.has(i.ref)) plan.ingestDirs.push(i.dir);
  }

  // Snapshotter sweeps, per snapshotter that lost a record.
  const dirtySS = new Set(records.filter((r) => r.type === 'snapshot').map((r) => r.key.slice(0, r.key.indexOf('/'))));
  plan.snapshotterSweeps = [...dirtySS].sort();
  for (const sn of plan.snapshotterSweeps) {
    const db = cd.snapshotter(sn);
    if (db === undefined) continue;
    const seen = new Set<string>();
    for (const ns of nss)
      for (const s of cd.meta.snapshots(ns).get(sn) ?? [])
        if (!gone.has(id({ type: 'snapshot', namespace: ns, key: `${sn}/${s.key}` })) && s.name !== '') seen.add(s.name);
    // pruneBranch: unseen snapshots go, children first; one with a kept child stays (Remove fails).
    const children = new Map<string, string[]>();
    for (const s of db.snapshots.values()) if (s.parent !== '') children.set(s.parent, [...(children.get(s.parent) ?? []), s.name]);
    const removed = new Set<string>();
    const order: string[] = [];
    const visit = (name: string): void => {
      const stack: { name: string; done: boolean }[] = [{ name, done: false }];
      while (stack.length > 0) {
        const top = stack.pop()!;
        if (!top.done) {
          stack.push({ name: top.name, done: true });
          for (const c of children.get(top.name) ?? []) stack.push({ name: c, done: false });
        } else order.push(top.name);
      }
    };
    for (const s of db.snapshots.values()) if (s.parent === '' || !db.snapshots.has(s.parent)) visit(s.name);
    for (const name of order) {
      if (seen.has(name)) continue;
      if ((children.get(name) ?? []).some((c) => !removed.has(c))) continue;
      removed.add(name);
      const b = db.snapshots.get(name)!;
      plan.backendSnapshots.push({ snapshotter: sn, name, id: b.id });
    }
    if (sn === 'overlayfs' || sn === 'native') {
      const known = new Set([...db.snapshots.values()].filter((s) => !removed.has(s.name)).map((s) => s.id));
      for (const d of cd.fs.names(`io.containerd.snapshotter.v1.${sn}/snapshots`))
        if (!known.has(d)) plan.snapshotDirs.push(`io.containerd.snapshotter.v1.${sn}/snapshots/${d}`);
    }
  }
  return plan;
}

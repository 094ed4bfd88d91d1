import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { checkBolt } from '../formats/bolt/check.js';
import { isLayerType } from '../formats/containerd/oci.js';
import { DatarootError } from '../formats/errors.js';
import { TYPE } from '../formats/tar/header.js';
import { TarReader, nameText } from '../formats/tar/reader.js';
import type { Confined } from '../io/confined.js';
import { getXattr } from '../io/native.js';
import { compressionOf, decompress, HashingStream } from '../io/streams.js';
import { openBoltIn } from '../store/bolt.js';
import { gcPlan, type GcPlan } from '../store/containerd/gc.js';
import { CD, FILE_SNAPSHOTTERS } from '../store/containerd/layout.js';
import type { CdImageRecord } from '../store/containerd/metadb.js';
import { MAX_SNAPSHOT_CHAIN, type CdRoot, type CdSnapshot, type ResolvedManifest } from '../store/containerd/model.js';
import type { Finding, Severity } from './verify.js';
import { severityOf, type ErrorCode } from '../formats/errorcodes.js';

/**
 * `verify` of a containerd store: every blob hashes to its name and matches its records' sizes;
 * every `containerd.io/gc.ref.*` label resolves in its namespace; each image's index, host
 * manifest, config and layers are present; its unpacked snapshot chain is the config's chainIDs,
 * each committed, with its directory; with --deep each layer blob decompresses to its diffID and
 * its snapshot holds exactly the layer's files (contents hashed, overlay whiteouts and opaque
 * directories checked); containers' snapshots exist; both BoltDB files pass bbolt's check. Then
 * what containerd's collector deletes at its next start, and the leftover ingests.
 */
export interface CdVerifyResult {
  store: 'containerd';
  root: string;
  deep: boolean;
  checked: { namespaces: number; images: number; blobs: number; blobBytes: number; snapshots: number; containers: number; boltFiles: number; layers: number };
  gc: GcPlan;
  findings: Finding[];
  errors: number;
  warnings: number;
}

class Findings {
  readonly list: Finding[] = [];
  private readonly seen = new Set<string>();
  add(code: ErrorCode, subject: string, message: string, paths: string[] = [], fix = ''): void {
    const k = `${code}\0${subject}\0${message}`;
    if (this.seen.has(k)) return;
    this.seen.add(k);
    const severity: Severity = severityOf(code);
    this.list.push({ code, severity, subject, message, paths, fix });
  }
}

function sha256File(fs: Confined, rel: string): { digest: string; size: number } | undefined {
  const f = fs.openFile(rel);
  if (f === undefined) return undefined;
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  try {
    for (;;) {
      const n = readSync(f.fd, buf, 0, buf.length, size);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    f.close();
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

async function* fileStream(fs: Confined, rel: string): AsyncGenerator<Uint8Array> {
  const f = fs.openFile(rel);
  if (f === undefined) return;
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (let pos = 0; ;) {
      const n = readSync(f.fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      pos += n;
      yield buf.subarray(0, n);
    }
  } finally {
    f.close();
  }
}

/** Compares an unpacked overlay snapshot (its upper directory) with the layer tar it was made from. */
async function layerAgainstSnapshot(cd: CdRoot, layerDigest: string, diffId: string, fsDir: string, f: Findings, subject: string): Promise<number> {
  const blob = CD.blob(layerDigest);
  const head = cd.fs.readHead(blob, 8);
  if (head === undefined) return 0;
  const src = decompress(compressionOf(head), fileStream(cd.fs, blob), {
    what: `layer ${layerDigest}`,
    maxRatio: 200,
    inputBytes: cd.fs.lstat(blob)?.size ?? 0,
  });
  const hashing = new HashingStream(src);
  const tar = new TarReader(hashing);
  const inTar = new Map<string, 'file' | 'dir' | 'symlink' | 'whiteout' | 'other'>();
  const opaque: string[] = [];
  let bytes = 0;
  for (;;) {
    const e = await tar.next();
    if (e === undefined) break;
    const raw = nameText(e.name);
    if (raw === undefined) continue;
    const name = raw.replace(/^\.?\/+/, '').replace(/\/+$/, '');
    if (name === '' || name === '.') continue;
    const base = name.slice(name.lastIndexOf('/') + 1);
    const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
    if (base === '.wh..wh..opq') {
      opaque.push(dir);
      continue;
    }
    if (base.startsWith('.wh.')) {
      inTar.set(dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`, 'whiteout');
      continue;
    }
    const rel = `${fsDir}/${name}`;
    const st = cd.fs.lstat(rel);
    if (e.type === TYPE.DIR) inTar.set(name, 'dir');
    else if (e.type === TYPE.SYMLINK) inTar.set(name, 'symlink');
    else if (e.type === TYPE.REG || e.type === TYPE.REGA || e.type === TYPE.LINK) inTar.set(name, 'file');
    else inTar.set(name, 'other');
    if (st === undefined) {
      f.add('CONTAINERD_SNAPSHOT_CONTENT_MISMATCH', subject, `${name} is in layer ${layerDigest} but not in its snapshot`, [cd.shown(rel)]);
      continue;
    }
    if (e.type === TYPE.REG || e.type === TYPE.REGA) {
      const h = createHash('sha256');
      for await (const c of tar.data()) h.update(c);
      bytes += e.size;
      const got = st.isFile() ? sha256File(cd.fs, rel) : undefined;
      if (got === undefined || got.size !== e.size || got.digest !== `sha256:${h.digest('hex')}`) {
        f.add(
          'CONTAINERD_SNAPSHOT_CONTENT_MISMATCH',
          subject,
          `${name} in the snapshot differs from layer ${layerDigest} (${got === undefined ? 'not a regular file' : `${got.size} bytes, expected ${e.size}`})`,
          [cd.shown(rel)],
        );
      }
    } else if (e.type === TYPE.SYMLINK) {
      const t = st.isSymbolicLink() ? cd.fs.readlink(rel) : undefined;
      if (t !== nameText(e.linkname))
        f.add(
          'CONTAINERD_SNAPSHOT_CONTENT_MISMATCH',
          subject,
          `${name} in the snapshot is not the symlink to ${JSON.stringify(nameText(e.linkname))} of layer ${layerDigest}`,
          [cd.shown(rel)],
        );
    } else if (e.type === TYPE.DIR && !st.isDirectory()) {
      f.add('CONTAINERD_SNAPSHOT_CONTENT_MISMATCH', subject, `${name} is a directory in layer ${layerDigest} but not in its snapshot`, [cd.shown(rel)]);
    }
  }
  // Drain: the diffID is the sha256 of the whole uncompressed stream.
  for await (const _ of hashing) void _;
  const got = hashing.digest();
  if (got !== diffId)
    f.add('CONTAINERD_LAYER_DIFFID_MISMATCH', subject, `layer ${layerDigest} decompresses to ${got}, the config says ${diffId}`, [cd.shown(blob)]);
  for (const d of opaque) {
    const rel = d === '' ? fsDir : `${fsDir}/${d}`;
    let v: Buffer | undefined;
    try {
      v = getXattr(cd.fs.abs(rel), 'trusted.overlay.opaque');
    } catch {
      v = undefined;
    }
    if (v === undefined || v.toString() !== 'y')
      f.add('CONTAINERD_SNAPSHOT_CONTENT_MISMATCH', subject, `${d || '/'} is opaque in layer ${layerDigest} but not in its snapshot`, [cd.shown(rel)]);
  }
  // Everything in the snapshot must come from the layer.
  for (const w of cd.fs.walk(fsDir)) {
    const name = w.rel.slice(fsDir.length + 1);
    const k = inTar.get(name);
    const whiteout = w.stat.isCharacterDevice() && w.stat.rdev === 0;
    if (k === undefined)
      f.add('CONTAINERD_SNAPSHOT_CONTENT_MISMATCH', subject, `${name} is in the snapshot but not in layer ${layerDigest}`, [cd.shown(w.rel)]);
    else if (k === 'whiteout' && !whiteout)
      f.add(
        'CONTAINERD_SNAPSHOT_CONTENT_MISMATCH',
        subject,
        `${name} is whited out in layer ${layerDigest} but the snapshot has ${w.stat.isDirectory() ? 'a directory' : 'a file'}`,
        [cd.shown(w.rel)],
      );
  }
  for (const [name, k] of inTar)
    if (k === 'whiteout' && cd.fs.lstat(`${fsDir}/${name}`) === undefined)
      f.add('CONTAINERD_SNAPSHOT_CONTENT_MISMATCH', subject, `the whiteout of ${name} in layer ${layerDigest} is not in the snapshot`, [
        cd.shown(`${fsDir}/${name}`),
      ]);
  return bytes;
}

export async function verifyContainerd(cd: CdRoot, o: { deep: boolean; now?: number }): Promise<CdVerifyResult> {
  const f = new Findings();
  const checked = { namespaces: 0, images: 0, blobs: 0, blobBytes: 0, snapshots: 0, containers: 0, boltFiles: 0, layers: 0 };
  const nss = cd.namespaceNames();
  checked.namespaces = nss.length;
  for (const n of cd.meta.namespaces()) for (const p of n.problems) f.add(p.code, `namespace ${n.name}`, p.message);
  checkBoltFiles(cd, nss, f, checked);
  checkBlobs(cd, nss, f, checked);
  for (const ns of nss)
    for (const img of cd.meta.images(ns)) {
      checked.images++;
      const m = checkImage(cd, ns, img, f);
      if (m !== undefined) await checkUnpackedChain(cd, ns, `image ${ns}/${img.Name}`, m, o.deep, f, checked);
    }
  checkSnapshotsAndContainers(cd, nss, f, checked);
  const gc = collectorFindings(cd, nss, f, o.now);
  const sev = (x: Finding): number => (x.severity === 'error' ? 0 : 1);
  f.list.sort((a, b) => sev(a) - sev(b) || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0) || (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0));
  const errors = f.list.filter((x) => x.severity === 'error').length;
  return { store: 'containerd', root: cd.location.shown, deep: o.deep, checked, gc, findings: f.list, errors, warnings: f.list.length - errors };
}

type Checked = CdVerifyResult['checked'];

/** meta.db and the snapshotters' metadata.db through bbolt's check; a snapshotter whose records have no metadata.db. */
function checkBoltFiles(cd: CdRoot, nss: string[], f: Findings, checked: Checked): void {
  const bolts = [
    CD.metaDb,
    ...cd
      .snapshotterNames()
      .filter((s) => FILE_SNAPSHOTTERS.includes(s))
      .map((s) => CD.snapshotterDb(s))
      .filter((r) => cd.fs.kind(r) === 'file'),
  ];
  for (const rel of bolts) {
    const b = openBoltIn(cd.fs, rel);
    if (b === undefined) continue;
    try {
      checked.boltFiles++;
      for (const p of checkBolt(b.db)) f.add('BOLT_CHECK_FAILED', rel, p.message, [cd.shown(rel)]);
    } finally {
      b.close();
    }
  }
  for (const sn of cd.snapshotterNames()) {
    const hasRecords = nss.some((ns) => (cd.meta.snapshots(ns).get(sn)?.length ?? 0) > 0);
    if (hasRecords && FILE_SNAPSHOTTERS.includes(sn) && cd.snapshotter(sn) === undefined) {
      f.add(
        'CONTAINERD_SNAPSHOTTER_DB_MISSING',
        `snapshotter ${sn}`,
        `${CD.snapshotterDb(sn)} does not exist, but meta.db records ${sn} snapshots: containerd cannot mount any of them`,
        [cd.shown(CD.snapshotterDb(sn))],
      );
    }
  }
}

/** Blobs: each file hashes to its name and has the size its records say; every gc.ref label resolves. */
function checkBlobs(cd: CdRoot, nss: string[], f: Findings, checked: Checked): void {
  const records = cd.blobRecords();
  const files = cd.blobFiles();
  for (const n of files.other)
    f.add('CONTAINERD_BLOB_NAME_INVALID', `blobs/sha256/${n}`, 'a file in the blob directory not named by 64 hex digits: containerd ignores it', [
      cd.shown(`${CD.blobsDir}/${n}`),
    ]);
  for (const d of [...files.digests].sort()) {
    checked.blobs++;
    let got: { digest: string; size: number } | undefined;
    try {
      got = sha256File(cd.fs, CD.blob(d));
    } catch (e) {
      if (!(e instanceof DatarootError)) throw e;
      f.add(e.code, `blob ${d}`, e.message, [cd.shown(CD.blob(d))]);
      continue;
    }
    if (got === undefined) continue;
    checked.blobBytes += got.size;
    if (got.digest !== d)
      f.add(
        'CONTAINERD_BLOB_DIGEST_MISMATCH',
        `blob ${d}`,
        `the file hashes to ${got.digest}: its content was changed or truncated`,
        [cd.shown(CD.blob(d))],
        'restore the blob from its source (pull or import the image again)',
      );
    for (const r of records.get(d) ?? []) {
      if (r.Size !== got.size)
        f.add('CONTAINERD_BLOB_SIZE_MISMATCH', `blob ${d}`, `namespace ${r.namespace} records ${r.Size} bytes, the file has ${got.size}`, [
          cd.shown(CD.blob(d)),
        ]);
    }
  }
  for (const ns of nss) {
    for (const b of cd.meta.blobs(ns)) {
      for (const p of b.problems) f.add(p.code, `blob ${b.Digest}`, p.message);
      // gc.ref labels resolve within the namespace.
      for (const [k, v] of Object.entries(b.Labels ?? {})) {
        if (k.startsWith('containerd.io/gc.ref.content')) {
          if (!cd.meta.blobs(ns).some((x) => x.Digest === v))
            f.add('CONTAINERD_GC_REF_DANGLING', `blob ${b.Digest}`, `label ${k}=${v}: namespace ${ns} has no content ${v}: the collector cannot keep it`);
        } else if (k.startsWith('containerd.io/gc.ref.snapshot.')) {
          const sn = k.slice('containerd.io/gc.ref.snapshot.'.length).split('/')[0]!;
          if (!(cd.meta.snapshots(ns).get(sn) ?? []).some((s) => s.key === v))
            f.add('CONTAINERD_GC_REF_DANGLING', `blob ${b.Digest}`, `label ${k}=${v}: namespace ${ns} has no ${sn} snapshot ${v}`);
        }
      }
    }
  }
}

/** An image: index → manifest → config → layers present; the manifest to check the unpacked chain of, when there is one. */
function checkImage(cd: CdRoot, ns: string, img: CdImageRecord, f: Findings): ResolvedManifest | undefined {
  const subject = `image ${ns}/${img.Name}`;
  for (const p of img.problems) f.add(p.code, subject, p.message);
  const r = cd.resolve(img);
  if (r.targetState === 'missing') {
    f.add('CONTAINERD_IMAGE_BLOB_MISSING', subject, `its target ${img.Target.digest} is not in the content store`, [cd.shown(CD.blob(img.Target.digest))]);
    return;
  }
  if (r.targetState === 'invalid') {
    f.add('CONTAINERD_IMAGE_TARGET_INVALID', subject, `its target ${img.Target.digest} (${img.Target.mediaType}) cannot be read as JSON`);
    return;
  }
  const m = r.best ?? (r.kind === 'manifest' ? r.manifests[0] : r.manifests.find((x) => x.matchesHost));
  if (m === undefined) {
    if (r.kind === 'index')
      f.add('CONTAINERD_IMAGE_NO_PLATFORM', subject, `its index has no manifest for ${cd.host.os}/${cd.host.architecture} that is present`);
    return;
  }
  if (m.state === 'missing') {
    f.add('CONTAINERD_IMAGE_BLOB_MISSING', subject, `manifest ${m.desc.digest} is not in the content store`, [cd.shown(CD.blob(m.desc.digest))]);
    return;
  }
  if (m.config === undefined || m.config.state === 'missing') {
    f.add(
      'CONTAINERD_IMAGE_BLOB_MISSING',
      subject,
      `config ${m.config?.desc.digest ?? '(none)'} is not in the content store`,
      m.config === undefined ? [] : [cd.shown(CD.blob(m.config.desc.digest))],
    );
    return;
  }
  for (const l of m.layers)
    if (!l.present) f.add('CONTAINERD_IMAGE_BLOB_MISSING', subject, `layer ${l.desc.digest} is not in the content store`, [cd.shown(CD.blob(l.desc.digest))]);
  if (m.layers.length !== m.diffIds.length && m.layers.every((l) => isLayerType(l.desc.mediaType))) {
    f.add('CONTAINERD_IMAGE_LAYER_COUNT', subject, `the manifest lists ${m.layers.length} layers, the config ${m.diffIds.length} diffIDs`);
  }
  return m;
}

/**
 * The unpacked chain of an image's manifest (overlayfs by default; the snapshotter of the image's
 * gc label otherwise): each layer's snapshot committed, with the parent its diffIDs give; with
 * `deep`, each layer rebuilt from its snapshot against the blob.
 */
async function checkUnpackedChain(cd: CdRoot, ns: string, subject: string, m: ResolvedManifest, deep: boolean, f: Findings, checked: Checked): Promise<void> {
  if (m.config === undefined) return;
  const cfgLabels =
    cd
      .blobRecords()
      .get(m.config.desc.digest)
      ?.find((b) => b.namespace === ns)?.Labels ?? {};
  const snLabel = Object.keys(cfgLabels).find((k) => k.startsWith('containerd.io/gc.ref.snapshot.'));
  const sn = snLabel === undefined ? 'overlayfs' : snLabel.slice('containerd.io/gc.ref.snapshot.'.length).split('/')[0]!;
  const top = m.chainIds[m.chainIds.length - 1];
  const topSnap = top === undefined ? undefined : cd.snapshotByKey(ns, sn, top);
  if (topSnap === undefined) return; // not unpacked: containerd unpacks it on use
  for (let i = m.chainIds.length - 1; i >= 0; i--) {
    const key = m.chainIds[i]!;
    const s = cd.snapshotByKey(ns, sn, key);
    if (s === undefined) {
      f.add(
        'CONTAINERD_SNAPSHOT_CHAIN_BROKEN',
        subject,
        `layer ${i} (diffID ${m.diffIds[i]}) has no snapshot ${key} in ${sn}, but the layers above it are unpacked`,
      );
      break;
    }
    const wantParent = i === 0 ? '' : m.chainIds[i - 1]!;
    if (s.Parent !== wantParent)
      f.add(
        'CONTAINERD_SNAPSHOT_CHAIN_BROKEN',
        subject,
        `snapshot ${key} has parent ${JSON.stringify(s.Parent)}, the diffIDs make it ${JSON.stringify(wantParent)}`,
      );
    if (s.Kind !== 'Committed') f.add('CONTAINERD_SNAPSHOT_CHAIN_BROKEN', subject, `snapshot ${key} is ${s.Kind}, not committed`);
    if (deep && sn === 'overlayfs' && i < m.layers.length && m.layers[i]!.present) {
      const fsDir = cd.snapshotFs(s);
      if (fsDir !== undefined && cd.fs.isDir(fsDir)) {
        checked.layers++;
        try {
          await layerAgainstSnapshot(cd, m.layers[i]!.desc.digest, m.diffIds[i]!, fsDir, f, `${subject} layer ${i}`);
        } catch (e) {
          if (!(e instanceof DatarootError)) throw e;
          f.add(e.code, `${subject} layer ${i}`, e.message, [cd.shown(CD.blob(m.layers[i]!.desc.digest))]);
        }
      }
    }
  }
}

/** Snapshots (backend record, directory, parent), containers' snapshots, leases. */
function checkSnapshotsAndContainers(cd: CdRoot, nss: string[], f: Findings, checked: Checked): void {
  for (const ns of nss) {
    for (const s of cd.snapshots(ns)) {
      checked.snapshots++;
      snapshotFindings(cd, s, f);
    }
    for (const c of cd.meta.containers(ns)) {
      checked.containers++;
      for (const p of c.problems) f.add(p.code, `container ${ns}/${c.ID}`, p.message);
      if (c.Snapshotter !== '' && c.SnapshotKey !== '' && cd.snapshotByKey(ns, c.Snapshotter, c.SnapshotKey) === undefined) {
        f.add(
          'CONTAINERD_SNAPSHOT_MISSING',
          `container ${ns}/${c.ID}`,
          `its snapshot ${c.SnapshotKey} (${c.Snapshotter}) does not exist: containerd cannot start it`,
        );
      }
    }
    for (const l of cd.meta.leases(ns)) for (const p of l.problems) f.add(p.code, `lease ${ns}/${l.ID}`, p.message);
  }
}

/** What containerd's collector deletes at its next start, orphaned blob files, leftover ingests. */
function collectorFindings(cd: CdRoot, nss: string[], f: Findings, now: number | undefined): GcPlan {
  const records = cd.blobRecords();
  const files = cd.blobFiles();
  const gc = gcPlan(cd, now);
  for (const r of gc.records) {
    f.add(
      'CONTAINERD_GC_WOULD_DELETE',
      `${r.type} ${r.namespace}/${r.key}`,
      r.type === 'lease'
        ? 'the lease has expired: containerd deletes it at its next start'
        : 'nothing keeps it (no image, container, lease, gc.root label or reference reaches it): containerd deletes it at its next start',
    );
  }
  for (const d of gc.blobFiles)
    f.add('CONTAINERD_GC_WOULD_DELETE', `blob file ${d}`, 'no content record names it once the collector has run: the content sweep removes the file', [
      cd.shown(CD.blob(d)),
    ]);
  for (const d of gc.snapshotDirs)
    f.add('CONTAINERD_GC_WOULD_DELETE', `snapshot directory ${d.slice(d.lastIndexOf('/') + 1)}`, 'the snapshotter sweep removes it', [cd.shown(d)]);
  if (!gc.contentSweep) {
    // Without a content record going, no sweep runs: orphaned files stay.
    for (const d of files.digests)
      if (!records.has(d))
        f.add('CONTAINERD_BLOB_ORPHANED', `blob file ${d}`, 'no namespace records it: containerd does not list it; it is removed at the next content sweep', [
          cd.shown(CD.blob(d)),
        ]);
  }
  for (const i of cd.backendIngests()) {
    const rec = nss.flatMap((ns) => cd.meta.ingests(ns).map((x) => ({ ns, x }))).find((y) => y.x.ref === i.ref);
    f.add(
      'CONTAINERD_INGEST_LEFTOVER',
      `ingest ${i.ref || i.dir}`,
      `a partial write of ${i.offset}${i.total > 0 ? ` of ${i.total}` : ''} bytes${rec !== undefined ? ` (namespace ${rec.ns}, expected ${rec.x.expected ?? 'unknown'})` : ', recorded in no namespace'}: an interrupted pull or import`,
      [cd.shown(i.dir)],
    );
  }
  return gc;
}

function snapshotFindings(cd: CdRoot, s: CdSnapshot, f: Findings): void {
  const subject = `snapshot ${s.namespace}/${s.snapshotter}/${s.Name}`;
  for (const p of s.problems) {
    if (p.code === 'CONTAINERD_SNAPSHOTTER_DB_MISSING') continue; // said once per snapshotter
    f.add(p.code, subject, p.message);
  }
  if (s.Parent !== '' && cd.snapshotByKey(s.namespace, s.snapshotter, s.Parent) === undefined)
    f.add('CONTAINERD_SNAPSHOT_PARENT_MISSING', subject, `its parent ${s.Parent} does not exist`);
  const end = cd.parentChain(s).end;
  if (end?.kind === 'cycle') f.add('CONTAINERD_SNAPSHOT_CYCLE', subject, `its parent chain comes back to ${end.at}: containerd's mount of it never ends`);
  else if (end?.kind === 'too-long') f.add('CONTAINERD_SNAPSHOT_CYCLE', subject, `its parent chain is longer than ${MAX_SNAPSHOT_CHAIN} snapshots`);
  const dir = cd.snapshotFs(s);
  if (dir !== undefined && !cd.fs.isDir(dir))
    f.add('CONTAINERD_SNAPSHOT_DIR_MISSING', subject, `${dir} does not exist: containerd cannot mount the snapshot or anything above it`, [cd.shown(dir)]);
  if (s.backend !== undefined && s.record.name !== '' && s.backend.parent !== '') {
    // The backend's parent must be the backend name of the meta parent.
    const p = cd.snapshotByKey(s.namespace, s.snapshotter, s.Parent);
    if (p !== undefined && p.record.name !== s.backend.parent)
      f.add('CONTAINERD_SNAPSHOT_PARENT_MISMATCH', subject, `meta.db says parent ${s.Parent} (${p.record.name}), the snapshotter says ${s.backend.parent}`);
  }
}

import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { sha256Digest } from '../formats/digest/digest.js';
import { applyConfigEdit, diffIdsOf, type ConfigEdit, type JsonObject } from '../formats/docker/imageconfig.js';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { TYPE } from '../formats/tar/header.js';
import { TarReader, nameText } from '../formats/tar/reader.js';
import type { WriteEntry } from '../formats/tar/writer.js';
import { copyLayerTar, parseLayerArg, writeLayerTar } from '../io/layertar.js';
import { compressionOf, fileChunks } from '../io/streams.js';
import { FileRandomAccess, memberName } from '../io/tarfile.js';
import { TarFileWriter } from '../io/tarout.js';
import { openImageArchive, type ArchiveImage, type ImageArchive } from '../store/archive.js';
import { MT, goJson, writeImageArchive, type OutImage, type OutLayer, type WrittenArchive } from './archivewrite.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { removeTree } from '../io/confined.js';

/**
 * `dataroot edit`: changes an image in an archive (docker save, OCI layout, or both in one) and
 * writes a new archive: config edits, added layers, tags, and squashing. Layers that do not change
 * are copied byte for byte; the config is rewritten in Go's JSON style (key order kept), so an
 * image whose config is not edited keeps its ID.
 */

export type EditOp = ConfigEdit | { op: 'add-layer'; arg: string } | { op: 'tag'; ref: string } | { op: 'untag'; ref: string } | { op: 'squash' };

export interface EditOptions {
  input: string;
  out: string;
  ops: EditOp[];
  /** Which image of a multi-image archive (a tag, an ID or a short ID). */
  image?: string;
  format?: 'docker' | 'oci';
  /** Seconds since the epoch for new history entries and new layers' files. */
  mtime: number;
  maxBytes: number;
  maxRatio: number;
}

export interface EditResult extends WrittenArchive {
  before: string;
  after: string;
  warnings: string[];
}

function familiarTag(t: string): string {
  const r = parseReference(t);
  if (r === undefined || r.digest !== undefined) throw new DatarootError('USAGE_BAD_TAG', `${JSON.stringify(t)} is not a name:tag reference`);
  return `${r.name}:${r.tag ?? 'latest'}`;
}

function pick(a: ImageArchive, want: string | undefined): ArchiveImage {
  if (want === undefined) {
    if (a.images.length === 1) return a.images[0]!;
    throw new DatarootError(
      'EDIT_WHICH_IMAGE',
      `${a.path} holds ${a.images.length} images (${a.images.map((i) => i.label).join(', ')}): choose one with --image`,
      { file: a.path },
    );
  }
  const hits = a.images.filter(
    (i) =>
      i.id === want ||
      i.id.slice(7).startsWith(want.replace(/^sha256:/, '')) ||
      i.repoTags.some((t) => t === want || (parseReference(t) !== undefined && parseReference(want) !== undefined && familiarTag(t) === familiarTag(want))),
  );
  if (hits.length !== 1)
    throw new DatarootError('EDIT_WHICH_IMAGE', `${hits.length === 0 ? 'no' : 'more than one'} image of ${a.path} matches ${want}`, { file: a.path });
  return hits[0]!;
}

/** The layers of an archive image as blobs to copy: digests computed where the layout has none. */
async function archiveLayers(a: ImageArchive, img: ArchiveImage): Promise<OutLayer[]> {
  const out: OutLayer[] = [];
  for (const [k, l] of img.layers.entries()) {
    const size = a.source.size(l.member);
    if (size === undefined) throw new DatarootError('ARCHIVE_LAYER_MISSING', `layer ${l.member} is not in ${a.path}`, { file: a.path });
    let digest = l.digest;
    if (digest === undefined) {
      const h = createHash('sha256');
      for await (const c of a.source.open(l.member)) h.update(c);
      digest = `sha256:${h.digest('hex')}`;
    }
    let mediaType = l.mediaType;
    if (mediaType === undefined || mediaType.startsWith('application/vnd.docker.')) {
      const head = (await a.source.open(l.member)[Symbol.asyncIterator]().next()).value as Uint8Array | undefined;
      const kind = compressionOf(head ?? new Uint8Array());
      mediaType = kind === 'gzip' ? MT.layerGzip : kind === 'zstd' ? MT.layerZstd : MT.layer;
    }
    const member = l.member;
    out.push({ diffId: img.diffIds[k]!, digest, size, mediaType, open: () => a.source.open(member) });
  }
  return out;
}

interface SquashItem {
  entry: WriteEntry;
  /** Data: a file of the work dir and where the entry's bytes are. */
  file?: string;
  offset?: number;
  /** Hard links: the item they share their content with. */
  linkTo?: SquashItem;
}

/**
 * Flattens layers into one tar, as the union filesystem shows them: each layer's whiteouts
 * (`.wh.name`, `.wh..wh..opq`) remove what the layers below it hold; an entry replaces the same
 * path below (a non-directory replaces a whole subtree). The result is sorted by name, with hard
 * links kept (the first name of a group carries the data) and no whiteouts.
 */
async function squash(layerFiles: string[], out: string): Promise<{ diffId: string; size: number }> {
  const merged = new Map<string, SquashItem>();
  const removeUnder = (dir: string, keep?: Set<string>): void => {
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const k of [...merged.keys()]) if (k.startsWith(prefix) && k !== dir && !(keep?.has(k) ?? false)) merged.delete(k);
  };
  for (const file of layerFiles) {
    const ra = await FileRandomAccess.open(file);
    try {
      const tr = new TarReader(ra);
      const mine = new Set<string>();
      const pending: [string, SquashItem][] = [];
      const whiteouts: string[] = [];
      const opaque: string[] = [];
      for (let e = await tr.next(); e !== undefined; e = await tr.next()) {
        if (e.type === TYPE.PAX_GLOBAL) continue;
        const text = nameText(e.name);
        if (text === undefined) throw new DatarootError('EDIT_LAYER_INVALID', `${file}: an entry name is not UTF-8`);
        const name = memberName(text);
        if (name === '' || name === '.') continue;
        if (name.split('/').includes('..'))
          throw new DatarootError('EDIT_LAYER_INVALID', `${file}: the entry ${JSON.stringify(name)} climbs out of the root; refusing to squash it`);
        const base = name.split('/').pop()!;
        const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
        if (base === '.wh..wh..opq') {
          opaque.push(parent);
          continue;
        }
        if (base.startsWith('.wh.')) {
          whiteouts.push(parent === '' ? base.slice(4) : `${parent}/${base.slice(4)}`);
          continue;
        }
        const entry: WriteEntry = {
          name: new TextEncoder().encode(name),
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          size: 0,
          mtime: e.mtime,
          type: e.type === TYPE.REGA || e.type === TYPE.CONT ? TYPE.REG : e.type,
          uname: e.uname,
          gname: e.gname,
          devmajor: e.devmajor,
          devminor: e.devminor,
        };
        if (e.xattrs.size > 0) entry.xattrs = e.xattrs;
        const item: SquashItem = { entry };
        if (e.type === TYPE.LINK) {
          const target = memberName(nameText(e.linkname) ?? '');
          const t = pending.find(([n]) => n === target)?.[1] ?? merged.get(target);
          if (t === undefined) throw new DatarootError('EDIT_LAYER_INVALID', `${file}: hard link ${name} points at ${target}, which is not there`);
          item.linkTo = t.linkTo ?? t;
        } else {
          if (e.type === TYPE.SYMLINK) entry.linkname = e.linkname;
          if (entry.type === TYPE.REG) {
            entry.size = e.dataSize;
            item.file = file;
            item.offset = tr.offset;
          }
        }
        mine.add(name);
        pending.push([name, item]);
      }
      // What this layer hides of the ones below, then what it adds.
      for (const d of opaque) removeUnder(d);
      for (const w of whiteouts) {
        merged.delete(w);
        removeUnder(w);
      }
      for (const [name, item] of pending) {
        const prev = merged.get(name);
        if (prev !== undefined && prev.entry.type === TYPE.DIR && item.entry.type !== TYPE.DIR) removeUnder(name, mine);
        merged.set(name, item);
      }
    } finally {
      await ra.close();
    }
  }
  const names = [...merged.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const w = new TarFileWriter(out);
  try {
    const firstName = new Map<SquashItem, string>();
    for (const name of names) {
      const item = merged.get(name)!;
      const owner = item.linkTo ?? item;
      const isDir = item.entry.type === TYPE.DIR;
      const entry: WriteEntry = { ...(item.linkTo !== undefined ? owner.entry : item.entry), name: new TextEncoder().encode(isDir ? `${name}/` : name) };
      if (owner.file !== undefined) {
        const first = firstName.get(owner);
        if (first !== undefined) {
          await w.add({ ...entry, type: TYPE.LINK, size: 0, linkname: new TextEncoder().encode(first) });
          continue;
        }
        firstName.set(owner, name);
        await w.add({ ...entry, type: TYPE.REG }, entry.size === 0 ? undefined : fileChunks(owner.file, owner.offset, entry.size));
      } else await w.add(entry);
    }
    const r = w.finish();
    return { diffId: r.digest, size: r.size };
  } catch (e) {
    w.abort();
    throw e;
  }
}

export async function edit(o: EditOptions): Promise<EditResult> {
  const work = mkdtempSync(join(dirname(o.out), '.dataroot-edit-'));
  const warnings: string[] = [];
  try {
    const a = await openImageArchive(o.input, { workDir: work });
    const refusals = a.problems.filter((p) => p.code !== 'ARCHIVE_PLATFORM_MISSING');
    if (refusals.length > 0) throw new DatarootError(refusals[0]!.code, `${o.input}: ${refusals[0]!.message}`, { file: o.input });
    if (a.images.length === 0) throw new DatarootError('ARCHIVE_NO_IMAGES', `${o.input} holds no image`, { file: o.input });
    const img = pick(a, o.image);
    if (img.problems.length > 0) throw new DatarootError(img.problems[0]!.code, `${img.label}: ${img.problems[0]!.message}`, { file: o.input });
    if (img.diffIds.length !== img.layers.length) {
      throw new DatarootError(
        'EDIT_INCONSISTENT',
        `${img.label}: its config lists ${img.diffIds.length} diff_ids for ${img.layers.length} layers; refusing to edit an inconsistent image`,
        { file: o.input },
      );
    }
    let doc: JsonObject;
    try {
      doc = parseJsonBounded(img.configBytes.toString('utf8')) as JsonObject;
    } catch {
      throw new DatarootError('ARCHIVE_CONFIG_INVALID', `${img.label}: the config is not JSON`, { file: o.input });
    }
    let configChanged = false;
    let layers = await archiveLayers(a, img);
    const tags = img.repoTags
      .filter((t) => {
        if (t.startsWith(':')) warnings.push(`the OCI ref name ${t.slice(1)} names no repository: left out (give --tag)`);
        return !t.startsWith(':');
      })
      .map(familiarTag);
    const history = (): JsonObject[] => {
      if (!Array.isArray(doc['history'])) doc['history'] = [];
      return doc['history'] as JsonObject[];
    };
    const created = new Date(o.mtime * 1000).toISOString().replace(/\.000Z$/, 'Z');
    let n = 0;
    for (const op of o.ops) {
      switch (op.op) {
        case 'tag': {
          const t = familiarTag(op.ref);
          if (!tags.includes(t)) tags.push(t);
          break;
        }
        case 'untag': {
          const t = familiarTag(op.ref);
          const i = tags.indexOf(t);
          if (i < 0) throw new DatarootError('EDIT_NO_SUCH_TAG', `${img.label} is not tagged ${t} (it has ${tags.join(', ') || 'no tags'})`);
          tags.splice(i, 1);
          break;
        }
        case 'add-layer': {
          // TAR (a file, no :DEST) is taken as a layer tar; a directory, or anything with a
          // :DEST, becomes a layer of files.
          const src = parseLayerArg('--add-layer', op.arg);
          const tar = join(work, `added-${n++}.tar`);
          const asTar = statSync(src.src).isFile() && !op.arg.slice(src.src.length).startsWith(':');
          let r: { diffId: string; size: number };
          if (asTar) r = await copyLayerTar(src.src, tar, { maxBytes: o.maxBytes, maxRatio: o.maxRatio });
          else {
            const w = await writeLayerTar([src], tar, { mtime: o.mtime, keepOwner: false });
            warnings.push(...w.warnings);
            r = w;
          }
          layers = [...layers, { diffId: r.diffId, digest: r.diffId, size: r.size, mediaType: MT.layer, open: () => fileChunks(tar) }];
          const rootfs = (doc['rootfs'] ??= { type: 'layers', diff_ids: [] }) as JsonObject;
          rootfs['diff_ids'] = [...diffIdsOf(doc), r.diffId];
          history().push({ created, created_by: `dataroot edit --add-layer ${asTar ? basename(src.src) : src.dest}` });
          configChanged = true;
          break;
        }
        case 'squash': {
          const files: string[] = [];
          for (const [k, l] of layers.entries()) {
            // Each layer as a plain tar in the work dir (decompressed, read to the end as a tar,
            // and its diffID checked: squashing a damaged layer would hide the damage).
            const blob = join(work, `squash-blob-${n}-${k}`);
            const f = join(work, `squash-in-${n}-${k}.tar`);
            await pipeline(Readable.from(l.open()), createWriteStream(blob));
            const r = await copyLayerTar(blob, f, { maxBytes: o.maxBytes, maxRatio: o.maxRatio });
            rmSync(blob, { force: true });
            if (r.diffId !== l.diffId)
              throw new DatarootError('ARCHIVE_DIFFID_MISMATCH', `layer ${k + 1} of ${img.label} has sha256 ${r.diffId}, but the config says ${l.diffId}`, {
                file: o.input,
              });
            files.push(f);
          }
          const out = join(work, `squashed-${n++}.tar`);
          const r = await squash(files, out);
          for (const f of files) rmSync(f, { force: true });
          layers = [{ diffId: r.diffId, digest: r.diffId, size: r.size, mediaType: MT.layer, open: () => fileChunks(out) }];
          const rootfs = (doc['rootfs'] ??= { type: 'layers', diff_ids: [] }) as JsonObject;
          rootfs['diff_ids'] = [r.diffId];
          doc['history'] = [{ created, created_by: 'dataroot edit --squash' }];
          configChanged = true;
          break;
        }
        default:
          applyConfigEdit(doc, op);
          configChanged = true;
      }
    }
    if (diffIdsOf(doc).length !== layers.length || diffIdsOf(doc).some((d, k) => d !== layers[k]!.diffId)) {
      throw new DatarootError('EDIT_INCONSISTENT', `after the edit the config lists ${diffIdsOf(doc).length} diff_ids for ${layers.length} layers`);
    }
    const config = configChanged ? Buffer.from(goJson(doc)) : img.configBytes;
    // The other images of the archive go along unchanged.
    const images: OutImage[] = [];
    for (const other of a.images) {
      if (other === img) images.push({ config, layers, tags });
      else
        images.push({
          config: other.configBytes,
          layers: await archiveLayers(a, other),
          tags: other.repoTags.filter((t) => !t.startsWith(':')).map(familiarTag),
        });
    }
    const format = o.format ?? (a.source.has('index.json') ? 'oci' : 'docker');
    const r = await writeImageArchive(o.out, images, format, o.mtime);
    return { ...r, before: img.id, after: sha256Digest(config), warnings };
  } finally {
    removeTree(work);
  }
}
